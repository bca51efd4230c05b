"""CLI command `consentgate serve`: run the web service and pages. Not yet available."""

from consentgate.errors import NotAvailableError


def serve() -> None:
    """Run the consentgate web service and pages (not yet available)."""
    raise NotAvailableError("`consentgate serve` is not yet available in this version")
