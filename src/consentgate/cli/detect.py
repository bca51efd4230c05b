"""CLI group `consentgate detect`: Detect PII and sensitive topics; evaluate detectors. Not yet available."""

from consentgate.cli.common import not_available_group

app = not_available_group("detect", "Detect PII and sensitive topics; evaluate detectors")
