"""CLI group `consentgate policy`: Policy as code: check, publish, diff, explain. Not yet available."""

from consentgate.cli.common import not_available_group

app = not_available_group("policy", "Policy as code: check, publish, diff, explain")
