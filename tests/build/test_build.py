"""End-to-end builds of a generated network: verify, decisions, reference evaluator, determinism, layout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyroaring import BitMap

from consentgate.build import explain_record, load_spec, run_build, shard_of, verify_build
from consentgate.build.manifest import content_hash, read_manifest
from consentgate.config import Settings

from .conftest import AS_OF, POLICY, KEY

BUILD_REASONS = {"PII_DROP_RECORD", "PARTICIPANT_NOT_IN_MEMBERS"}


def test_demo_build_verifies_and_accounts_for_every_record(built: Path, network: Path) -> None:
    report = verify_build(built)
    assert report.ok, report.problems
    decisions = pq.read_table(built / "decisions.parquet")
    records = pq.read_table(network / "data" / "records.parquet", columns=["record_id"])
    ids = decisions.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == records.num_rows
    assert set(ids) == set(records.column("record_id").to_pylist())
    assert "text" not in decisions.column_names
    included = decisions.filter(pc.equal(decisions.column("decision"), "include"))
    data_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (built / "data").glob("shard-*.parquet"))
    assert 0 < included.num_rows == data_rows < decisions.num_rows
    manifest = read_manifest(built / "manifest.json")
    assert manifest["content_hash"] == content_hash(manifest)
    assert manifest["counts"]["by_decision"] == {"include": included.num_rows, "exclude": decisions.num_rows - included.num_rows}
    assert manifest["ledger"]["head_seq"] > 0 and len(manifest["ledger"]["head_hash"]) == 64
    assert manifest["policy"]["version"] == "2025.1" and len(manifest["policy"]["sha256"]) == 64
    publication = manifest["policy"]["publication"]  # the fixture's ledger backfills the 2025-dated example policy
    assert publication["backfilled"] is True and publication["notice_from"] == publication["published_at"] == "2025-09-18T00:00:00+00:00"
    assert publication["recorded_at"] > "2026" and "**Backfilled publication:**" in (built / "README.md").read_text()
    assert {i["role"] for i in manifest["inputs"]} == {"records", "members", "policy"}
    assert all(len(o["sha256"]) == 64 for o in manifest["outputs"])
    assert KEY not in (built / "manifest.json").read_text() + (built / "README.md").read_text()


def test_decisions_agree_with_the_reference_evaluator(built: Path, network: Path) -> None:
    from consentgate.detect import Detector
    from consentgate.ledger import open_ledger
    from consentgate.policy import ConsentState, EvalContext, Member, Record, evaluate, load_policy

    data = network / "data"
    members_t = pq.read_table(data / "members.parquet")
    records_t = pq.read_table(data / "records.parquet")
    snap = built.parent / "snap.parquet"
    as_of = datetime.fromisoformat(AS_OF.replace("Z", "+00:00"))
    ledger = open_ledger(f"sqlite:///{network / 'ledger.db'}", create=False)
    ledger.snapshot(as_of, snap)
    ledger.close()
    members = {m["member_id"]: Member(m["member_id"], m["country"], m["subdivision"], m["birth_year"], m["tier"])
               for m in members_t.to_pylist()}
    consent = {(c["member_id"], c["purpose"], c["scope"]): ConsentState(**c) for c in pq.read_table(snap).to_pylist()}
    scan = Detector(member_names=members_t.column("display_name").to_pylist()).scan(records_t.column("text"))
    ids = records_t.column("record_id").to_pylist()
    topics: dict[str, set[str]] = {}
    for row, topic in zip(scan.topics.column("row").to_pylist(), scan.topics.column("topic").to_pylist()):
        topics.setdefault(ids[row], set()).add(topic)
    policy = load_policy(POLICY)
    blind = EvalContext(policy, scope="first_party", as_of=as_of, members=members, consent=consent)
    ctx = EvalContext(policy, scope="first_party", as_of=as_of, members=members, consent=consent, topics=topics)
    got = {d["record_id"]: d for d in pq.read_table(built / "decisions.parquet").to_pylist()}
    mismatches = []
    scanned = 0
    for r in records_t.select(["record_id", "category", "author_id", "participants", "created_at"]).to_pylist():
        record = Record(r["record_id"], r["category"], r["author_id"], tuple(r["participants"]), r["created_at"])
        screen = evaluate(record, blind)
        mine = got[r["record_id"]]
        if screen.decision == "exclude" or any(p not in members for p in r["participants"]):
            # Excluded without its content: never scanned, reasons from the screen (or the unknown participant).
            want = screen.reasons or ("PARTICIPANT_NOT_IN_MEMBERS",)
            ok = (mine["decision"], tuple(mine["reasons"]), mine["content_scanned"], mine["shard"]) == ("exclude", want, False, None)
        else:
            scanned += 1
            ref = evaluate(record, ctx)
            policy_reasons = tuple(x for x in mine["reasons"] if x not in BUILD_REASONS)
            expected = "include" if ref.decision == "include" and not set(mine["reasons"]) & BUILD_REASONS else "exclude"
            ok = policy_reasons == ref.reasons and mine["decision"] == expected and mine["content_scanned"]
            ok = ok and (mine["shard"] is None) == (expected == "exclude")
        if not ok:
            mismatches.append((r["record_id"], mine, screen.reasons))
    assert 0 < scanned < len(got) and all(d["content_scanned"] for d in got.values() if d["decision"] == "include")
    assert not mismatches, mismatches[:5]


def test_shards_slices_and_threads(built: Path, network: Path) -> None:
    manifest = read_manifest(built / "manifest.json")
    shards, slices = manifest["sharding"]["shards"], manifest["sharding"]["slices"]
    records = {r["record_id"]: r for r in pq.read_table(network / "data" / "records.parquet", columns=["record_id", "thread_id"]).to_pylist()}
    thread_shard: dict[str, int] = {}
    for d in pq.read_table(built / "decisions.parquet").to_pylist():
        if d["decision"] == "exclude":
            assert d["shard"] is None and d["slice"] is None  # an excluded record is in no shard
            continue
        rec = records[d["record_id"]]
        key = rec["thread_id"] or rec["record_id"]
        assert d["shard"] == shard_of(key, shards)
        if rec["thread_id"]:
            assert thread_shard.setdefault(rec["thread_id"], d["shard"]) == d["shard"]
    for k in range(shards):
        t = pq.read_table(built / "data" / f"shard-{k:05d}.parquet")
        created = t.column("created_at").to_pylist()
        sl = t.column("slice").to_pylist()
        assert created == sorted(created)
        assert sl == sorted(sl) and set(sl) <= set(range(slices))
        if t.num_rows >= slices:
            assert set(sl) == set(range(slices))
        pf = pq.ParquetFile(built / "data" / f"shard-{k:05d}.parquet")
        assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
        for g in range(pf.num_row_groups):  # a row group never spans two slices
            assert len(set(pf.read_row_group(g, columns=["slice"]).column(0).to_pylist())) == 1


def test_subject_bitmaps_cover_every_participant(built: Path) -> None:
    index = {r["member_id"]: r["index"] for r in pq.read_table(built / "subjects" / "members.parquet").to_pylist()}
    assert sorted(index.values()) == list(range(len(index)))
    for shard in sorted((built / "data").glob("shard-*.parquet")):
        t = pq.read_table(shard, columns=["participants", "author_id"])
        expected = {index[m] for ps in t.column("participants").to_pylist() for m in ps}
        expected |= {index[a] for a in t.column("author_id").to_pylist()}
        bitmap = BitMap.deserialize((built / "subjects" / f"{shard.stem}.roaring").read_bytes())
        assert set(bitmap) == expected


def test_text_is_redacted(built: Path, network: Path) -> None:
    members = pq.read_table(network / "data" / "members.parquet", columns=["email"]).column("email").to_pylist()
    con = duckdb.connect()
    leaked = con.execute(
        f"SELECT count(*) FROM read_parquet('{built}/data/*.parquet') d JOIN (SELECT unnest(?::VARCHAR[]) AS e) m ON contains(d.text, m.e)",
        [members],
    ).fetchall()[0][0]
    assert leaked == 0
    masked = con.execute(f"SELECT count(*) FROM read_parquet('{built}/data/*.parquet') WHERE contains(text, '[EMAIL_ADDRESS]')").fetchall()[0][0]
    redactions = read_manifest(built / "manifest.json")["redaction"]["counts"]
    assert masked > 0 and redactions.get("EMAIL_ADDRESS", 0) >= masked


def test_one_and_two_workers_give_identical_files(small_network: Path, write_spec: Callable[..., Path], settings: Settings, tmp_path: Path) -> None:
    spec_path = write_spec(small_network, shards=3)
    spec = load_spec(spec_path)
    one = run_build(spec, workers=1, progress=False, settings=settings)
    moved = tmp_path / "first"
    one.output.rename(moved)
    two = run_build(spec, workers=2, progress=False, settings=settings)
    assert one.content_hash == two.content_hash
    for rel in ["decisions.parquet", "data/shard-00000.parquet", "data/shard-00002.parquet", "subjects/shard-00001.roaring", "README.md"]:
        assert (moved / rel).read_bytes() == (two.output / rel).read_bytes(), rel
    assert one.manifest["build"]["workers"] == 1 and two.manifest["build"]["workers"] == 2


def test_explain_matches_the_build(built: Path, network: Path, settings: Settings) -> None:
    spec = load_spec(built.parent / "spec.yaml")
    decisions = {d["record_id"]: d for d in pq.read_table(built / "decisions.parquet").to_pylist()}
    inc = next(r for r, d in decisions.items() if d["decision"] == "include")
    exc = next(r for r, d in decisions.items() if "CONSENT_DENIED" in d["reasons"])
    for rid in (inc, exc):
        info = explain_record(spec, rid, settings=settings)
        assert info["decision"] == decisions[rid]["decision"]
        assert info["reasons"] == decisions[rid]["reasons"]
        assert info["shard"] == decisions[rid]["shard"]
        assert info["policy_refused"] is None
    assert any(f["code"] == "CONSENT_DENIED" and f["member_id"] for f in explain_record(spec, exc, settings=settings)["findings"])


def test_pseudonym_key_is_required(network: Path, write_spec: Callable[..., Path]) -> None:
    from consentgate.config import load_settings
    from consentgate.errors import BuildError

    with pytest.raises(BuildError, match="pseudonym key"):
        run_build(load_spec(write_spec(network)), workers=1, progress=False, settings=load_settings(pseudonym_key=None))


def test_manifest_group_counts_match_the_decisions(built: Path, network: Path) -> None:
    """by_category / by_region / by_tier in the manifest, recomputed from decisions.parquet and the sources."""
    from collections import Counter

    counts = read_manifest(built / "manifest.json")["counts"]
    decided = {d["record_id"]: d["decision"] for d in pq.read_table(built / "decisions.parquet", columns=["record_id", "decision"]).to_pylist()}
    members = {m["member_id"]: m for m in pq.read_table(network / "data" / "members.parquet").to_pylist()}
    want: dict[str, Counter[tuple[str, str]]] = {"by_category": Counter(), "by_region": Counter(), "by_tier": Counter()}
    for r in pq.read_table(network / "data" / "records.parquet", columns=["record_id", "category", "author_id"]).to_pylist():
        m = members.get(r["author_id"])
        region = (m["subdivision"] or m["country"]) if m else "unknown"
        for split, key in (("by_category", r["category"]), ("by_region", region), ("by_tier", m["tier"] if m else "unknown")):
            want[split][(key, decided[r["record_id"]])] += 1
    for split, counter in want.items():
        got = {(k, d): n for k, per in counts[split].items() for d, n in per.items()}
        assert got == dict(counter), split


def test_batch_make_up_and_stream_order_change_no_output(small_network: Path, write_spec: Callable[..., Path], settings: Settings,
                                                         tmp_path: Path) -> None:
    # Batches of 7 records on two workers: the candidates reach detection in many small batches, in no
    # particular order (the detect stream is unordered), and come back out of order.
    spec = load_spec(write_spec(small_network, shards=3))
    whole = run_build(spec, workers=2, progress=False, settings=settings)
    moved = tmp_path / "whole"
    whole.output.rename(moved)
    small = run_build(spec, workers=2, progress=False, settings=settings.model_copy(update={"batch_size": 7}))
    assert whole.counts["content_scanned"] > 20 * 7  # many batches
    assert small.content_hash == whole.content_hash
    for rel in ["decisions.parquet", "data/shard-00000.parquet", "data/shard-00001.parquet", "data/shard-00002.parquet"]:
        assert (moved / rel).read_bytes() == (small.output / rel).read_bytes(), rel


def test_sorted_decisions_read_back_in_small_batches_give_the_same_file(small_network: Path, write_spec: Callable[..., Path],
                                                                         settings: Settings, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The decisions are sorted into a DuckDB table and read back in its order (``decide._sort_decisions``);
    # in batches of 7 rows the order and repeat checks run across many batch boundaries of real output.
    from consentgate.build import decide

    spec = load_spec(write_spec(small_network, shards=3))
    whole = run_build(spec, workers=1, progress=False, settings=settings)
    moved = tmp_path / "whole"
    whole.output.rename(moved)
    monkeypatch.setattr(decide, "ROW_GROUP_ROWS", 7)
    small = run_build(spec, workers=1, progress=False, settings=settings)
    assert whole.counts["records"] > 50 * 7
    assert small.content_hash == whole.content_hash
    assert (moved / "decisions.parquet").read_bytes() == (small.output / "decisions.parquet").read_bytes()
