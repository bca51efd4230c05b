"""Reliability: concurrent writer processes and writers killed with SIGKILL.

Writers are real processes (tests/ledger/ledger_worker.py) on the real database.
After the run: every acknowledged write is present exactly once with the seq and
hash it was acknowledged with, the chain verifies, and each member's state equals
its last acknowledged write.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ledger_helpers import event_rows, write_rows

from consentgate.ledger import open_ledger

WORKER = Path(__file__).with_name("ledger_worker.py")


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _acks(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [ln.split() for ln in lines if ln.strip()]


def _check_acknowledged(url: str, acks: list[list[str]], *, expect_total: int | None = None) -> None:
    with open_ledger(url, create=False) as led:
        res = led.verify()
        assert res.ok, res
        if expect_total is not None:
            assert res.events == expect_total
        last: dict[tuple[str, str], tuple[int, str]] = {}
        for seq, event_id, member, scope, choice, digest in acks:
            last[(member, scope)] = max(last.get((member, scope), (0, "")), (int(seq), choice))
        by_member: dict[str, list[list[str]]] = {}
        for a in acks:
            by_member.setdefault(a[2], []).append(a)
        for member, rows in by_member.items():
            stored = {e.seq: e for e in led.history(member)}
            for seq, event_id, _m, _s, _c, digest in rows:
                ev = stored.get(int(seq))
                assert ev is not None and ev.event_id == event_id and ev.hash == digest, f"acknowledged seq {seq} lost"
            state = {s.scope: (s.event.seq, s.choice) for s in led.state(member)}
            for (m, scope), want in last.items():
                if m == member:
                    assert state[scope] == want


def _concurrent(url: str, tmp_path: Path, workers: int, per_worker: int) -> None:
    open_ledger(url).close()
    acks = [tmp_path / f"ack{w}.txt" for w in range(workers)]
    procs = [_spawn(url, str(w), str(per_worker), str(acks[w])) for w in range(workers)]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err.decode()[-2000:]
    all_acks = [a for f in acks for a in _acks(f)]
    assert len(all_acks) == workers * per_worker
    assert sorted(int(a[0]) for a in all_acks) == list(range(1, workers * per_worker + 1)), "each seq exactly once"
    _check_acknowledged(url, all_acks, expect_total=workers * per_worker)


def test_concurrent_writers_small(ledger_url: str, tmp_path: Path) -> None:
    _concurrent(ledger_url, tmp_path, workers=4, per_worker=100)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_concurrent_writers_8x5000(ledger_url: str, tmp_path: Path) -> None:
    _concurrent(ledger_url, tmp_path, workers=8, per_worker=5000)


def _crash_trials(url: str, tmp_path: Path, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    open_ledger(url).close()
    all_acks: list[list[str]] = []
    for trial in range(trials):
        ack = tmp_path / f"crash{trial}.txt"
        if trial % 3 == 2:  # bulk import killed mid-way: all of the file or none of it
            with open_ledger(url, create=False) as led:
                before = led.head()[0]
            src = write_rows(event_rows(20_000, prefix=f"t{trial}-", members=500), tmp_path / f"imp{trial}.parquet")
            proc = _spawn(url, str(trial), "import", str(src), str(ack))
            time.sleep(rng.uniform(0.3, 3.0))
        else:
            proc = _spawn(url, str(trial), "100000", str(ack))
            deadline = time.monotonic() + 60
            while not _acks(ack) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if trial % 3 == 2:
            with open_ledger(url, create=False) as led:
                added = led.head()[0] - before
                assert led.verify().ok
            assert added in (0, 20_000), f"a killed import left {added} events"
            assert not _acks(ack) or added == 20_000
        else:
            all_acks += _acks(ack)
            _check_acknowledged(url, all_acks)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_writers_lose_no_acknowledged_event(ledger_url: str, tmp_path: Path) -> None:
    _crash_trials(ledger_url, tmp_path, trials=21, seed=20240918)
