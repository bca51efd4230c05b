"""CLI group `consentgate policy`: check, publish, diff, explain (policy as code).

- ``check FILE``: validate (file:line errors) and lint against the jurisdiction table; exit 1 on lint errors.
- ``publish FILE [--db URL]``: store name, version, sha256, dates, notice and body in the ledger.
- ``diff OLD NEW [--json]``: widening / narrowing / neutral per change; exit 1 when a widening change lacks notice.
- ``explain --policy FILE --data DIR --record ID [--as-of T]``: the decision, every reason, and the rules and events behind them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from consentgate.cli.common import console, parse_time_option, print_json, settings
from consentgate.errors import InputError

app = typer.Typer(
    help="Policy as code: check a policy against the jurisdiction table, publish it to the ledger, diff two versions, explain a record's decision.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print plain JSON instead of tables.")]
FileArg = Annotated[Path, typer.Argument(help="Policy YAML file (docs/policy-reference.md).", show_default=False)]


def _when(value: str | None, option: str) -> datetime:
    """The option's timestamp, or now when it is not given."""
    return parse_time_option(value, option) or datetime.now(timezone.utc)


@app.command("check")
def check(file: FileArg, json_out: JsonOpt = False) -> None:
    """Validate FILE and lint it against the shipped jurisdiction table (not legal advice).

    A YAML or schema problem stops with one error naming file and line (exit 2). Lint errors
    (the policy is looser than the table) exit 1; warnings (e.g. a short notice period) exit 0.
    """
    from consentgate.policy import load_policy
    from consentgate.policy.lint import has_errors, lint_policy
    from consentgate.policy.regions import reference_table

    policy = load_policy(file)
    findings = lint_policy(policy)
    failed = has_errors(findings)
    if json_out:
        print_json({"file": str(file), "name": policy.name, "version": policy.version, "sha256": policy.sha256,
                    "ok": not failed, "findings": [f.to_dict() for f in findings], "note": reference_table().note})
    else:
        _print_findings(file, policy.name, policy.version, findings, failed, reference_table().note)
    if failed:
        raise typer.Exit(1)


def _print_findings(file: Path, name: str, version: str, findings: list, failed: bool, note: str) -> None:  # type: ignore[type-arg]
    errors = sum(1 for f in findings if f.severity == "error")
    console.print(f"{file}: policy {name} {version}: {errors} error(s), {len(findings) - errors} warning(s)", markup=False, soft_wrap=True)
    for f in findings:
        style = "red" if f.severity == "error" else "yellow"
        where = f"{file}:{f.line}" if f.line else str(file)
        console.print(f"[{style}]{f.severity}[/{style}] {where} [{f.code}]", highlight=False)
        console.print(f"    {f.message}", markup=False, highlight=False)
        if f.citation:
            console.print(f"    source: {f.citation}", markup=False, highlight=False, style="dim")
    console.print("FAIL: the policy is looser than the jurisdiction table." if failed else "OK: no errors.", markup=False, soft_wrap=True)
    console.print(f"Note: {note}", markup=False, style="dim")


