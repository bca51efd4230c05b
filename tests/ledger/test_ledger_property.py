"""Property tests: `state(member, as_of)` and snapshots equal a simple in-memory
reference over random event sequences (including back-dated events and ties)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import T0, ledger_per_backend

from consentgate.ledger import Ledger, make_event

_counter = itertools.count()

step = st.tuples(
    st.integers(0, 2),  # member
    st.sampled_from(["first_party", "affiliate", "third_party"]),
    st.sampled_from(["grant", "deny"]),
    st.integers(0, 30),  # minute: small range so equal timestamps (ties) are common
)


def reference_state(events: list[tuple[int, str, str, str, datetime]], member: str, as_of: datetime) -> dict[str, tuple[str, int]]:
    """scope -> (choice, seq) of the latest event at or before as_of; ties go to the later seq."""
    best: dict[str, tuple[datetime, int, str]] = {}
    for seq, m, scope, choice, t in events:
        if m == member and t <= as_of and (scope not in best or (t, seq) >= best[scope][:2]):
            best[scope] = (t, seq, choice)
    return {s: (c, q) for s, (_, q, c) in best.items()}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_ledger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One ledger per backend for all examples; each example uses its own member ids."""
    yield from ledger_per_backend(request, tmp_path_factory, "prop")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=25), probes=st.lists(st.integers(-1, 32), min_size=1, max_size=6))
def test_state_as_of_matches_reference(shared_ledger: Ledger, steps: list[tuple[int, str, str, int]], probes: list[int]) -> None:
    run = next(_counter)
    stored = shared_ledger.record_many([
        make_event(member_id=f"p{run}-{m}", scope=s, choice=c, recorded_at=T0 + timedelta(minutes=t)) for m, s, c, t in steps
    ])
    events = [(e.seq, e.member_id, e.scope, e.choice, e.recorded_at) for e in stored]
    for m, minute in itertools.product(range(3), probes):
        member, as_of = f"p{run}-{m}", T0 + timedelta(minutes=minute)
        got = {st_.scope: (st_.choice, st_.event.seq) for st_ in shared_ledger.state(member, as_of)}
        assert got == reference_state(events, member, as_of)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=25), minute=st.integers(-1, 32))
def test_snapshot_matches_reference(shared_ledger: Ledger, tmp_path: Path, steps: list[tuple[int, str, str, int]], minute: int) -> None:
    run = next(_counter)
    stored = shared_ledger.record_many([
        make_event(member_id=f"s{run}-{m}", scope=s, choice=c, recorded_at=T0 + timedelta(minutes=t)) for m, s, c, t in steps
    ])
    events = [(e.seq, e.member_id, e.scope, e.choice, e.recorded_at) for e in stored]
    as_of = T0 + timedelta(minutes=minute)
    out = tmp_path / f"snap{run}.parquet"
    shared_ledger.snapshot(as_of, out)
    rows = [r for r in pq.read_table(out).to_pylist() if r["member_id"].startswith(f"s{run}-")]
    got = {(r["member_id"], r["scope"]): (r["choice"], r["seq"]) for r in rows}
    expected = {(f"s{run}-{m}", s): v for m in range(3) for s, v in reference_state(events, f"s{run}-{m}", as_of).items()}
    assert got == expected


