"""Bad input gets a clear error naming the row and reason, and writes nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ledger_helpers import event_rows, to_table, write_rows

from consentgate.errors import InputError, SchemaError
from consentgate.ledger import Ledger, make_event, open_ledger


@pytest.fixture
def led(sqlite_url: str) -> Any:
    with open_ledger(sqlite_url) as led:
        yield led


def _reject(led: Ledger, path: Path, pattern: str) -> InputError:
    with pytest.raises(InputError, match=pattern) as info:
        led.import_file(path)
    assert led.head()[0] == 0, "a rejected file must write nothing"
    return info.value


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("scope", "everyone", r"row 8: unknown scope 'everyone'"),
        ("choice", "maybe", r"row 8: unknown choice 'maybe'"),
        ("source", "robot", r"row 8: unknown source 'robot'"),
        ("purpose", "ads", r"row 8: unknown purpose 'ads'"),
        ("member_id", "", r"row 8: empty member id"),
        ("member_id", None, r"row 8: empty member id"),
        ("event_id", "e2", r"row 8: duplicated event_id 'e2' \(first at row 3\)"),
    ],
)
def test_bad_row_rejects_the_whole_file(led: Ledger, tmp_path: Path, suffix: str, field: str, value: Any, pattern: str) -> None:
    rows = event_rows(20)
    rows[7][field] = value
    err = _reject(led, write_rows(rows, tmp_path / f"bad{suffix}"), pattern)
    assert err.details["row"] == 8


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_timestamp_without_timezone_in_text_files(led: Ledger, tmp_path: Path, suffix: str) -> None:
    rows = event_rows(10)
    for r in rows:
        r["recorded_at"] = r["recorded_at"].isoformat()
    rows[4]["recorded_at"] = "2024-01-01T00:04:00"
    path = tmp_path / f"naive{suffix}"
    write_rows(rows, path)
    _reject(led, path, r"row 5: recorded_at has no timezone")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_unparseable_timestamp(led: Ledger, tmp_path: Path, suffix: str) -> None:
    rows = event_rows(10)
    rows[2]["recorded_at"] = "yesterday"
    _reject(led, write_rows(rows, tmp_path / f"x{suffix}"), r"row 3: recorded_at 'yesterday' is not an ISO 8601 timestamp")


def test_naive_timestamp_column_in_parquet(led: Ledger, tmp_path: Path) -> None:
    table = to_table(event_rows(5))
    naive = table.set_column(7, "recorded_at", table.column("recorded_at").cast(pa.timestamp("us")))
    pq.write_table(naive, tmp_path / "naive.parquet")
    _reject(led, tmp_path / "naive.parquet", r"recorded_at has no timezone")


def test_not_a_supported_format(led: Ledger, tmp_path: Path) -> None:
    (tmp_path / "events.xlsx").write_bytes(b"PK\x03\x04 not a spreadsheet we read")
    _reject(led, tmp_path / "events.xlsx", r"not a Parquet, CSV or JSONL file")


def test_csv_renamed_as_parquet(led: Ledger, tmp_path: Path) -> None:
    write_rows(event_rows(5), tmp_path / "e.csv").rename(tmp_path / "e.parquet")
    _reject(led, tmp_path / "e.parquet", r"not a Parquet file")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_parquet(led: Ledger, tmp_path: Path, keep: float) -> None:
    path = write_rows(event_rows(2000), tmp_path / "e.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    _reject(led, path, r"truncated Parquet file")


def test_damaged_parquet_footer(led: Ledger, tmp_path: Path) -> None:
    path = write_rows(event_rows(200), tmp_path / "e.parquet")
    data = bytearray(path.read_bytes())
    data[-40:-8] = b"\xff" * 32
    path.write_bytes(bytes(data))
    _reject(led, path, r"damaged Parquet file")


def test_missing_and_unknown_columns(led: Ledger, tmp_path: Path) -> None:
    table = to_table(event_rows(5))
    pq.write_table(table.drop_columns(["scope"]), tmp_path / "m.parquet")
    with pytest.raises(SchemaError, match="missing column 'scope'"):
        led.import_file(tmp_path / "m.parquet")
    pq.write_table(table.append_column("note", pa.array(["x"] * 5)), tmp_path / "u.parquet")
    with pytest.raises(SchemaError, match="unknown column 'note'"):
        led.import_file(tmp_path / "u.parquet")
    pq.write_table(table.set_column(1, "member_id", pa.array(range(5))), tmp_path / "t.parquet")
    with pytest.raises(SchemaError, match="'member_id' must be string"):
        led.import_file(tmp_path / "t.parquet")
    assert led.head()[0] == 0


def test_csv_with_a_short_row(led: Ledger, tmp_path: Path) -> None:
    path = write_rows(event_rows(6), tmp_path / "e.csv")
    lines = path.read_text().splitlines()
    lines[4] = '"e3","m3"'
    path.write_text("\n".join(lines) + "\n")
    _reject(led, path, r"row 4: expected 8 columns, found 2")


def test_jsonl_with_a_broken_line_and_a_wrong_type(led: Ledger, tmp_path: Path) -> None:
    path = write_rows(event_rows(6), tmp_path / "e.jsonl")
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]
    path.write_text("\n".join(lines) + "\n")
    _reject(led, path, r"row 3: not a JSON object")
    lines = write_rows(event_rows(6), tmp_path / "f.jsonl").read_text().splitlines()
    lines[3] = lines[3].replace('"member_id": "m3"', '"member_id": 3')
    (tmp_path / "f.jsonl").write_text("\n".join(lines) + "\n")
    _reject(led, tmp_path / "f.jsonl", r"row 4: field 'member_id' must be a string")


def test_missing_file(led: Ledger, tmp_path: Path) -> None:
    _reject(led, tmp_path / "nope.parquet", "does not exist")


def test_first_bad_row_wins_across_checks(led: Ledger, tmp_path: Path) -> None:
    rows = event_rows(30)
    rows[20]["scope"] = "nowhere"
    rows[9]["choice"] = "perhaps"
    _reject(led, write_rows(rows, tmp_path / "e.parquet"), r"row 10: unknown choice")


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"scope": "everyone"}, "unknown scope"),
        ({"choice": "maybe"}, "unknown choice"),
        ({"member_id": "  "}, "member id is empty"),
        ({"recorded_at": datetime(2024, 1, 1)}, "no timezone"),
        ({"source": "robot"}, "unknown source"),
    ],
)
def test_single_event_validation(led: Ledger, fields: dict[str, Any], pattern: str) -> None:
    base: dict[str, Any] = {"member_id": "m1", "scope": "first_party", "choice": "grant"}
    with pytest.raises(InputError, match=pattern):
        led.record(make_event(**{**base, **fields}))
    assert led.head()[0] == 0


def test_error_messages_carry_no_member_text(led: Ledger, tmp_path: Path) -> None:
    rows = event_rows(5)
    rows[1]["scope"] = "Jane Doe lives at 1 Main St and is pregnant"
    err = _reject(led, write_rows(rows, tmp_path / "e.parquet"), "unknown scope")
    assert "pregnant" not in err.message


def test_future_dated_event_is_refused_so_it_cannot_outrank_a_later_opt_out(ledger: Ledger) -> None:
    from datetime import datetime, timedelta, timezone

    from consentgate.ledger import make_event

    future = datetime.now(timezone.utc) + timedelta(days=365)
    with pytest.raises(InputError, match="in the future"):
        ledger.record(make_event(member_id="m1", scope="first_party", choice="grant", recorded_at=future))
    ledger.record(make_event(member_id="m1", scope="first_party", choice="deny"))
    assert [s.choice for s in ledger.state("m1") if s.scope == "first_party"] == ["deny"]


def test_import_refuses_future_dated_and_empty_timestamps(ledger: Ledger, tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    import pyarrow.parquet as pq

    from consentgate.datamodel import CONSENT_EVENTS_SCHEMA

    now = datetime.now(timezone.utc)
    base = {"member_id": "m1", "purpose": "ai_training", "scope": "first_party", "choice": "grant", "source": "import", "policy_version": None}
    future = [dict(base, event_id="e1", recorded_at=now - timedelta(days=1)), dict(base, event_id="e2", recorded_at=now + timedelta(days=30))]
    path = tmp_path / "future.parquet"
    pq.write_table(pa.Table.from_pylist(future, schema=CONSENT_EVENTS_SCHEMA), path)
    with pytest.raises(InputError, match=r"row 2.*in the future"):
        ledger.import_file(path)
    empty = pa.Table.from_pylist([dict(base, event_id="e3", recorded_at=now - timedelta(days=1))], schema=CONSENT_EVENTS_SCHEMA)
    empty = empty.set_column(7, pa.field("recorded_at", pa.timestamp("us", tz="UTC")), pa.array([None], pa.timestamp("us", tz="UTC")))
    pq.write_table(empty, tmp_path / "empty.parquet")
    with pytest.raises(InputError, match=r"row 1.*empty"):
        ledger.import_file(tmp_path / "empty.parquet")
    assert ledger.head()[0] == 0
