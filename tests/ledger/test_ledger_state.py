"""The maintained current state (consent_state): snapshots read from it equal snapshots
computed from the events, it is backfilled by the migration, kept right under every
kind of write, and tampering with it is caught by `verify` naming the member."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import T0, event_rows, ledger_per_backend, run_sql, write_rows
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from consentgate.cli.app import main
from consentgate.datamodel import CHOICES, PURPOSES, SCOPES, SOURCES
from consentgate.ledger import Ledger, PublishedPolicy, make_event, open_ledger
from consentgate.ledger import snapshot as snap
from consentgate.ledger.state import VOCAB_CODES, decode_vocab, encode_vocab

_counter = itertools.count()


def from_events(led: Ledger, as_of_us: int = snap.ALL_TIME) -> pa.Table:
    """The snapshot computed the slow way, from the events (the reference for the state)."""
    heads = snap.read_heads(led)
    return snap.latest_per_key(snap.read_events_until(led, heads.seq, as_of_us))


def from_state(led: Ledger) -> pa.Table:
    return snap.read_state(led, snap.read_heads(led))




@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_ledger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from ledger_per_backend(request, tmp_path_factory, "state")


event = st.tuples(
    st.integers(0, 3),  # member
    st.sampled_from(SCOPES),
    st.sampled_from(CHOICES),
    st.sampled_from(SOURCES),
    st.integers(0, 40),  # minute: few values, so ties and back-dated events are common
    st.sampled_from([None, "2024.1", "2025.2"]),
)
step = st.tuples(st.sampled_from(["record", "import"]), st.lists(event, min_size=1, max_size=8))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=5))
def test_snapshot_from_state_equals_snapshot_from_events(shared_ledger: Ledger, tmp_path: Path, steps: list[tuple[str, list[Any]]]) -> None:
    """Random single writes and (back-dated) imports: the state is always the events' winners."""
    run = next(_counter)
    for i, (kind, evs) in enumerate(steps):
        if kind == "record":
            shared_ledger.record_many([make_event(member_id=f"q{run}-{m}", scope=s, choice=c, source=src, policy_version=pv,
                                                  recorded_at=T0 + timedelta(minutes=t)) for m, s, c, src, t, pv in evs])
        else:
            rows = [{"event_id": f"q{run}-{i}-{j}", "member_id": f"q{run}-{m}", "purpose": "ai_training", "scope": s, "choice": c,
                     "source": src, "policy_version": pv, "recorded_at": T0 + timedelta(minutes=t)} for j, (m, s, c, src, t, pv) in enumerate(evs)]
            shared_ledger.import_file(write_rows(rows, tmp_path / f"imp{run}-{i}.parquet"))
    expected = from_events(shared_ledger)
    assert from_state(shared_ledger).equals(expected)
    out = tmp_path / f"s{run}.parquet"
    info = shared_ledger.snapshot(None, out)  # as of now: answered from the state
    assert pq.read_table(out).equals(expected) and info.rows == expected.num_rows
    assert shared_ledger.verify().ok


