"""The ledger contract suite: every test runs on SQLite and on real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ledger_helpers import T0, event_rows, write_rows

from consentgate.errors import InputError, LedgerError, PolicyError
from consentgate.ledger import GENESIS, Ledger, PublishedPolicy, make_event, open_ledger, record_gpc
from consentgate.ledger.models import PUBLICATION_SLACK, utc_now
from consentgate.ledger.chain import event_hash


def ev(member: str = "m1", scope: str = "first_party", choice: str = "grant", minutes: int = 0, **kw: object) -> object:
    return make_event(member_id=member, scope=scope, choice=choice, recorded_at=T0 + timedelta(minutes=minutes), **kw)


def test_empty_ledger_has_genesis_head_and_verifies(ledger: Ledger) -> None:
    assert ledger.head() == (0, GENESIS)
    res = ledger.verify()
    assert res.ok and res.events == 0 and res.first_bad_seq is None


def test_record_assigns_seq_and_links_the_chain(ledger: Ledger) -> None:
    a = ledger.record(ev(choice="grant"))
    b = ledger.record(ev(choice="deny", minutes=1))
    assert (a.seq, b.seq) == (1, 2)
    assert a.prev_hash == GENESIS and b.prev_hash == a.hash
    assert ledger.head() == (2, b.hash)
    row = (b.seq, b.event_id, b.member_id, b.purpose, b.scope, b.choice, b.source, b.policy_version,
           int(b.recorded_at.timestamp()) * 1_000_000, b.idempotency_key, b.prev_hash)
    assert event_hash(row) == b.hash
    assert ledger.verify().ok


def test_idempotency_key_returns_the_original_event(ledger: Ledger) -> None:
    first = ledger.record(ev(), idempotency_key="req-1")
    again = ledger.record(ev(), idempotency_key="req-1")
    assert again == first
    assert ledger.head()[0] == 1
    with pytest.raises(InputError, match="already used for a different event"):
        ledger.record(ev(choice="deny"), idempotency_key="req-1")
    assert ledger.head()[0] == 1


def test_duplicate_event_id_is_rejected(ledger: Ledger) -> None:
    ledger.record(ev(event_id="x-1"))
    with pytest.raises(InputError, match="already in the ledger"):
        ledger.record(ev(event_id="x-1", choice="deny"))
    assert ledger.head()[0] == 1


def test_state_as_of_returns_the_choice_that_held_then(ledger: Ledger) -> None:
    ledger.record(ev(choice="grant", minutes=0))
    ledger.record(ev(choice="deny", minutes=10))
    ledger.record(ev(scope="third_party", choice="deny", minutes=5))
    at3 = {(s.scope): s.choice for s in ledger.state("m1", T0 + timedelta(minutes=3))}
    assert at3 == {"first_party": "grant"}
    at10 = {(s.scope): s.choice for s in ledger.state("m1", T0 + timedelta(minutes=10))}
    assert at10 == {"first_party": "deny", "third_party": "deny"}
    assert ledger.state("m1", T0 - timedelta(seconds=1)) == []
    assert ledger.state("nobody") == []
    now = ledger.state("m1")
    assert [s.event.seq for s in now] == [2, 3]


def test_late_recorded_backdated_event_is_ordered_by_time_then_seq(ledger: Ledger) -> None:
    ledger.record(ev(choice="deny", minutes=10))
    ledger.record(ev(choice="grant", minutes=5))  # backdated correction arrives later
    ledger.record(ev(choice="grant", minutes=10))  # same instant as the first: higher seq wins
    st = ledger.state("m1", T0 + timedelta(minutes=7))
    assert [(s.choice, s.event.seq) for s in st] == [("grant", 2)]
    st = ledger.state("m1", T0 + timedelta(minutes=10))
    assert [(s.choice, s.event.seq) for s in st] == [("grant", 3)]


def test_history_lists_every_event_in_order(ledger: Ledger) -> None:
    for i in range(5):
        ledger.record(ev(choice="grant" if i % 2 else "deny", minutes=i))
    ledger.record(ev(member="m2"))
    hist = ledger.history("m1")
    assert [e.seq for e in hist] == [1, 2, 3, 4, 5]
    assert ledger.history("m3") == []


def test_gpc_records_deny_for_the_given_scopes(ledger: Ledger) -> None:
    ledger.record(ev(scope="third_party", choice="grant"))
    out = record_gpc(ledger, "m1", ["third_party", "affiliate"], policy_version="2025.1", at=T0 + timedelta(minutes=1), idempotency_key="gpc-req-7")
    assert [(e.scope, e.choice, e.source, e.policy_version) for e in out] == [
        ("third_party", "deny", "gpc", "2025.1"), ("affiliate", "deny", "gpc", "2025.1")]
    again = record_gpc(ledger, "m1", ["third_party", "affiliate"], policy_version="2025.1", at=T0 + timedelta(minutes=1), idempotency_key="gpc-req-7")
    assert again == out and ledger.head()[0] == 3
    assert {s.scope: s.choice for s in ledger.state("m1")} == {"third_party": "deny", "affiliate": "deny"}
    with pytest.raises(InputError):
        record_gpc(ledger, "m1", ["everyone"], policy_version=None)


def test_publish_policy_is_idempotent_and_refuses_a_changed_body(ledger: Ledger) -> None:
    pol = PublishedPolicy(name="default", version="2025.1", sha256="a" * 64, published_at=T0,
                          effective_at=T0 + timedelta(days=30), notice_days=30, body="name: default\n")
    stored = ledger.publish_policy(pol, backfill=True)
    assert ledger.publish_policy(pol, backfill=True) == stored  # the first record stands
    assert ledger.published_policy("default", "2025.1") == stored
    assert stored.model_copy(update={"recorded_at": None, "backfilled": False}) == pol
    assert ledger.published_policy("default", "2024.2") is None
    with pytest.raises(PolicyError, match="another sha256"):
        ledger.publish_policy(pol.model_copy(update={"sha256": "b" * 64}), backfill=True)
    older = pol.model_copy(update={"version": "2024.10"})
    oldest = pol.model_copy(update={"version": "2024.2"})
    ledger.publish_policy(older, backfill=True)
    ledger.publish_policy(oldest, backfill=True)
    assert [p.version for p in ledger.published_policies()] == ["2024.2", "2024.10", "2025.1"]


def test_a_backdated_publication_is_refused_unless_backfilled_and_the_ledger_records_when(ledger: Ledger) -> None:
    """A policy published now that claims last year's date gets no notice it did not give."""
    now = utc_now()
    old = PublishedPolicy(name="quiet", version="2.0", sha256="c" * 64, published_at=now - timedelta(days=400),
                          effective_at=now - timedelta(days=300), notice_days=30, body="name: quiet\n")
    with pytest.raises(PolicyError, match="says it was published .* but the ledger is recording its publication now") as info:
        ledger.publish_policy(old)
    assert "--backfill" in (info.value.hint or "")
    assert ledger.published_policy("quiet", "2.0") is None  # nothing stored
    back = ledger.publish_policy(old, backfill=True)
    assert back.backfilled and back.recorded_at is not None and abs(back.recorded_at - now) < timedelta(minutes=5)
    assert back.notice_from == old.published_at  # a backfill keeps the file's date (and builds say so)
    assert ledger.published_policy("quiet", "2.0") == back
    today = old.model_copy(update={"version": "2.1", "published_at": now - timedelta(hours=7),
                                   "effective_at": now + timedelta(days=30)})
    fresh = ledger.publish_policy(today)  # dated earlier today: within the slack
    assert not fresh.backfilled and fresh.notice_from == today.published_at
    flagged = ledger.publish_policy(today.model_copy(update={"version": "2.2"}), backfill=True)
    assert not flagged.backfilled  # a file dated today is no backfill, whatever the flag says
    # A record that claims an older date than the ledger saw (written behind its back) counts from the ledger's time.
    forged = fresh.model_copy(update={"published_at": now - timedelta(days=400)})
    assert forged.recorded_at is not None and forged.notice_from == forged.recorded_at - PUBLICATION_SLACK


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_import_file_appends_every_row_in_file_order(ledger: Ledger, tmp_path: Path, suffix: str) -> None:
    ledger.record(ev(member="m0", event_id="first"))
    rows = event_rows(300)
    n = ledger.import_file(write_rows(rows, tmp_path / f"events{suffix}"))
    assert n == 300
    assert ledger.head()[0] == 301
    hist = ledger.history("m3")
    assert [e.event_id for e in hist] == [r["event_id"] for r in rows if r["member_id"] == "m3"]
    assert hist[0].recorded_at == rows[3]["recorded_at"] and hist[0].policy_version == "2024.2"
    assert ledger.history("m0")[1].policy_version is None
    assert ledger.verify().ok


