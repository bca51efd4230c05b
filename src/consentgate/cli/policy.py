"""CLI group `consentgate policy`: Policy as code: check, publish, diff, explain. Not yet available."""

from consentgate.cli.common import not_available_group

NOT_AVAILABLE = True
app = not_available_group("policy", "Policy as code: check, publish, diff, explain")
