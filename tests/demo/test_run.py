"""The end-to-end demo never lets in what the story let in.

The checks here are computed independently of consentgate's policy code, straight
from the generated Parquet: no direct or InMail message, no record touching a
member whose latest ai_training/first_party choice is deny, and nothing from
EU/EEA, GB, CH, CA, HK or CN members.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from consentgate.demo.run import run_demo
from consentgate.errors import InputError

EEA = {
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
}
EXCLUDED_COUNTRIES = EEA | {"GB", "CH", "CA", "HK", "CN"}
AS_OF = datetime(2026, 1, 15, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    console = Console(record=True, width=120)
    result = run_demo(console, members=1500, seed=11, out=out, as_of=AS_OF, progress=False)
    assert result.records_in > 0 and 0 < result.records_out < result.records_in
    assert result.records_out <= result.records_scanned < result.records_in  # excluded on metadata: text never scanned
    text = console.export_text()
    assert "Records by category" in text and "Records by region" in text
    return out


def _included(out: Path, columns: list[str] | None = None) -> pa.Table:
    """Every record the build wrote, across all shards."""
    shards = sorted((out / "dataset" / "data").glob("shard-*.parquet"))
    assert shards, "the build wrote no shard"
    return pa.concat_tables([pq.read_table(s, columns=columns) for s in shards])


def _latest_first_party_choice(out: Path) -> dict[str, str]:
    events = pq.read_table(out / "data" / "consent_events.parquet").to_pylist()
    latest: dict[str, tuple[datetime, int, str]] = {}
    for i, e in enumerate(events):  # file order is ledger order, which breaks ties
        if e["purpose"] != "ai_training" or e["scope"] != "first_party" or e["recorded_at"] > AS_OF:
            continue
        key = (e["recorded_at"], i, e["choice"])
        if e["member_id"] not in latest or key > latest[e["member_id"]]:
            latest[e["member_id"]] = key
    return {m: v[2] for m, v in latest.items()}


def test_no_private_messages(demo: Path) -> None:
    included = _included(demo)
    categories = set(included.column("category").to_pylist())
    assert not categories & {"message.direct", "message.inmail"}
    source = pq.read_table(demo / "data" / "records.parquet")
    assert {"message.direct", "message.inmail"} <= set(source.column("category").to_pylist()), "the input must contain them"


def test_no_record_from_opted_out_member(demo: Path) -> None:
    choice = _latest_first_party_choice(demo)
    denied = {m for m, c in choice.items() if c == "deny"}
    assert denied, "the generated data must contain opt-outs"
    for row in _included(demo, columns=["author_id", "participants"]).to_pylist():
        assert row["author_id"] not in denied
        assert not set(row["participants"]) & denied


def test_no_record_from_excluded_regions(demo: Path) -> None:
    members = pq.read_table(demo / "data" / "members.parquet", columns=["member_id", "country"]).to_pylist()
    country = {m["member_id"]: m["country"] for m in members}
    assert set(country.values()) & EXCLUDED_COUNTRIES, "the input must contain excluded regions"
    for row in _included(demo, columns=["author_id", "participants"]).to_pylist():
        assert country[row["author_id"]] not in EXCLUDED_COUNTRIES
        assert not {country[p] for p in row["participants"]} & EXCLUDED_COUNTRIES


def test_every_input_record_has_one_decision(demo: Path) -> None:
    decisions = pq.read_table(demo / "dataset" / "decisions.parquet")
    source = pq.read_table(demo / "data" / "records.parquet", columns=["record_id"])
    assert sorted(decisions.column("record_id").to_pylist()) == sorted(source.column("record_id").to_pylist())
    included = _included(demo, columns=["record_id"])
    inc_ids = set(pc.filter(decisions.column("record_id"), pc.equal(decisions.column("decision"), "include")).to_pylist())
    assert inc_ids == set(included.column("record_id").to_pylist())
    assert "text" not in decisions.column_names


def test_rerun_replaces_own_output_but_refuses_foreign_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not written by `consentgate demo`"):
        run_demo(Console(file=open("/dev/null", "w")), members=50, seed=1, out=foreign, as_of=AS_OF, progress=False)
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_demo_dataset_verifies(demo: Path) -> None:
    from consentgate.build import verify_build

    report = verify_build(demo / "dataset")
    assert report.ok, report
