"""Tampering: changing, deleting or reordering rows directly in the database breaks
`verify`, which names the first bad sequence number; `ledger verify` exits 1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from ledger_helpers import event_rows, run_sql, write_rows
from sqlalchemy import Connection, text

from consentgate.cli.app import main
from consentgate.ledger import Ledger
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


def test_tampering_the_first_event(ledger: Ledger, ledger_url: str, tmp_path: Path) -> None:
    ledger.import_file(write_rows(event_rows(5), tmp_path / "e.parquet"))
    run_sql(ledger_url, lambda c: c.execute(text("UPDATE consent_events SET prev_hash = :h WHERE seq = 1"), {"h": "f" * 64}))
    res = ledger.verify()
    assert (res.ok, res.first_bad_seq) == (False, 1)
