"""CLI group `consentgate ledger`: Consent ledger: record, import, show, history, snapshot, verify. Not yet available."""

from consentgate.cli.common import not_available_group

NOT_AVAILABLE = True
app = not_available_group("ledger", "Consent ledger: record, import, show, history, snapshot, verify")