def test_snapshot_reads_all_events_only_when_many_keys_changed_after_the_cutoff(ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As of the newest event: the state alone. Just before it: the state plus the events of the
    one key that changed since (by member). Forced past the threshold: a scan of all events.
    Every way gives the snapshot computed from the events."""
    from consentgate.ledger import asof

    ledger.import_file(write_rows(event_rows(60, members=5), tmp_path / "e.parquet"))
    calls: list[str] = []
    real_rows, real_members, real_events = snap.read_state_rows, asof.member_events, snap.read_events_until
    monkeypatch.setattr(snap, "read_state_rows", lambda *a, **k: calls.append("state") or real_rows(*a, **k))
    monkeypatch.setattr(asof, "member_events", lambda *a, **k: calls.append(f"members {sorted(a[3])}") or real_members(*a, **k))
    monkeypatch.setattr(snap, "read_events_until", lambda *a, **k: calls.append("events") or real_events(*a, **k))
    newest = T0 + timedelta(minutes=59)  # event seq 60, member m9 % 5 = m4, third_party
    ledger.snapshot(newest, tmp_path / "at.parquet")
    assert calls == ["state"]
    ledger.snapshot(newest - timedelta(microseconds=1), tmp_path / "before.parquet")
    assert calls == ["state", "state", "members ['m4']"]
    monkeypatch.setattr(asof, "LATE_MIN", 0)
    monkeypatch.setattr(asof, "LATE_SHARE", {})
    ledger.snapshot(newest - timedelta(microseconds=1), tmp_path / "scan.parquet")
    assert calls[3:] == ["events"]
    at, before = pq.read_table(tmp_path / "at.parquet"), pq.read_table(tmp_path / "before.parquet")
    assert at.equals(from_events(ledger)) and 60 in at.column("seq").to_pylist()  # the newest event (recorded at minute 59)
    cut = int((newest - T0).total_seconds() * 1e6) + int(T0.timestamp() * 1e6) - 1
    assert before.equals(from_events(ledger, cut)) and 60 not in before.column("seq").to_pylist()
    assert pq.read_table(tmp_path / "scan.parquet").equals(before)


def test_a_write_during_the_state_read_falls_back_to_the_events(ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer committing while the parts are read must not leak into (or tear) the snapshot."""
    ledger.import_file(write_rows(event_rows(30, members=4), tmp_path / "e.parquet"))
    before = from_events(ledger)
    real_state = snap.read_state

    def read_then_write(*a: Any, **k: Any) -> pa.Table:
        table = real_state(*a, **k)
        ledger.record(make_event(member_id="m1", scope="first_party", choice="deny", recorded_at=T0 + timedelta(minutes=100)))
        return table

    monkeypatch.setattr(snap, "read_state", read_then_write)
    info = ledger.snapshot(None, tmp_path / "s.parquet")
    assert info.head_seq == 30
    assert pq.read_table(tmp_path / "s.parquet").equals(before)


def test_migration_backfills_the_state_of_an_existing_ledger(ledger_url: str, tmp_path: Path) -> None:
    """A ledger created before the state table (revision 0001) gets it filled on upgrade."""
    rows = event_rows(90, members=11)
    rows[7]["recorded_at"] = T0 - timedelta(days=3)  # a back-dated import
    with open_ledger(ledger_url) as led:
        led.import_file(write_rows(rows, tmp_path / "e.parquet"))
        led.record(make_event(member_id="m3", scope="affiliate", choice="deny", recorded_at=T0 + timedelta(minutes=1)))
        expected = from_events(led)

    def back_to_0001(conn: Connection) -> None:
        conn.execute(text("DROP TABLE consent_state"))
        conn.execute(text("DROP TABLE consent_state_head"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))

    run_sql(ledger_url, back_to_0001)
    with open_ledger(ledger_url) as led:
        assert from_state(led).equals(expected)
        assert led.verify().ok
        led.record(make_event(member_id="m3", scope="affiliate", choice="grant", recorded_at=T0 + timedelta(minutes=2)))
        assert from_state(led).equals(from_events(led))


def test_state_out_of_step_with_the_events_is_rebuilt_on_the_next_write(ledger: Ledger, ledger_url: str, tmp_path: Path) -> None:
    ledger.import_file(write_rows(event_rows(20, members=3), tmp_path / "e.parquet"))
    run_sql(ledger_url, lambda c: c.execute(text("DELETE FROM consent_state_head")))
    assert ledger.snapshot(None, tmp_path / "s.parquet").rows == from_events(ledger).num_rows  # events path
    ledger.record(make_event(member_id="new", scope="affiliate", choice="deny", recorded_at=T0))
    assert from_state(ledger).equals(from_events(ledger))
    assert ledger.verify().ok


def _set_choice(conn: Connection) -> None:
    conn.execute(text("UPDATE consent_state SET choice = CASE choice WHEN 'grant' THEN 'deny' ELSE 'grant' END "
                      "WHERE member_id = 'm2' AND scope = 'third_party'"))


def _set_vocab(conn: Connection) -> None:  # the packed column is what snapshots read
    conn.execute(text("UPDATE consent_state SET vocab = vocab # 8 WHERE member_id = 'm2' AND scope = 'third_party'"
                      if conn.dialect.name == "postgresql" else
                      "UPDATE consent_state SET vocab = (vocab | 8) - (vocab & 8) WHERE member_id = 'm2' AND scope = 'third_party'"))


def _delete_row(conn: Connection) -> None:
    conn.execute(text("DELETE FROM consent_state WHERE member_id = 'm2' AND scope = 'third_party'"))


def _point_to_older_event(conn: Connection) -> None:
    old = conn.execute(text("SELECT min(seq) FROM consent_events WHERE member_id = 'm2' AND scope = 'third_party'")).scalar()
    conn.execute(text("UPDATE consent_state SET seq = :s WHERE member_id = 'm2' AND scope = 'third_party'"), {"s": old})


def _extra_row(conn: Connection) -> None:
    conn.execute(text("INSERT INTO consent_state (seq, member_id, purpose, scope, recorded_at, choice, source, policy_version, vocab) "
                      "VALUES (100000, 'm2x', 'ai_training', 'affiliate', 0, 'grant', 'admin', NULL, 66)"))


@pytest.mark.parametrize("tamper", [_set_choice, _set_vocab, _delete_row, _point_to_older_event, _extra_row])
def test_tampering_with_the_state_is_found(ledger: Ledger, ledger_url: str, tmp_path: Path, tamper: Callable[[Connection], None],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    ledger.import_file(write_rows(event_rows(40, members=4), tmp_path / "e.parquet"))
    assert ledger.verify().ok
    run_sql(ledger_url, tamper)
    res = ledger.verify()
    assert not res.ok and res.first_bad_seq is None
    member = "m2x" if tamper is _extra_row else "m2"
    assert res.bad_key is not None and res.bad_key[0] == member
    assert f"member '{member}'" in (res.reason or "")
    capsys.readouterr()
    assert main(["ledger", "verify", "--db", ledger_url]) == 1
    assert "state does not match its events" in capsys.readouterr().err


def test_tampering_with_the_state_head_is_found(ledger: Ledger, ledger_url: str, tmp_path: Path) -> None:
    ledger.import_file(write_rows(event_rows(10), tmp_path / "e.parquet"))
    run_sql(ledger_url, lambda c: c.execute(text("UPDATE consent_state_head SET max_recorded_at = max_recorded_at - 1")))
    res = ledger.verify()
    assert not res.ok and "recorded_at" in (res.reason or "")
    run_sql(ledger_url, lambda c: c.execute(text("UPDATE consent_state_head SET head_seq = 3")))
    res = ledger.verify()
    assert not res.ok and "head row" in (res.reason or "")


def test_every_vocabulary_value_has_a_code_that_round_trips() -> None:
    codes = dict(VOCAB_CODES)
    for name, values in (("purpose", PURPOSES), ("scope", SCOPES), ("choice", CHOICES), ("source", SOURCES)):
        assert set(values) <= set(codes[name]) and len(codes[name]) <= 8
    rows = [dict(zip(("purpose", "scope", "choice", "source"), combo)) for combo in itertools.product(PURPOSES, SCOPES, CHOICES, SOURCES)]
    table = pa.Table.from_pylist(rows)
    decoded = decode_vocab(encode_vocab(table).to_numpy())
    assert [{k: decoded[k][i].as_py() for k in decoded} for i in range(len(rows))] == rows


def test_adbc_reader_types_a_column_whose_first_batch_is_all_null(tmp_path: Path) -> None:
    """The ADBC SQLite driver infers types from its first batch: a policy_version that is
    NULL for longer than one batch must still come back as strings, with its NULLs."""
    pytest.importorskip("adbc_driver_sqlite")
    from consentgate.ledger._sqlite_arrow import BATCH_ROWS

    db = tmp_path / "t.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, policy_version TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, None if i <= BATCH_ROWS + 10 else "2024.1") for i in range(1, BATCH_ROWS + 21)))
    conn.commit()
    conn.close()
    [raw] = snap._sqlite_adbc_subprocess(str(db), [f"SELECT seq, {snap._PV_NULL_SAFE} FROM t WHERE true"])
    table = snap._restore_nulls(raw)
    pv = table.column("policy_version")
    assert pv.null_count == BATCH_ROWS + 10 and pv[-1].as_py() == "2024.1"


def test_past_snapshot_re_reads_late_members_with_any_characters(ledger: Ledger, tmp_path: Path) -> None:
    """Member ids with quotes, backslashes, commas, braces and non-ASCII travel intact through
    the late keys' member lookup (a literal array on PostgreSQL, JSON on SQLite)."""
    odd = ['a"b', "c'd", "e\\f", "g,h", "{i}", "NULL", "ünï 名", " sp ", 'x\\"y']
    for minute, choice in ((0, "grant"), (10, "deny")):
        ledger.record_many([make_event(member_id=m, scope="affiliate", choice=choice, recorded_at=T0 + timedelta(minutes=minute)) for m in odd])
    cut = T0 + timedelta(minutes=5)
    ledger.snapshot(cut, tmp_path / "past.parquet")
    got = pq.read_table(tmp_path / "past.parquet")
    assert got.equals(from_events(ledger, int(cut.timestamp() * 1_000_000)))
    assert sorted(got.column("member_id").to_pylist()) == sorted(odd) and set(got.column("choice").to_pylist()) == {"grant"}


def test_migration_0004_marks_publications_stored_before_it_as_backfilled(ledger_url: str) -> None:
    """Publications from before the ledger kept their recording time keep working, marked as backfills."""
    pol = PublishedPolicy(name="p", version="1", sha256="d" * 64, published_at=T0, effective_at=T0 + timedelta(days=30),
                          notice_days=30, body="name: p\n")
    with open_ledger(ledger_url) as led:
        led.publish_policy(pol, backfill=True)

    def back_to_0003(conn: Connection) -> None:  # the table as revision 0003 left it
        conn.execute(text("ALTER TABLE policy_versions DROP COLUMN backfilled"))
        conn.execute(text("ALTER TABLE policy_versions DROP COLUMN recorded_at"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))

    run_sql(ledger_url, back_to_0003)
    with open_ledger(ledger_url) as led:
        got = led.published_policy("p", "1")
        assert got is not None and got.backfilled and got.recorded_at is not None and got.notice_from == T0
        assert led.publish_policy(pol.model_copy(update={"version": "2"}), backfill=True).backfilled  # writes work after it

    def blank_recorded_at(conn: Connection) -> None:
        conn.execute(text("UPDATE policy_versions SET recorded_at = NULL"))

    with pytest.raises(IntegrityError):  # every publication keeps the ledger's record of it
        run_sql(ledger_url, blank_recorded_at)