def test_import_of_an_event_id_already_stored_writes_nothing(ledger: Ledger, tmp_path: Path) -> None:
    ledger.import_file(write_rows(event_rows(50), tmp_path / "a.parquet"))
    rows = event_rows(80, prefix="f")
    rows[61]["event_id"] = "e7"
    with pytest.raises(InputError, match=r"row 62: event_id 'e7' is already in the ledger"):
        ledger.import_file(write_rows(rows, tmp_path / "b.parquet"))
    assert ledger.head()[0] == 50
    assert ledger.verify().ok


def test_snapshot_holds_the_latest_event_per_key_at_the_cutoff(ledger: Ledger, tmp_path: Path) -> None:
    ledger.import_file(write_rows(event_rows(120, members=7), tmp_path / "e.parquet"))
    ledger.record(ev(member="m1", scope="affiliate", choice="deny", minutes=5))  # backdated
    cut = T0 + timedelta(minutes=60)
    info = ledger.snapshot(cut, tmp_path / "snap.parquet")
    table = pq.read_table(tmp_path / "snap.parquet")
    assert table.schema.names == ["member_id", "purpose", "scope", "choice", "source", "policy_version", "recorded_at", "seq"]
    assert str(table.schema.field("recorded_at").type) == "timestamp[us, tz=UTC]"
    assert info.rows == table.num_rows and info.head_seq == 121 and info.head_hash == ledger.head()[1]
    got = {(r["member_id"], r["purpose"], r["scope"]): (r["choice"], r["seq"]) for r in table.to_pylist()}
    expected = {}
    for m in range(7):
        for s in ledger.state(f"m{m}", cut):
            expected[(s.member_id, s.purpose, s.scope)] = (s.choice, s.event.seq)
    assert got == expected
    seqs = table.column("seq").to_pylist()
    assert seqs == sorted(seqs)


