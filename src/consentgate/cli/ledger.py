"""CLI group `consentgate ledger`: init, record, import, show, history, snapshot, verify.

Every command takes ``--db URL`` (default: setting ``db_url`` / ``CONSENTGATE_DB_URL``).
Only ``init``, ``record`` and ``import`` create or migrate the database; the read
commands refuse a database that was never initialised.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from consentgate.cli.common import console, parse_time_option, print_json, settings
from consentgate.errors import LedgerIntegrityError, UnknownMemberError

if TYPE_CHECKING:
    from consentgate.ledger import Ledger, VerifyResult

app = typer.Typer(
    help="Consent ledger: record, import, show, history, snapshot and verify members' AI-training choices.",
    no_args_is_help=True,
    add_completion=False,
)

DbOpt = Annotated[Optional[str], typer.Option("--db", help="Ledger database URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB (default: setting db_url).")]
MemberOpt = Annotated[str, typer.Option("--member", help="Member id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print plain JSON instead of a table.")]


def _open(db: str | None, *, create: bool) -> Ledger:
    from consentgate.ledger import open_ledger

    return open_ledger(settings(db_url=db).db_url, create=create)


def _print_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command("init")
def init(db: DbOpt = None) -> None:
    """Create the ledger database (or migrate it to the current schema)."""
    with _open(db, create=True) as led:
        seq, h = led.head()
        console.print(f"Ledger ready ({led.backend}): {seq} events, head {h[:16]}")


@app.command("record")
def record(
    member: MemberOpt,
    scope: Annotated[str, typer.Option("--scope", help="Recipient scope: first_party, affiliate or third_party.")],
    choice: Annotated[str, typer.Option("--choice", help="grant or deny.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Purpose of use.")] = "ai_training",
    source: Annotated[str, typer.Option("--source", help="Who made the choice: member, gpc, admin or import.")] = "member",
    policy_version: Annotated[Optional[str], typer.Option("--policy-version", help="Policy version shown to the member when they chose.")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="When the choice was made (ISO 8601 with timezone; default now).")] = None,
    idempotency_key: Annotated[Optional[str], typer.Option("--idempotency-key", help="Retry-safe key: recording again with the same key returns the first event.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record one consent choice durably (appended to the hash chain)."""
    from consentgate.ledger import make_event

    ev = make_event(member_id=member, purpose=purpose, scope=scope, choice=choice, source=source,
                    policy_version=policy_version, recorded_at=parse_time_option(at, "--at"))
    with _open(db, create=True) as led:
        stored = led.record(ev, idempotency_key=idempotency_key)
    if as_json:
        print_json(stored.to_dict())
    else:
        console.print(f"Recorded seq {stored.seq}: {stored.member_id} {stored.purpose}/{stored.scope} = {stored.choice} ({stored.hash[:16]})", markup=False)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="Parquet, CSV or JSONL file in the consent_events schema (docs/data-model.md).")],
    db: DbOpt = None,
) -> None:
    """Import events from a file: every row is validated first; one bad row rejects the whole file."""
    with _open(db, create=True) as led:
        n = led.import_file(file)
        seq, _ = led.head()
    console.print(f"Imported {n} events from {file}; ledger head is now seq {seq}", markup=False)


@app.command("show")
def show(
    member: MemberOpt,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Show the state that held at this moment (ISO 8601 with timezone; default now).")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a member's standing choice per purpose and scope, and the event that decided each."""
    when = parse_time_option(as_of, "--as-of")
    with _open(db, create=False) as led:
        states = led.state(member, when)
        if not states and not led.history(member):
            raise UnknownMemberError(f"member {member!r} has no events in the ledger", member_id=member)
    if as_json:
        print_json([s.to_dict() for s in states])
        return
    _print_table(
        f"{member} as of {when.isoformat() if when else 'now'}",
        ("purpose", "scope", "choice", "source", "policy", "recorded_at", "seq"),
        [(s.purpose, s.scope, s.choice, s.event.source, s.event.policy_version or "-", s.event.recorded_at.isoformat(), str(s.event.seq))
         for s in states],
    )
    if not states:
        console.print("No choices recorded as of that moment: no consent.")


@app.command("history")
def history(member: MemberOpt, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List every event of a member in sequence order."""
    with _open(db, create=False) as led:
        evs = led.history(member)
    if not evs:
        raise UnknownMemberError(f"member {member!r} has no events in the ledger", member_id=member)
    if as_json:
        print_json([e.to_dict() for e in evs])
        return
    _print_table(
        f"History of {member}",
        ("seq", "recorded_at", "purpose", "scope", "choice", "source", "policy", "hash"),
        [(str(e.seq), e.recorded_at.isoformat(), e.purpose, e.scope, e.choice, e.source, e.policy_version or "-", e.hash[:16]) for e in evs],
    )


def _refuse_tampered(res: VerifyResult) -> None:
    """Raise ``LedgerIntegrityError`` naming the first bad seq (or the state's disagreement) unless ``res`` is ok."""
    if not res.ok and res.first_bad_seq is None:  # chain intact, the maintained state is not
        raise LedgerIntegrityError(f"ledger state does not match its events: {res.reason}")
    if not res.ok:
        raise LedgerIntegrityError(f"hash chain broken at seq {res.first_bad_seq}: {res.reason}", seq=res.first_bad_seq)


@app.command("snapshot")
def snapshot(
    out: Annotated[Path, typer.Option("--out", help="Output file: .parquet (or .arrow for Arrow IPC).")],
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Cut-off (ISO 8601 with timezone; default now).")] = None,
    db: DbOpt = None,
    verify_first: Annotated[bool, typer.Option(
        "--verify/--no-verify", help="Verify the hash chain and the maintained state first and write nothing from a "
        "tampered ledger (default). --no-verify skips it, e.g. right after `ledger verify`.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write every member's state as of a moment to Parquet, for the build engines.

    The ledger is verified first (as `ledger verify` does) unless --no-verify: a snapshot taken
    as of now reads the maintained state table, and one from a tampered ledger must not look authoritative.
    """
    when = parse_time_option(as_of, "--as-of")
    with _open(db, create=False) as led:
        if verify_first:
            res = led.verify()
            if as_json and not res.ok:
                print_json(res.to_dict())  # as `ledger verify --json` does
            _refuse_tampered(res)
        info = led.snapshot(when, out)
    if as_json:
        print_json(info.to_dict())
    else:
        console.print(f"Wrote {info.rows} rows as of {info.as_of.isoformat()} to {out} (head seq {info.head_seq}, {info.head_hash[:16]})", markup=False)


@app.command("verify")
def verify(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Walk the hash chain and recompute the current state; exit 1 naming the first bad sequence number
    (or the first member whose stored state disagrees with the events) if the ledger was tampered with."""
    with _open(db, create=False) as led:
        res = led.verify()
    if as_json:
        print_json(res.to_dict())
    _refuse_tampered(res)
    if not as_json:
        console.print(f"OK: {res.events} events, chain intact, head seq {res.head_seq} ({res.head_hash[:16]})")
