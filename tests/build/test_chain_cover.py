"""A build's chain check reaches every event its snapshot read (``build.consent.cover``).

The check and the snapshot read the ledger each on its own: a writer that appends between
the two reads leaves events the snapshot used but the check never saw. Those are verified
from the check's last event on, before anything is published; a tampered one, or a head the
chain does not reach, stops the build.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from consentgate.build.consent import ChainCheck
from consentgate.errors import LedgerIntegrityError

from .conftest import copy_data


def _checked(small_network: Path, tmp_path: Path) -> tuple[str, Path, ChainCheck]:
    """A private ledger and its chain check, which has already read and verified it."""
    net = copy_data(small_network, tmp_path / "net")
    url = f"sqlite:///{net / 'ledger.db'}"
    check = ChainCheck(url)
    check._proc.join(timeout=120)  # done: its result waits in the pipe
    return url, net / "ledger.db", check


def _append(url: str, n: int) -> tuple[int, str]:
    from consentgate.ledger import ConsentEventIn, open_ledger

    ledger = open_ledger(url, create=False)
    try:
        ledger.record_many([ConsentEventIn(member_id=f"m-late-{i}", scope="first_party", choice="deny") for i in range(n)])
        return ledger.head()
    finally:
        ledger.close()


def test_events_appended_after_the_check_read_the_ledger_are_verified_from_its_last_event(small_network: Path, tmp_path: Path) -> None:
    url, _, check = _checked(small_network, tmp_path)
    head = _append(url, 3)
    check.result(head)  # passes: the three late events chain on from the last one the check verified


def test_a_late_event_altered_before_the_build_publishes_is_refused(small_network: Path, tmp_path: Path) -> None:
    url, db, check = _checked(small_network, tmp_path)
    head = _append(url, 3)
    with sqlite3.connect(db) as con:  # the middle late event's choice flipped behind the ledger's back
        assert con.execute("UPDATE consent_events SET choice = 'allow' WHERE seq = ?", (head[0] - 1,)).rowcount == 1
    with pytest.raises(LedgerIntegrityError, match=f"hash chain is broken at sequence {head[0] - 1}"):
        check.result(head)


def test_a_snapshot_head_other_than_the_checked_last_event_is_refused(small_network: Path, tmp_path: Path) -> None:
    url, db, check = _checked(small_network, tmp_path)
    with sqlite3.connect(db) as con:
        seq = con.execute("SELECT max(seq) FROM consent_events").fetchone()[0]
    with pytest.raises(LedgerIntegrityError, match=f"the snapshot's head \\(sequence {seq}\\) changed"):
        check.result((seq, "0" * 64))


def test_a_late_head_with_another_hash_is_refused(small_network: Path, tmp_path: Path) -> None:
    url, _, check = _checked(small_network, tmp_path)
    head = _append(url, 2)
    with pytest.raises(LedgerIntegrityError, match=f"the snapshot's head \\(sequence {head[0]}\\) changed"):
        check.result((head[0], "0" * 64))


def test_a_snapshot_head_past_the_end_of_the_chain_is_refused(small_network: Path, tmp_path: Path) -> None:
    url, db, check = _checked(small_network, tmp_path)
    with sqlite3.connect(db) as con:
        seq = con.execute("SELECT max(seq) FROM consent_events").fetchone()[0]
    with pytest.raises(LedgerIntegrityError, match=f"ends at sequence {seq}, before the head its snapshot was taken at \\({seq + 2}\\)"):
        check.result((seq + 2, "0" * 64))


@pytest.mark.parametrize("same_hash", [True, False])
def test_a_snapshot_head_inside_the_verified_chain_must_be_that_event(small_network: Path, tmp_path: Path, same_hash: bool) -> None:
    # The check read past the snapshot's head (a writer appended after the snapshot): the head must still be
    # the event stored at its sequence.
    url, db, check = _checked(small_network, tmp_path)
    with sqlite3.connect(db) as con:
        stored = con.execute("SELECT hash FROM consent_events WHERE seq = 3").fetchone()[0]
    if same_hash:
        check.result((3, stored))
    else:
        with pytest.raises(LedgerIntegrityError, match="the snapshot's head \\(sequence 3\\) changed"):
            check.result((3, "0" * 64))


def test_a_check_of_a_mistyped_ledger_path_creates_no_file(tmp_path: Path) -> None:
    from consentgate.errors import BuildError

    missing = tmp_path / "typo" / "ledgr.db"
    missing.parent.mkdir()
    check = ChainCheck(f"sqlite:///{missing}")
    with pytest.raises(BuildError, match="no ledger database at"):
        check.result()
    assert not missing.exists()
