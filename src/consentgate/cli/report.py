"""CLI group `consentgate report`: Reports: subject access, compliance, simulation. Not yet available."""

from consentgate.cli.common import not_available_group

NOT_AVAILABLE = True
app = not_available_group("report", "Reports: subject access, compliance, simulation")
