"""Reliability: SIGKILL a running build at random points; no complete-looking folder appears, a re-run gives the same hash."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from consentgate.build import load_spec, run_build, verify_build
from consentgate.build.atomic import is_partial_name
from consentgate.config import Settings
from consentgate.errors import BuildVerifyError

from .conftest import KEY

TRIALS = 20


def _start(spec: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY}
    return subprocess.Popen(
        [sys.executable, "-c", "from consentgate.cli.app import main; main()", "build", "run", str(spec), "--workers", "1", "--quiet", "--replace"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def _check_folder_state(out: Path, reference: str) -> None:
    for entry in out.parent.iterdir():
        if entry == out:
            report = verify_build(out)  # whatever is at the output path is a complete build
            assert report.ok and report.content_hash == reference, report.problems
        else:
            assert is_partial_name(entry.name), entry  # everything else is a hidden temporary folder...
            with pytest.raises(BuildVerifyError):  # ...that verify refuses
                verify_build(entry)


@pytest.mark.slow
def test_sigkill_at_random_points(small_network: Path, write_spec: Callable[..., Path], settings: Settings, tmp_path: Path) -> None:
    spec = write_spec(small_network, output=str(tmp_path / "out" / "ds"))
    reference = run_build(load_spec(spec), workers=1, progress=False, settings=settings).content_hash
    out = load_spec(spec).output
    t0 = time.monotonic()
    assert _start(spec).wait(timeout=120) == 0
    full = time.monotonic() - t0
    _check_folder_state(out, reference)
    rng = random.Random(20240917)
    for _ in range(TRIALS):
        proc = _start(spec)
        time.sleep(rng.uniform(0.0, full * 1.1))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        _check_folder_state(out, reference)
    assert _start(spec).wait(timeout=120) == 0
    _check_folder_state(out, reference)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # stale temporary folders were cleaned up
