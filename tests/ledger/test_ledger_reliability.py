"""Reliability: concurrent writer processes and writers killed with SIGKILL.

Writers are real processes (tests/ledger/ledger_worker.py, forked so that they
start in milliseconds instead of re-importing everything) on the real database.
After the run: every acknowledged write is present exactly once with the seq and
hash it was acknowledged with, the chain verifies, and each member's state equals
its last acknowledged write.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

import ledger_worker
import pytest
from ledger_helpers import event_rows, write_rows

from consentgate.ledger import open_ledger

_FORK = multiprocessing.get_context("fork")


def _spawn(*args: str) -> BaseProcess:
    proc = _FORK.Process(target=ledger_worker.main, args=(list(args),), daemon=True)
    proc.start()
    return proc


def _acks(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [ln.split() for ln in lines if ln.strip()]


def _check_acknowledged(url: str, acks: list[list[str]], *, expect_total: int | None = None, members: set[str] | None = None) -> None:
    """Every acked (seq, event_id, hash) is stored; each member's state is its last acked choice.

    With ``members`` (crash trials) a killed writer may have committed one write it never
    acknowledged: then the state may come from that one later event, never an older one.
    """
    from sqlalchemy import select

    from consentgate.ledger.schema import events

    with open_ledger(url, create=False) as led:
        res = led.verify()
        assert res.ok, res
        if expect_total is not None:
            assert res.events == expect_total
        with led.engine.connect() as conn:
            stored = {int(r[0]): (r[1], r[2]) for r in conn.execute(select(events.c.seq, events.c.event_id, events.c.hash))}
        last: dict[str, dict[str, tuple[int, str]]] = {}
        for seq, event_id, member, scope, choice, digest in acks:
            assert stored.get(int(seq)) == (event_id, digest), f"acknowledged seq {seq} lost or changed"
            cur = last.setdefault(member, {})
            cur[scope] = max(cur.get(scope, (0, "")), (int(seq), choice))
        if members is None:
            for member, want in last.items():
                state = {s.scope: (s.event.seq, s.choice) for s in led.state(member)}
                assert state == want, f"state of {member} is not its last acknowledged write"
            return
        acked = {int(a[0]) for a in acks}
        low = min(acked, default=0)  # (computed once: inside the comprehension it was O(acks) per stored event)
        unacked = {seq for seq in stored if seq not in acked and seq > low}
        for member in members:
            state = {s.scope: s.event.seq for s in led.state(member)}
            for scope, (seq, _choice) in last[member].items():
                assert state[scope] == seq or state[scope] in unacked, f"state of {member} went back before an acknowledged write"


def _concurrent(url: str, tmp_path: Path, workers: int, per_worker: int) -> None:
    open_ledger(url).close()
    acks = [tmp_path / f"ack{w}.txt" for w in range(workers)]
    procs = [_spawn(url, str(w), str(per_worker), str(acks[w])) for w in range(workers)]
    for p in procs:
        p.join(timeout=1500)
        assert p.exitcode == 0, f"writer exited with {p.exitcode}"
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
            time.sleep(rng.uniform(0.05, 1.5))
        else:
            proc = _spawn(url, str(trial), "100000", str(ack))
            deadline = time.monotonic() + 60
            while not _acks(ack) and time.monotonic() < deadline and proc.is_alive():
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()  # SIGKILL
        proc.join(timeout=30)
        if trial % 3 == 2:
            with open_ledger(url, create=False) as led:
                added = led.head()[0] - before
                assert led.verify().ok
            assert added in (0, 20_000), f"a killed import left {added} events"
            assert not _acks(ack) or added == 20_000
        else:
            new = _acks(ack)
            all_acks += new
            _check_acknowledged(url, all_acks, members={a[2] for a in new})


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_writers_lose_no_acknowledged_event(ledger_url: str, tmp_path: Path) -> None:
    _crash_trials(ledger_url, tmp_path, trials=21, seed=20240918)