def test_cli_show_as_of_prints_the_past_state(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from consentgate.cli.app import main

    for at, choice in (("2024-01-01T00:00:00Z", "grant"), ("2024-06-01T00:00:00Z", "deny")):
        assert main(["ledger", "record", "--db", sqlite_url, "--member", "m9", "--scope", "third_party", "--choice", choice, "--at", at]) == 0
    capsys.readouterr()
    assert main(["ledger", "show", "--db", sqlite_url, "--member", "m9", "--as-of", "2024-03-01T00:00:00+00:00", "--json"]) == 0
    past = json.loads(capsys.readouterr().out)
    assert [(s["scope"], s["choice"], s["event"]["seq"]) for s in past] == [("third_party", "grant", 1)]
    assert main(["ledger", "show", "--db", sqlite_url, "--member", "m9", "--json"]) == 0
    now = json.loads(capsys.readouterr().out)
    assert [(s["scope"], s["choice"]) for s in now] == [("third_party", "deny")]
    assert main(["ledger", "show", "--db", sqlite_url, "--member", "m9", "--as-of", "2023-01-01T00:00:00Z", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def reference_snapshot(led: Ledger, as_of_us: int) -> list[dict[str, Any]]:
    """Every key's latest event at or before ``as_of_us`` by (recorded_at, seq), from the raw
    events table in plain Python, as snapshot rows sorted by seq."""
    from sqlalchemy import select

    from consentgate.ledger.schema import events

    cols = ("member_id", "purpose", "scope", "choice", "source", "policy_version", "recorded_at", "seq")
    with led.engine.connect() as conn:
        rows = [dict(zip(cols, r)) for r in conn.execute(select(*(events.c[c] for c in cols)))]
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["member_id"], r["purpose"], r["scope"])
        if r["recorded_at"] <= as_of_us and (key not in best or (r["recorded_at"], r["seq"]) > (best[key]["recorded_at"], best[key]["seq"])):
            best[key] = r
    return sorted(best.values(), key=lambda r: r["seq"])


raw_event = st.tuples(
    st.integers(0, 5),  # member (shared by all examples: earlier examples' keys go late too)
    st.sampled_from(["first_party", "affiliate", "third_party"]),
    st.sampled_from(["grant", "deny"]),
    st.sampled_from(["member", "gpc", "admin", "import"]),
    st.integers(0, 40),  # minute: ties and back-dated events are common
    st.sampled_from([None, "2024.2"]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.tuples(st.booleans(), st.lists(raw_event, min_size=1, max_size=6)), min_size=1, max_size=4),
       minute=st.integers(-1, 42), micro=st.sampled_from([-1, 0, 1]), scan=st.booleans())
def test_snapshot_as_of_equals_a_reference_from_the_raw_events(shared_ledger: Ledger, tmp_path: Path, batches: list[tuple[bool, list[Any]]],
                                                              minute: int, micro: int, scan: bool) -> None:
    """``snapshot(as_of=T)`` for random T equals the latest event per key at T computed from the
    raw events, both when it is answered from the state plus the late keys' events and when
    it scans every event (``scan``: the threshold forced to zero)."""
    from unittest import mock

    from ledger_helpers import write_rows

    from consentgate.ledger import asof

    run = next(_counter)
    for i, (imported, evs) in enumerate(batches):
        fields = [{"member_id": f"r{m}", "purpose": "ai_training", "scope": s, "choice": c, "source": src, "policy_version": pv,
                   "recorded_at": T0 + timedelta(minutes=t)} for m, s, c, src, t, pv in evs]
        if imported:
            shared_ledger.import_file(write_rows([{"event_id": f"r{run}-{i}-{j}", **f} for j, f in enumerate(fields)], tmp_path / f"r{run}-{i}.parquet"))
        else:
            shared_ledger.record_many([make_event(**f) for f in fields])
    as_of = T0 + timedelta(minutes=minute, microseconds=micro)
    out = tmp_path / f"asof{run}.parquet"
    with mock.patch.multiple(asof, LATE_MIN=0, LATE_SHARE={}) if scan else mock.patch.multiple(asof, LATE_MIN=10**9):
        info = shared_ledger.snapshot(as_of, out)
    got = pq.read_table(out).to_pylist()
    expected = reference_snapshot(shared_ledger, int(as_of.timestamp()) * 10**6 + as_of.microsecond)
    for r in got:
        r["recorded_at"] = int(r["recorded_at"].timestamp()) * 10**6 + r["recorded_at"].microsecond
    assert got == expected and info.rows == len(expected)
