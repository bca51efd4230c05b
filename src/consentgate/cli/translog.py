"""CLI group `consentgate translog`: Tamper-evident transparency log: append, prove, verify. Not yet available."""

from consentgate.cli.common import not_available_group

NOT_AVAILABLE = True
app = not_available_group("translog", "Tamper-evident transparency log: append, prove, verify")
