"""The ``consentgate`` script's entry point (and ``python -m consentgate``).

It imports the CLI only when called. A build's worker processes are spawned, and a
spawned process first re-runs its parent's main script (as ``__mp_main__``, without
calling ``main``): when the script imported ``consentgate.cli.app`` at the top, every
detection worker, shard writer and chain check paid for typer, rich and every command
module (0.3 s and 25 MB each) that it never used.
"""

from __future__ import annotations


def main() -> int:
    """Run the command line (``consentgate.cli.app.main``) and exit with its code."""
    from consentgate.cli.app import main as cli_main

    return cli_main()


if __name__ == "__main__":
    main()
