"""CLI group `consentgate build`: Build datasets from a build spec; verify and list builds. Not yet available."""

from consentgate.cli.common import not_available_group

app = not_available_group("build", "Build datasets from a build spec; verify and list builds")
