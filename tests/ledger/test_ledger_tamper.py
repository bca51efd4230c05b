"""Tampering: changing, deleting or reordering rows directly in the database breaks
`verify`, which names the first bad sequence number; `ledger verify` exits 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import empty_ledger, event_rows, run_sql, write_rows
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from consentgate.cli.app import main
from consentgate.ledger import Ledger, open_ledger
from consentgate.ledger import verify as verify_mod
from consentgate.ledger.chain import event_hash


def _change(conn: Connection) -> None:
    conn.execute(text("UPDATE consent_events SET choice = CASE choice WHEN 'grant' THEN 'deny' ELSE 'grant' END WHERE seq = 17"))


def _change_time(conn: Connection) -> None:
    conn.execute(text("UPDATE consent_events SET recorded_at = recorded_at - 1 WHERE seq = 17"))


def _change_and_rehash(conn: Connection) -> None:
    row = conn.execute(text("SELECT seq, event_id, member_id, purpose, scope, choice, source, policy_version, recorded_at, "
                            "idempotency_key, prev_hash FROM consent_events WHERE seq = 17")).one()
    forged = list(row)
    forged[5] = "grant" if row[5] == "deny" else "deny"
    conn.execute(text("UPDATE consent_events SET choice = :c, hash = :h WHERE seq = 17"), {"c": forged[5], "h": event_hash(forged)})


def _delete(conn: Connection) -> None:
    conn.execute(text("DELETE FROM consent_events WHERE seq = 17"))


def _swap(conn: Connection) -> None:
    conn.execute(text("UPDATE consent_events SET seq = -1 WHERE seq = 17"))
    conn.execute(text("UPDATE consent_events SET seq = 17 WHERE seq = 18"))
    conn.execute(text("UPDATE consent_events SET seq = 18 WHERE seq = -1"))


def _swap_contents(conn: Connection) -> None:
    """Exchange the payloads of 17 and 18 but keep each row's seq/prev_hash/hash."""
    cols = "event_id, member_id, scope, choice, recorded_at"
    a = conn.execute(text(f"SELECT {cols} FROM consent_events WHERE seq = 17")).one()
    b = conn.execute(text(f"SELECT {cols} FROM consent_events WHERE seq = 18")).one()
    conn.execute(text("UPDATE consent_events SET event_id = 'tmp' WHERE seq = 17"))
    for seq, r in ((18, a), (17, b)):
        conn.execute(text("UPDATE consent_events SET event_id=:e, member_id=:m, scope=:s, choice=:c, recorded_at=:t WHERE seq=:q"),
                     {"e": r[0], "m": r[1], "s": r[2], "c": r[3], "t": r[4], "q": seq})


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "reason"),
    [
        (_change, 17, "altered"),
        (_change_time, 17, "altered"),
        (_change_and_rehash, 18, "does not link"),
        (_delete, 17, "missing"),
        (_swap, 17, "does not link"),
        (_swap_contents, 17, "altered"),
    ],
)
def test_tampering_is_found_at_the_first_bad_seq(ledger: Ledger, ledger_url: str, tmp_path: Path,
                                                 tamper: Callable[[Connection], None], bad_seq: int, reason: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ledger.import_file(write_rows(event_rows(40), tmp_path / "e.parquet"))
    assert ledger.verify().ok
    assert main(["ledger", "verify", "--db", ledger_url]) == 0
    run_sql(ledger_url, tamper)
    res = ledger.verify()
    assert not res.ok
    assert res.first_bad_seq == bad_seq
    assert reason in (res.reason or "")
    assert res.events == bad_seq - 1
    capsys.readouterr()
    assert main(["ledger", "verify", "--db", ledger_url]) == 1
    err = capsys.readouterr().err
    assert f"broken at seq {bad_seq}" in err


def test_snapshot_cli_writes_nothing_from_a_tampered_ledger(ledger: Ledger, ledger_url: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`ledger snapshot` verifies first: a snapshot as of now reads the maintained state, which tampering can change."""
    ledger.import_file(write_rows(event_rows(40), tmp_path / "e.parquet"))
    out = tmp_path / "s.parquet"
    assert main(["ledger", "snapshot", "--db", ledger_url, "--out", str(out)]) == 0 and out.is_file()
    out.unlink()
    run_sql(ledger_url, lambda c: c.execute(text("UPDATE consent_state SET choice = 'grant' WHERE choice = 'deny'")))
    capsys.readouterr()
    assert main(["ledger", "snapshot", "--db", ledger_url, "--out", str(out)]) == 1  # the state table alone
    assert "ledger state does not match its events" in capsys.readouterr().err and not out.exists()
    run_sql(ledger_url, _change)
    out.write_bytes(b"an earlier snapshot")
    assert main(["ledger", "snapshot", "--db", ledger_url, "--out", str(out), "--json"]) == 1  # the chain
    printed = capsys.readouterr()
    assert "broken at seq 17" in printed.err and json.loads(printed.out)["first_bad_seq"] == 17
    assert out.read_bytes() == b"an earlier snapshot"  # left as it was
    assert main(["ledger", "snapshot", "--db", ledger_url, "--out", str(out), "--no-verify"]) == 0 and out.is_file()


def test_tampering_the_first_event(ledger: Ledger, ledger_url: str, tmp_path: Path) -> None:
    ledger.import_file(write_rows(event_rows(5), tmp_path / "e.parquet"))
    run_sql(ledger_url, lambda c: c.execute(text("UPDATE consent_events SET prev_hash = :h WHERE seq = 1"), {"h": "f" * 64}))
    res = ledger.verify()
    assert (res.ok, res.first_bad_seq) == (False, 1)


# -- the vectorised check finds what the row-by-row walk finds -------------------------
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=6) | st.sampled_from(['q"x', "b\\s", "n\nl", "é", "\t"])
_SEQ = st.integers(1, 24)
_OPS = st.one_of(
    st.tuples(st.just("set"), _SEQ, st.sampled_from(["member_id", "choice", "event_id", "source", "prev_hash", "hash"]), _TEXT),
    st.tuples(st.just("set"), _SEQ, st.sampled_from(["policy_version", "idempotency_key"]), st.none() | _TEXT),
    st.tuples(st.just("set"), _SEQ, st.just("recorded_at"), st.integers(-(2**40), 2**62)),
    st.tuples(st.just("delete"), _SEQ),
    st.tuples(st.just("swap"), _SEQ, _SEQ),
    st.tuples(st.just("rehash"), _SEQ),
)
_SQLITE_OPS = st.tuples(st.just("retype"), _SEQ, st.sampled_from([
    "recorded_at = recorded_at + 0.5", "recorded_at = CAST(recorded_at AS TEXT) || 'x'", "member_id = CAST(member_id AS BLOB)",
    "hash = CAST(hash AS BLOB)", "prev_hash = CAST(prev_hash AS BLOB)", "recorded_at = CAST(CAST(recorded_at AS TEXT) AS BLOB)"]))
_ROW = "seq, event_id, member_id, purpose, scope, choice, source, policy_version, recorded_at, idempotency_key, prev_hash"


def _apply(url: str, op: tuple[Any, ...]) -> None:
    kind, seq = op[0], op[1]
    sql: list[tuple[str, dict[str, Any]]]
    if kind == "set":
        sql = [(f"UPDATE consent_events SET {op[2]} = :v WHERE seq = :s", {"v": op[3], "s": seq})]
    elif kind == "delete":
        sql = [("DELETE FROM consent_events WHERE seq = :s", {"s": seq})]
    elif kind == "swap":
        sql = [("UPDATE consent_events SET seq = -1 WHERE seq = :a", {"a": seq}), ("UPDATE consent_events SET seq = :a WHERE seq = :b", {"a": seq, "b": op[2]}),
               ("UPDATE consent_events SET seq = :b WHERE seq = -1", {"b": op[2]})]
    elif kind == "retype":
        sql = [(f"UPDATE consent_events SET {op[2]} WHERE seq = :s", {"s": seq})]
    else:
        sql = []

    def run(conn: Connection) -> None:
        if kind == "rehash":
            row = conn.execute(text(f"SELECT {_ROW} FROM consent_events WHERE seq = :s"), {"s": seq}).first()
            if row is not None and not any(isinstance(v, bytes) for v in row):
                conn.execute(text("UPDATE consent_events SET hash = :h WHERE seq = :s"), {"h": event_hash(tuple(row)), "s": seq})
        for stmt, params in sql:
            conn.execute(text(stmt), params)

    try:
        run_sql(url, run)
    except IntegrityError:  # a duplicated event_id or idempotency key: this tampering is not possible
        pass


def _outcome(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except Exception as exc:  # an unexpected failure must at least be the same in both
        return type(exc).__name__


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_vectorised_check_finds_what_the_walk_finds(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Random tamperings (changed fields, deleted, swapped or re-hashed rows, and on SQLite
    values stored with another type): the Arrow check reports exactly what the reference
    walk reports, across several small batches, with values that need JSON escaping."""
    monkeypatch.setattr(verify_mod, "BATCH_ROWS", 7)
    monkeypatch.setattr(verify_mod, "PG_BATCH_BYTES", 1500)
    base = event_rows(24, members=5)
    base[3]["member_id"], base[9]["event_id"], base[15]["policy_version"] = 'm"q', "e\\9", "v\n1"
    source = write_rows(base, tmp_path / "base.parquet")
    ops = st.lists(_OPS | _SQLITE_OPS if backend == "sqlite" else _OPS, max_size=3)
    counter = iter(range(10**6))

    @settings(max_examples=40 if backend == "sqlite" else 15, deadline=None)
    @given(ops)
    def check(tamperings: list[tuple[Any, ...]]) -> None:
        url = _fresh_url(backend, request, tmp_path / f"l{next(counter)}.db")
        with open_ledger(url) as led:
            led.import_file(source)
            assert verify_mod._scan(led) == verify_mod._walk(led)
            for op in tamperings:
                _apply(url, op)
            assert _outcome(lambda: verify_mod._scan(led)) == _outcome(lambda: verify_mod._walk(led))

    check()


@pytest.mark.parametrize("escaped", [False, True])
def test_the_check_in_one_process_finds_what_the_walk_finds(escaped: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``verify_sqlite_alone`` (the build's check: ADBC in its own process, no reader process)
    reports exactly what the reference walk reports, under the same random tamperings. With
    values that need JSON escaping it hands over to ``_scan`` after the last event it checked;
    without, it checks every batch itself. No connection of this process is open while it
    runs, as that function requires."""
    monkeypatch.setattr(verify_mod, "BATCH_ROWS", 7)
    base = event_rows(24, members=5)
    if escaped:
        base[9]["member_id"], base[15]["event_id"], base[20]["policy_version"] = 'm"q', "e\\9", "v\n1"
    source = write_rows(base, tmp_path / "base.parquet")
    counter = iter(range(10**6))

    def walked(url: str) -> object:
        with open_ledger(url, create=False) as led:
            got = verify_mod._walk(led)
        return got if isinstance(got, verify_mod.VerifyResult) else verify_mod.VerifyResult(True, got[0], None, None, got[0], got[1])

    @settings(max_examples=30, deadline=None)
    @given(st.lists(_OPS | _SQLITE_OPS, max_size=3))
    def check(tamperings: list[tuple[Any, ...]]) -> None:
        url = f"sqlite:///{tmp_path / f'a{next(counter)}.db'}"
        with open_ledger(url) as led:
            led.import_file(source)
        assert verify_mod.verify_sqlite_alone(url) == walked(url)
        for op in tamperings:
            _apply(url, op)
        expected = _outcome(lambda: walked(url))
        assert _outcome(lambda: verify_mod.verify_sqlite_alone(url)) == expected

    check()


def _fresh_url(backend: str, request: pytest.FixtureRequest, path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_pg_ledger_db")
    empty_ledger(url)
    return url


@pytest.mark.parametrize(("change", "rehash"), [
    ("recorded_at = recorded_at + 0.5", False), ("recorded_at = recorded_at + 0.5", True),
    ("recorded_at = CAST(recorded_at AS TEXT) || 'x'", False), ("recorded_at = CAST(recorded_at AS TEXT) || 'x'", True),
    ("member_id = CAST(member_id AS BLOB)", False), ("hash = CAST(hash AS BLOB)", False),
])
def test_values_stored_with_another_type_are_judged_like_the_walk(sqlite_url: str, tmp_path: Path, change: str, rehash: bool,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite keeps any type in any column. A REAL or TEXT time, or a BLOB, is reported as an
    altered event by both checks (also when the tamperer re-hashed the row with the
    reference encoder), never as an internal error."""
    monkeypatch.setattr(verify_mod, "BATCH_ROWS", 4)
    with open_ledger(sqlite_url) as led:
        led.import_file(write_rows(event_rows(12), tmp_path / "e.parquet"))
        _apply(sqlite_url, ("retype", 6, change))
        if rehash:
            _apply(sqlite_url, ("rehash", 6))
        expected = _outcome(lambda: verify_mod._walk(led))
        assert _outcome(lambda: verify_mod._scan(led)) == expected
        # A value of a type the ledger never writes is tampering, re-hashed or not.
        assert getattr(expected, "first_bad_seq", None) == 6, expected


def test_a_blob_in_a_chain_field_is_reported_as_tampering(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ledger verify` names the event, exits 1 and does not fail with an internal error."""
    with open_ledger(sqlite_url) as led:
        led.import_file(write_rows(event_rows(12), tmp_path / "e.parquet"))
    _apply(sqlite_url, ("retype", 5, "choice = CAST(choice AS BLOB)"))
    capsys.readouterr()
    assert main(["ledger", "verify", "--db", sqlite_url]) == 1
    err = capsys.readouterr().err
    assert "broken at seq 5" in err and "internal error" not in err


def test_reading_a_blob_tampered_event_is_an_integrity_error(sqlite_url: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A member's history that includes such an event stops with an integrity error naming the
    event and field (it rendered as an internal error before), and nothing else is printed."""
    from consentgate.errors import LedgerIntegrityError

    with open_ledger(sqlite_url) as led:
        led.import_file(write_rows(event_rows(12), tmp_path / "e.parquet"))
        member = str(event_rows(12)[4]["member_id"])
        seq = led.history(member)[0].seq
    _apply(sqlite_url, ("retype", seq, "choice = CAST(choice AS BLOB)"))
    with open_ledger(sqlite_url) as led, pytest.raises(LedgerIntegrityError) as info:
        led.history(member)
    assert f"event {seq}" in info.value.message and "choice" in info.value.message
    capsys.readouterr()
    assert main(["ledger", "history", "--member", member, "--db", sqlite_url]) == 1
    out = capsys.readouterr()
    assert "wrong type in choice" in out.err and "internal error" not in out.err and out.out == ""


def test_an_empty_ledger_verifies(ledger: Ledger) -> None:
    assert verify_mod._scan(ledger) == verify_mod._walk(ledger) == (0, verify_mod.GENESIS)
    assert ledger.verify().ok
