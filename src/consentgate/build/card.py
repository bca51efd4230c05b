"""The dataset card: ``README.md`` in the Hugging Face format (YAML header, then sections).

Owns the card's text, generated only from the deterministic part of the manifest
(no build id, no timings) so that it hashes the same on every rebuild. It states
the purpose, the policy, the consent basis, the counts, what was excluded and
why, and how a member asks for removal.
"""

from __future__ import annotations

from typing import Any

import yaml

_REASON_TEXT = {
    "UNKNOWN_CATEGORY": "the record's category is not one the policy knows",
    "CATEGORY_EXCLUDED": "the policy excludes the category",
    "CONTRACT_EXCLUDED": "a member's contract (tier) excludes it",
    "UNKNOWN_SUBJECT": "a member it depends on is not in the members table",
    "MINOR": "a member was under the minimum age",
    "JURISDICTION_EXCLUDED": "the member's jurisdiction is excluded",
    "CONSENT_DENIED": "the member opted out",
    "OPT_IN_REQUIRED": "the jurisdiction needs opt-in and there was none",
    "NOTICE_NOT_ELAPSED": "the notice period had not ended",
    "CONSENT_SCOPE_OUTDATED": "the grant predates this recipient",
    "RETROACTIVE_USE": "the record predates the policy and the policy is not retroactive",
    "PII_DROP_RECORD": "it holds PII whose strategy is drop_record",
    "PARTICIPANT_NOT_IN_MEMBERS": "a participant is not in the members table",
}


def _size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>100M"


def _explain(reason: str) -> str:
    base = reason.split(":", 1)
    if reason.startswith("SENSITIVE_TOPIC:"):
        return f"it touches the sensitive topic {base[1]}"
    if reason.startswith("PARTICIPANT:"):
        return "for a participant: " + _explain(base[1])
    return _REASON_TEXT.get(reason, "see docs/policy-reference.md")


def _publication_lines(pub: dict[str, Any] | None) -> list[str]:
    """The policy's publication as the ledger records it; a backfilled one is called out."""
    if not pub:
        return []
    lines = [f"- Published `{pub['published_at']}` (recorded in the ledger `{pub['recorded_at']}`), in effect from "
             f"`{pub['effective_at']}` after {pub['notice_days']} days' notice counted from `{pub['notice_from']}`."]
    if pub.get("backfilled"):
        lines.append("- **Backfilled publication:** the ledger recorded this policy after the date it states "
                     "(`policy publish --backfill`), so its notice period rests on the file's claim, not on the ledger's record.")
    return lines


def render_card(m: dict[str, Any]) -> str:
    """The card for manifest ``m`` (its deterministic keys only)."""
    counts = m["counts"]
    included = int(counts["by_decision"].get("include", 0))
    excluded = int(counts["by_decision"].get("exclude", 0))
    policy = m["policy"]
    header = {
        "pretty_name": m["name"],
        "license": "other",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "size_categories": [_size_category(included)],
        "tags": ["consentgate", "consent-filtered", "pii-redacted"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/shard-*.parquet"}]}],
        "consentgate": {
            "content_hash_scope": "manifest.json (all keys but build and content_hash)",
            "policy": f"{policy['name']} {policy['version']}",
            "policy_sha256": policy["sha256"],
            "scope": m["scope"],
            "as_of": m["as_of"],
        },
    }
    lines = ["---", yaml.safe_dump(header, sort_keys=True, allow_unicode=True).rstrip(), "---", ""]
    lines += [f"# Dataset card for {m['name']}", ""]
    lines += ["## Purpose", "",
              f"Training data for AI models ({policy.get('purpose', 'ai_training')}), for recipients in scope "
              f"`{m['scope']}`{_recipient(m)}. Only member content that the policy allows, from members whose consent "
              "the ledger shows, is included; personal data in the text is redacted.", ""]
    lines += ["## Policy", "",
              f"- Policy `{policy['name']}` version `{policy['version']}`, file SHA-256 `{policy['sha256']}`.",
              "- The build refused to run unless this exact file was published in the ledger and in effect at `as_of`.",
              *_publication_lines(policy.get("publication")), ""]
    ledger = m["ledger"]
    lines += ["## Consent basis", "",
              f"- Consent state as of `{m['as_of']}`, pinned to ledger head sequence {ledger['head_seq']} "
              f"(hash `{ledger['head_hash']}`), {ledger['snapshot_rows']} consent rows.",
              "- Each record was decided by the policy's compiled SQL against that snapshot; every decision and its reasons "
              "are in `decisions.parquet`.", ""]
    lines += ["## Counts", "", "| | records |", "| --- | ---: |",
              f"| input | {counts['records']} |", f"| included | {included} |", f"| excluded | {excluded} |",
              f"| text scanned (the rest were excluded without reading it) | {counts.get('content_scanned', 'n/a')} |", ""]
    lines += _table("Included / excluded by category", counts["by_category"])
    lines += _table("Included / excluded by region of the author", counts["by_region"])
    lines += _table("Included / excluded by tier of the author", counts["by_tier"])
    lines += ["## What was excluded and why", "",
              "A record can have several reasons; each row counts the records that have that reason.", "",
              "| reason | records | meaning |", "| --- | ---: | --- |"]
    lines += [f"| `{r}` | {n} | {_explain(r)} |" for r, n in sorted(counts["by_reason"].items())]
    lines += ["", "## Redaction", "", "| entity type | strategy | redacted |", "| --- | --- | ---: |"]
    strategies = m["redaction"]["strategies"]
    redacted = m["redaction"]["counts"]
    lines += [f"| {e} | {strategies.get(e, '-')} | {redacted.get(e, 0)} |" for e in sorted(set(strategies) | set(redacted))]
    shards = m["sharding"]
    lines += ["", "## Dataset structure", "",
              f"- `data/shard-NNNNN.parquet`: {shards['shards']} shards (SISA), a record's shard fixed by a hash of its thread "
              f"(or record) id; within a shard, records are ordered by `created_at` and split into {shards['slices']} slices "
              "(column `slice`), so retraining can resume from a checkpoint.",
              "- `decisions.parquet`: every input record's decision, reasons, shard and slice (no text).",
              "- `subjects/shard-NNNNN.roaring`: the members whose data is in each shard, as indexes into `subjects/members.parquet`.",
              "- `manifest.json`: hashes and row counts of every input and output file; `content_hash` covers them.", ""]
    lines += ["## How to request removal", "",
              "A member who withdraws consent or asks for erasure records it in the consent ledger "
              "(`consentgate ledger record`). Find the shards holding the member with the subject bitmaps "
              "(`subjects/members.parquet` gives the member's index) and retrain only those shards, from the first slice "
              "containing their data. The next build of this spec excludes them.", ""]
    lines += ["## Provenance", "", f"- Build spec SHA-256 `{m['spec']['sha256']}`.",
              f"- Engine `{m['engine']['name']}`; libraries {', '.join(f'{k} {v}' for k, v in sorted(m['engine']['versions'].items()))}.",
              "- Check this folder with `consentgate build verify <folder>`.", ""]
    return "\n".join(lines)


def _recipient(m: dict[str, Any]) -> str:
    return f" (recipient `{m['recipient']}`)" if m.get("recipient") else ""


def _table(title: str, split: dict[str, dict[str, int]]) -> list[str]:
    out = [f"### {title}", "", "| | included | excluded |", "| --- | ---: | ---: |"]
    out += [f"| {k} | {v.get('include', 0)} | {v.get('exclude', 0)} |" for k, v in sorted(split.items())]
    return out + [""]
