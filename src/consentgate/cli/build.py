"""CLI group `consentgate build`: Build datasets from a build spec; verify and list builds. Not yet available."""

from consentgate.cli.common import not_available_group

NOT_AVAILABLE = True
app = not_available_group("build", "Build datasets from a build spec; verify and list builds")
