"""Architecture contracts: dependencies point inward (checked with import-linter).

The second test proves the check has teeth: it copies the package, plants an
import of the CLI inside `policy`, and expects import-linter to report it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(src))
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_import_contracts_hold() -> None:
    result = _lint(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


def test_import_contract_catches_a_domain_package_importing_the_cli(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "src" / "consentgate", tmp_path / "src" / "consentgate",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / "src" / "consentgate" / "policy" / "_planted_violation.py"
    planted.write_text("import consentgate.cli.common\n")
    result = _lint(tmp_path, tmp_path / "src")
    assert result.returncode != 0
    assert "consentgate.policy._planted_violation -> consentgate.cli.common" in result.stdout
