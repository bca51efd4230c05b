"""CLI group `consentgate detect`: Detect PII and sensitive topics; evaluate detectors. Not yet available."""

from consentgate.cli.common import not_available_group

NOT_AVAILABLE = True
app = not_available_group("detect", "Detect PII and sensitive topics; evaluate detectors")