def test_snapshot_of_an_empty_ledger_and_arrow_output(ledger: Ledger, tmp_path: Path) -> None:
    info = ledger.snapshot(None, tmp_path / "s.arrow")
    import pyarrow.feather as feather

    assert info.rows == 0 and feather.read_table(tmp_path / "s.arrow").num_rows == 0
    with pytest.raises(InputError, match=r"\.parquet"):
        ledger.snapshot(None, tmp_path / "s.txt")


def test_reopen_without_create_sees_the_same_ledger(ledger_url: str) -> None:
    with open_ledger(ledger_url) as led:
        led.record(ev())
        head = led.head()
    with open_ledger(ledger_url, create=False) as again:
        assert again.head() == head


def test_open_without_create_refuses_an_uninitialised_database(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger database"):
        open_ledger(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    with pytest.raises(LedgerError, match="unsupported"):
        open_ledger("mysql://x@y/z")


def test_snapshot_readers_agree(ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ADBC reader (when installed) and the plain-driver fallback write identical snapshots,
    and the ADBC reader sees writes committed a moment before by this very process."""
    rows = event_rows(400, members=37)
    rows[5]["member_id"] = "m,\"quoted\"\nnew line"
    ledger.import_file(write_rows(rows, tmp_path / "e.parquet"))
    cut = T0 + timedelta(minutes=300)
    monkeypatch.setattr("consentgate.ledger.snapshot.ADBC_SQLITE_MIN_EVENTS", 0)  # force the ADBC child on SQLite
    ledger.snapshot(cut, tmp_path / "a.parquet")
    monkeypatch.setenv("CONSENTGATE_NO_ADBC", "1")
    ledger.snapshot(cut, tmp_path / "b.parquet")
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.equals(b) and a.num_rows > 37
    ledger.record(make_event(member_id="late", scope="affiliate", choice="deny", recorded_at=T0))
    monkeypatch.delenv("CONSENTGATE_NO_ADBC")
    info = ledger.snapshot(cut, tmp_path / "c.parquet")
    assert "late" in pq.read_table(tmp_path / "c.parquet").column("member_id").to_pylist()
    assert info.rows == a.num_rows + 1
    assert "m,\"quoted\"\nnew line" in a.column("member_id").to_pylist()


def test_snapshot_from_events_ignores_the_state_table_and_verify_can_skip_it(ledger: Ledger, ledger_url: str, tmp_path: Path) -> None:
    """``snapshot(from_events=True)`` equals the usual snapshot and does not read ``consent_state``;
    ``verify(state=False)`` checks the chain only (what a build relies on: it snapshots from events)."""
    from ledger_helpers import run_sql
    from sqlalchemy import text

    ledger.import_file(write_rows(event_rows(120, members=7), tmp_path / "e.parquet"))
    for cut in (T0 + timedelta(minutes=60), None):
        ledger.snapshot(cut, tmp_path / "usual.parquet")
        ledger.snapshot(cut, tmp_path / "events.parquet", from_events=True)
        assert pq.read_table(tmp_path / "events.parquet").equals(pq.read_table(tmp_path / "usual.parquet"))
    run_sql(ledger_url, lambda conn: conn.execute(text("DELETE FROM consent_state")))
    ledger.snapshot(None, tmp_path / "after.parquet", from_events=True)
    assert pq.read_table(tmp_path / "after.parquet").equals(pq.read_table(tmp_path / "events.parquet"))
    assert ledger.verify(state=False).ok
    assert not ledger.verify().ok