@app.command("publish")
def publish(
    file: FileArg,
    db: Annotated[Optional[str], typer.Option("--db", help="Ledger database URL (default: setting db_url / CONSENTGATE_DB_URL).")] = None,
    backfill: Annotated[bool, typer.Option(
        "--backfill", help="Record a publication that happened before this ledger knew of it: its past published_at is "
        "accepted, and every build under it says in its manifest that the date is the file's claim.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Store FILE's name, version, SHA-256, published_at, effective_at, notice_days and text in the ledger.

    The ledger also records when it stored the publication, and notice cannot start more than 36 hours
    before that: a published_at further in the past is refused unless --backfill. Idempotent for the same
    file (the first record stands); a different file under an already published name+version is refused.
    Builds refuse a policy that is unpublished or whose effective_at is before the end of its notice period.
    """
    from consentgate.ledger import PublishedPolicy, open_ledger
    from consentgate.policy import load_policy, published_fields

    policy = load_policy(file)
    with open_ledger(settings(db_url=db).db_url, create=True) as ledger:
        stored = ledger.publish_policy(PublishedPolicy(**published_fields(policy)), backfill=backfill)
    notice_end = stored.notice_end
    recorded = stored.recorded_at.isoformat() if stored.recorded_at is not None else None
    if json_out:
        print_json({k: v for k, v in published_fields(policy).items() if k != "body"}
                   | {"recorded_at": recorded, "backfilled": stored.backfilled, "notice_end": notice_end.isoformat()})
        return
    console.print(
        f"Published {policy.name} {policy.version} (sha256 {policy.sha256[:16]}...): published_at {policy.published_at.isoformat()}, "
        f"effective_at {policy.effective_at.isoformat()}, notice {policy.notice_days} days (ends {notice_end.isoformat()}); "
        f"recorded in the ledger {recorded}{' as a backfill' if stored.backfilled else ''}",
        markup=False, soft_wrap=True,
    )
    if policy.effective_at < notice_end:
        console.print("Warning: effective_at is before the notice period ends; builds will refuse this policy.", style="yellow", markup=False, soft_wrap=True)


@app.command("diff")
def diff(
    old: Annotated[Path, typer.Argument(help="The policy in force (YAML).", show_default=False)],
    new: Annotated[Path, typer.Argument(help="The proposed policy (YAML).", show_default=False)],
    json_out: JsonOpt = False,
) -> None:
    """List each change from OLD to NEW as widening, narrowing or neutral, and what it needs (notice or fresh consent).

    Exits 1 when a widening change has less notice than required (min of NEW's notice_days and
    effective_at - published_at, against the table's notice period) or needs fresh consent.
    """
    from consentgate.policy import load_policy
    from consentgate.policy.diff import diff_policies

    report = diff_policies(load_policy(old), load_policy(new))
    if json_out:
        print_json(report.to_dict())
    else:
        console.print(f"{report.old} -> {report.new}: {len(report.changes)} change(s); notice given {report.notice_given_days} days", markup=False, soft_wrap=True)
        colour = {"widening": "red", "narrowing": "green", "neutral": "dim"}
        for c in report.changes:
            needs = f"needs {c.requires}" + (f" ({c.required_notice_days} days)" if c.requires == "notice" else "") if c.requires != "none" else ""
            block = " BLOCKING" if c.blocking else ""
            console.print(f"[{colour[c.kind]}]{c.kind:<9}[/{colour[c.kind]}] {c.section}.{c.key}: {c.old} -> {c.new}", highlight=False, soft_wrap=True)
            if needs or c.note:
                console.print(f"          {needs}{block}{'; ' + c.note if c.note else ''}", markup=False, highlight=False, soft_wrap=True)
        console.print("BLOCKED: a widening change has less notice than required or needs fresh consent." if report.blocking else "OK: no widening change lacks notice.", markup=False, soft_wrap=True)
    if report.blocking:
        raise typer.Exit(1)


@app.command("explain")
def explain(
    policy_file: Annotated[Path, typer.Option("--policy", help="Policy YAML file.", show_default=False)],
    data: Annotated[Path, typer.Option("--data", help="Folder with members.parquet, records.parquet, consent_events.parquet (and optionally labels.parquet).", show_default=False)],
    record_id: Annotated[str, typer.Option("--record", help="The record id to explain.", show_default=False)],
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Decide as of this ISO 8601 time with timezone (default: now).")] = None,
    scope: Annotated[Optional[str], typer.Option("--scope", help="Recipient scope: first_party, affiliate or third_party (default: setting default_scope).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Print a record's decision, every reason, and the rules and consent events behind them.

    The consent state is the latest event per member/purpose/scope at --as-of, read from
    consent_events.parquet. Topics come from labels.parquet when the folder has one.
    """
    from consentgate.policy import load_policy
    from consentgate.policy.explain import explain_record

    if not data.is_dir():
        raise InputError(f"--data {data} is not a folder", field="--data", file=str(data))
    when = _when(as_of, "--as-of")
    target = settings(default_scope=scope).default_scope
    result = explain_record(load_policy(policy_file), data, record_id, as_of=when, scope=target)
    if json_out:
        print_json(result.to_dict())
        return
    _print_explanation(result.to_dict())


def _print_explanation(d: dict) -> None:  # type: ignore[type-arg]
    colour = "green" if d["decision"] == "include" else "red"
    console.print(f"record {d['record_id']}: [{colour}]{d['decision']}[/{colour}] (scope {d['scope']}, as of {d['as_of']})")
    console.print(f"category rule: {d['category_rule']}", markup=False, soft_wrap=True)
    console.print(f"reasons: {', '.join(d['reasons']) or '(none)'}", markup=False, soft_wrap=True)
    for f in d["findings"]:
        who = f" member {f['member_id']}" if f["member_id"] else ""
        console.print(f"  - {f['code']}{who}: {f['detail']}", markup=False, soft_wrap=True)
    console.print(f"topics: {', '.join(d['topics']) or '(none)'} [source: {d['topics_source']}]", markup=False, soft_wrap=True)
    if d["redact_topics"]:
        console.print(f"redact topics: {', '.join(d['redact_topics'])}", markup=False, soft_wrap=True)
    for s in d["subjects"]:
        if not s["known"]:
            console.print(f"subject {s['member_id']}: unknown member", markup=False, soft_wrap=True)
            continue
        console.print(
            f"subject {s['member_id']}: {s['country']}{'/' + s['subdivision'] if s['subdivision'] else ''} tier {s['tier']} "
            f"-> jurisdiction {s['jurisdiction_mode']}; consent: {s['consent'] or 'no event'}",
            markup=False, soft_wrap=True,
        )
        for e in s["events"]:
            console.print(f"    event {e['recorded_at']}: {e['choice']} via {e['source']} (policy_version {e['policy_version']})", markup=False, soft_wrap=True)
