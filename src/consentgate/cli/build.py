"""CLI group `consentgate build`: build a dataset from a build spec; explain one record; verify and list builds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    help="Build training datasets from a build spec (docs/build-reference.md); explain, verify and list builds.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="The build spec (YAML); relative paths in it are relative to its folder.")],
    engine: Annotated[str, typer.Option("--engine", help="Build engine; this release has `duckdb`.")] = "duckdb",
    workers: Annotated[
        Optional[int], typer.Option("--workers", min=1, max=256, help="Worker processes for detection and redaction (default: settings.workers, the CPU count).")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an existing output folder (atomically, once the new build is complete).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; print only the result line.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest's headline facts as JSON.")] = False,
) -> None:
    """Build the dataset a spec describes: read, detect, decide, redact, write shards, manifest and card, atomically."""
    from consentgate.build import load_spec, run_build
    from consentgate.cli.common import console, print_json, settings

    s = settings(workers=workers)
    result = run_build(load_spec(spec), engine=engine, workers=s.workers, replace=replace, progress=not (quiet or as_json), settings=s)
    m = result.manifest
    by = m["counts"]["by_decision"]
    if as_json:
        print_json({"output": str(result.output), "content_hash": result.content_hash, "counts": m["counts"],
                    "redactions": m["redaction"]["counts"], "timings_s": m["build"]["timings_s"]})
        return
    console.print(
        f"Built {result.output}: {by.get('include', 0)} records included, {by.get('exclude', 0)} excluded, "
        f"{len(m['sharding']['rows'])} shards; content_hash {result.content_hash}",
        markup=False, highlight=False, soft_wrap=True,
    )


@app.command("explain")
def explain(
    spec: Annotated[Path, typer.Argument(help="The build spec (YAML).")],
    record: Annotated[str, typer.Option("--record", help="The record id to explain.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the explanation as JSON.")] = False,
) -> None:
    """Show one record's decision, reasons (with the member and rule behind each), shard and redactions (types and offsets, never text)."""
    from consentgate.build import explain_record, load_spec
    from consentgate.cli.common import console, print_json, settings

    info = explain_record(load_spec(spec), record, settings=settings())
    if as_json:
        print_json(info)
        return
    console.print(f"record {info['record_id']} ({info['category']}): {info['decision'].upper()}", markup=False, highlight=False, soft_wrap=True)
    shard = "none (excluded)" if info["shard"] is None else info["shard"]
    console.print(f"policy {info['policy']}, scope {info['scope']}, as of {info['as_of']}, shard {shard}", markup=False, highlight=False, soft_wrap=True)
    if not info["content_scanned"]:
        console.print("content not scanned: the record is excluded without it (topics and PII were not looked for)",
                      markup=False, highlight=False, soft_wrap=True)
    if info["policy_refused"]:
        console.print(f"note: a build would refuse this policy: {info['policy_refused']}", markup=False, highlight=False, soft_wrap=True)
    for reason in info["reasons"]:
        console.print(f"  reason {reason}", markup=False, highlight=False, soft_wrap=True)
    for f in info["findings"]:
        who = f" member {f['member_id']}" if f["member_id"] else ""
        console.print(f"    {f['code']}{who}: {f['detail']}", markup=False, highlight=False, soft_wrap=True)
    if info["topics"]:
        console.print(f"  topics: {', '.join(info['topics'])}", markup=False, highlight=False, soft_wrap=True)
    for r in info["redactions"]:
        console.print(f"  redact {r['entity_type']} [{r['start']}:{r['end']}] -> {r['strategy']}", markup=False, highlight=False, soft_wrap=True)


@app.command("verify")
def verify(
    folder: Annotated[Path, typer.Argument(help="A dataset folder written by `build run`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute every hash and count of a dataset folder against its manifest; exit 1 listing each difference."""
    from consentgate.build import verify_build
    from consentgate.cli.common import console, print_json
    from consentgate.errors import BuildVerifyError

    report = verify_build(folder)
    if as_json:
        print_json(report.to_dict())
        if not report.ok:
            raise typer.Exit(1)
        return
    if report.ok:
        console.print(f"OK {folder}: {report.files_checked} files match the manifest; content_hash {report.content_hash}",
                      markup=False, highlight=False, soft_wrap=True)
        return
    for problem in report.problems:
        console.print(f"DIFFERS {problem}", markup=False, highlight=False, soft_wrap=True)
    raise BuildVerifyError(f"{folder} does not match its manifest ({len(report.problems)} difference(s))", file=str(folder))


@app.command("list")
def list_(
    root: Annotated[Path, typer.Argument(help="A folder holding dataset folders (or a dataset folder itself).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the complete builds in a folder: name, policy, scope, as-of, counts and content hash (unfinished builds are skipped)."""
    from rich.table import Table

    from consentgate.build import list_builds
    from consentgate.cli.common import console, print_json

    builds = list_builds(root)
    if as_json:
        print_json(builds)
        return
    table = Table("path", "name", "policy", "scope", "as_of", "included", "excluded", "content_hash")
    for b in builds:
        table.add_row(b["path"], str(b["name"]), b["policy"], str(b["scope"]), str(b["as_of"]), str(b["included"]),
                      str(b["excluded"]), str(b["content_hash"])[:16])
    console.print(table)
