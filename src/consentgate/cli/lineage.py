"""CLI group `consentgate lineage`: Lineage from datasets to models; impact of withdrawals and erasures. Not yet available."""

from consentgate.cli.common import not_available_group

NOT_AVAILABLE = True
app = not_available_group("lineage", "Lineage from datasets to models; impact of withdrawals and erasures")
