"""Chain verification: check every event in sequence order against its stored hash.

Reports the first sequence number at which the chain breaks:
- a gap in ``seq`` (a deleted event) names the missing number;
- a ``prev_hash`` that is not the previous event's hash (reordered or deleted rows);
- a stored ``hash`` that differs from the recomputed one (a changed field).
Deleting the *last* events cannot be seen from inside the chain; compare the head
with one recorded elsewhere (snapshot manifests, the transparency log) for that.

How: the events are read as Arrow batches in ``seq`` order (ADBC: for SQLite in a child
process that streams Arrow IPC, see ``_CHILD``, or in the calling process where it holds no
other connection to the file, ``verify_sqlite_alone``; for PostgreSQL in process). Each row's
hash is recomputed from its *own stored* ``prev_hash``, so rows are independent and
the three checks are vectorised per batch; the first row failing any of them is the
row where the row-by-row walk (``_walk``, kept as the reference and as the fallback)
stops, and it is reported with the same numbers and words. Memory is bounded by a
batch. The fallback walk takes over, from the last row checked, when no Arrow reader
is available or a stored value does not have its declared type (SQLite stores any
type in any column; the walk hashes such values as they are, like it always did).

When the chain is intact, the maintained current state (``consent_state`` and its head
row) is recomputed from the events and compared: a changed, missing or extra state
row is reported with the first (member_id, purpose, scope) that differs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Generator, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

import numpy as np
import pyarrow.ipc  # noqa: F401  (pa.ipc for the SQLite stream)
from sqlalchemy import select

import pyarrow as pa
import pyarrow.compute as pc

from consentgate.ledger import engine as eng
from consentgate.ledger.chain import CANONICAL_QUOTES_SQL, STORED_FIELDS, canonical_sql, event_hash, hex_digests, mistyped_field, utf8_bytes
from consentgate.ledger.models import GENESIS, VerifyResult
from consentgate.ledger.schema import events
from consentgate.ledger.snapshot import libpq_dsn, optional_module
from consentgate.ledger.state import check_state

if TYPE_CHECKING:
    from consentgate.ledger.store import Ledger

_COLS = [events.c[n] for n in STORED_FIELDS]
# Rows per Arrow batch from SQLite; PostgreSQL's driver sizes its batches by bytes.
BATCH_ROWS = 100_000
PG_BATCH_BYTES = 16 << 20

_GAP, _LINK, _ALTERED = "gap", "link", "altered"

# What the readers select: the database builds each row's canonical encoding (chain.
# canonical_sql), so only four columns travel. ``quotes``: how many '"' that encoding
# holds when no value needed escaping (PostgreSQL; -1: not counted). ``typed``: the
# value has its declared storage type where the encoding depends on it (SQLite stores
# any type in any column: a REAL time would be written as JSON by other rules, a BLOB
# hash would be read as text; text columns turn numbers into text, and a BLOB among the
# encoded fields makes json_array fail, which ends the reader).
# ``{where}``: empty for every event (a row with a seq below 1 is then seen, as a gap), or ``_AFTER``.
_SQLITE_SELECT = (f"SELECT seq, {canonical_sql('sqlite')} AS canonical, -1 AS quotes, hash, "
                  "typeof(recorded_at) = 'integer' AND typeof(hash) = 'text' AS typed FROM consent_events{where} ORDER BY seq")
_PG_SELECT = (f"SELECT seq, {canonical_sql('postgresql')} AS canonical, {CANONICAL_QUOTES_SQL} AS quotes, hash, "
              "1 AS typed FROM consent_events{where} ORDER BY seq")
_AFTER = " WHERE seq > {after}"  # the events after one already checked


def _select(template: str, after: int) -> str:
    return template.format(where=_AFTER.format(after=int(after)) if after else "")
_SQLITE_TYPES = [pa.int64(), pa.string(), pa.int64(), pa.string(), pa.int64()]

# The SQLite reader, run as ``python -c _CHILD DB_PATH QUERY BATCH_ROWS``: a separate
# process because the ADBC driver links its own copy of SQLite, and two copies in one
# process break each other's file locks (see ``_sqlite_arrow``). It imports only pyarrow
# and the driver, and streams the batches as Arrow IPC on stdout.
_CHILD = """
import sys
from urllib.parse import quote

import adbc_driver_sqlite.dbapi as adbc_sqlite
import pyarrow as pa

path, query, rows = sys.argv[1:4]
with adbc_sqlite.connect(f"file:{quote(path)}") as conn, conn.cursor() as cur:
    cur.execute("PRAGMA busy_timeout = 60000")
    cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": rows})
    cur.execute(query)
    reader = cur.fetch_record_batch()
    with pa.ipc.new_stream(sys.stdout.buffer, reader.schema) as out:
        for batch in reader:
            out.write_batch(batch)
"""


class _Unavailable(Exception):
    """The Arrow reader cannot go on: the row-by-row walk takes over."""


class _Batch(NamedTuple):
    """Consecutive events as the readers select them (``_select``)."""

    seq: Any  # numpy int64
    canonical: pa.Array
    quotes: Any  # numpy int64
    hash: pa.Array
    typed: Any  # numpy bool


def verify_chain(ledger: Ledger, *, state: bool = True) -> VerifyResult:
    """Check the chain of ``ledger``; ``ok`` is False at the first broken link. With ``state``
    (the default) the maintained ``consent_state`` is then compared with the events too."""
    chain = _scan(ledger)
    if isinstance(chain, VerifyResult):
        return chain
    prev_seq, prev_hash = chain
    problem = check_state(ledger) if state else None
    if problem is not None:
        return VerifyResult(False, prev_seq, None, f"the current-state table disagrees with the events: {problem.reason}",
                            prev_seq, prev_hash, bad_key=problem.key)
    return VerifyResult(True, prev_seq, None, None, prev_seq, prev_hash)


def verify_after(ledger: Ledger, seq: int, hash_: str) -> VerifyResult:
    """``verify_chain(ledger, state=False)`` for the events after ``(seq, hash_)``, an event whose place
    in the chain was verified already (a build's check read the ledger up to it, and its snapshot
    read further: ``build.consent.cover``). As there, ``events`` is the last sequence reached."""
    chain = _scan(ledger, (seq, hash_))
    if isinstance(chain, VerifyResult):
        return chain
    return VerifyResult(True, chain[0], None, None, chain[0], chain[1])


def stored_hash(ledger: Ledger, seq: int) -> str | None:
    """The hash stored with event ``seq`` (None when there is no such event)."""
    with eng.read_connection(ledger.engine) as conn:
        row = conn.execute(select(events.c.hash).where(events.c.seq == int(seq))).first()
    return None if row is None else str(row[0])


def _scan(ledger: Ledger, after: tuple[int, str] = (0, GENESIS)) -> VerifyResult | tuple[int, str]:
    """The first break, or ``(seq, hash)`` of the last event when the chain is intact; ``after``:
    start after this event (its seq and hash), which was checked already."""
    prev = after
    try:
        with closing(_batches(ledger, prev[0])) as batches:
            for batch in batches:
                checked = _check_batch(ledger, batch, prev)
                if isinstance(checked, VerifyResult):
                    return checked
                prev = checked
    except _Unavailable:
        return _walk(ledger, *prev)
    return prev


def verify_sqlite_alone(url: str) -> VerifyResult:
    """``verify_chain(ledger, state=False)`` for the SQLite ledger at ``url``, reading the events with
    ADBC in *this* process: one process and no pipe, where ``_scan`` starts a reader process and
    receives every event's encoding from it. On the 10M-record bench ledger (2.15M events) the
    check took 4.4-4.5 CPU-s (4.4 s wall) against 5.2-5.7 CPU-s (2.8-3.1 s wall) in two
    processes; in 10M-record builds about 0.5 CPU-s less (docs/benchmarks.md, session 13).

    Only for a process that has no other connection to that file open (the build's background
    check, ``build.consent.ChainCheck``): SQLite linked twice into one process breaks its own
    file locks (``_sqlite_arrow``). So the ADBC connection is closed before anything else opens
    the file: where the vectorised check cannot go on (no driver, a value of another type, a
    row for the exact encoder), the ledger is opened then and ``_scan`` goes on after the last
    event checked, with what it reports being exactly what ``verify_chain`` reports.
    """
    from sqlalchemy.engine import make_url

    path = str(make_url(url).database)
    eng.require_file(Path(path))
    got = _scan_alone(path)
    if isinstance(got, VerifyResult):
        return got
    prev, done = got
    if not done:
        from consentgate.ledger.store import open_ledger

        with open_ledger(url, create=False) as ledger:
            chain = _scan(ledger, prev)
        if isinstance(chain, VerifyResult):
            return chain
        prev = chain
    return VerifyResult(True, prev[0], None, None, prev[0], prev[1])


def _scan_alone(path: str) -> VerifyResult | tuple[tuple[int, str], bool]:
    """The first break found by the vectorised check over ADBC in this process, else the last event
    checked and whether that was the last one (False: the caller goes on from it)."""
    adbc: Any = optional_module("adbc_driver_sqlite.dbapi")
    prev: tuple[int, str] = (0, GENESIS)
    if adbc is None:
        return prev, False
    try:
        with adbc.connect(f"file:{quote(path)}") as conn, conn.cursor() as cur:
            cur.execute("PRAGMA busy_timeout = 60000")
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
            cur.execute(_select(_SQLITE_SELECT, 0))
            with closing(cur.fetch_record_batch()) as reader:
                for raw in reader:
                    if [f.type for f in raw.schema] != _SQLITE_TYPES:  # typed from a first batch with odd values
                        return prev, False
                    batch = _to_batch(raw)
                    k = exact_rows(batch)
                    broken = first_break(batch, k, *prev)
                    if broken is not None:
                        return broken
                    if k:
                        prev = (int(batch.seq[k - 1]), str(batch.hash[k - 1].as_py()))
                    if k < len(batch.seq):
                        return prev, False
    except (adbc.Error, pa.ArrowException, OSError):  # a reader that cannot go on: the caller does
        return prev, False
    return prev, True


def _check_batch(ledger: Ledger, batch: _Batch, prev: tuple[int, str]) -> VerifyResult | tuple[int, str]:
    """Check ``batch`` (which follows event ``prev``): vectorised up to its first row that
    needs the exact encoder, the rest of it row by row."""
    k = exact_rows(batch)
    broken = first_break(batch, k, *prev)
    if broken is not None:
        return broken
    if k:
        prev = (int(batch.seq[k - 1]), str(batch.hash[k - 1].as_py()))
    n = len(batch.seq)
    return _walk(ledger, *prev, last=int(batch.seq[-1])) if k < n else prev


def exact_rows(batch: _Batch) -> int:
    """How many leading rows of ``batch`` the database encoded exactly: up to the first
    with a value of another type, or one that needs JSON escaping (seen as an unexpected
    number of '"', a backslash or a control character) -- those go to the reference."""
    text = batch.canonical
    if len(text) == 0:
        return 0
    bad = ~batch.typed
    if text.null_count == 0 and not bad.any():
        raw = utf8_bytes(text)
        quotes_ok = batch.quotes[0] < 0 or np.count_nonzero(raw == 0x22) == batch.quotes.sum()
        if quotes_ok and not np.count_nonzero(raw < 0x20) and not np.count_nonzero(raw == 0x5C):
            return len(text)
    escaped = pc.match_substring_regex(text, r"[\\\x00-\x1f]")
    if batch.quotes[0] >= 0:
        escaped = pc.or_(escaped, pc.not_equal(pc.count_substring(text, '"'), pa.array(batch.quotes)))
    bad |= pc.fill_null(escaped, True).to_numpy(zero_copy_only=False)
    return int(np.argmax(bad)) if bad.any() else len(text)


def first_break(batch: _Batch, k: int, prev_seq: int, prev_hash: str) -> VerifyResult | None:
    """The first broken link among the first ``k`` rows of ``batch``, which follow event
    ``prev_seq`` with hash ``prev_hash``, or None when all of them hold."""
    if k == 0:
        return None
    seq = batch.seq[:k]
    before = np.concatenate(([prev_seq], seq[:-1]))
    hashes = batch.hash.slice(0, k)
    linked = pa.concat_arrays([pa.array([prev_hash], pa.string()), hashes.slice(0, k - 1)])
    text = batch.canonical.slice(0, k)
    gap = seq != before + 1
    link = _differ(pc.binary_slice(text.cast(pa.binary()), -_TAIL), pc.binary_join_element_wise(',"', linked, '"]', "").cast(pa.binary()))
    altered = _differ(hex_digests(text), hashes)
    bad = gap | link | altered
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    kind = _GAP if gap[i] else _LINK if link[i] else _ALTERED
    return _broken(kind, int(seq[i]), int(before[i]), str(linked[i].as_py()))


# A row's stored prev_hash is the end of its encoding: ``,"<64 hex digits>"]``. Up to the
# first broken row every previous hash is a recomputed one (64 hex digits), and no value
# of an exact row holds a '"', so comparing these last bytes is comparing prev_hash.
_TAIL = 68


def _differ(a: pa.Array, b: pa.Array) -> Any:
    """Per row: ``a != b`` as the walk compares them (a null differs from every string)."""
    return pc.fill_null(pc.not_equal(a, b), True).to_numpy(zero_copy_only=False)


def _broken(kind: str, seq: int, prev_seq: int, prev_hash: str) -> VerifyResult:
    """The result for a chain that holds up to ``prev_seq`` and breaks at the row ``seq``."""
    if kind == _GAP:
        reason = f"sequence number {prev_seq + 1} is missing (the next stored event has seq {seq})"
        return VerifyResult(False, prev_seq, prev_seq + 1, reason, prev_seq, prev_hash)
    if kind == _LINK:
        reason = f"event {seq} does not link to event {prev_seq} (prev_hash differs: rows deleted, reordered or rewritten)"
    else:
        reason = f"event {seq} was altered (its stored hash does not match its fields)"
    return VerifyResult(False, prev_seq, seq, reason, prev_seq, prev_hash)


# -- the reference: row by row through SQLAlchemy ------------------------------------
def _walk(ledger: Ledger, prev_seq: int = 0, prev_hash: str = GENESIS, *, last: int | None = None) -> VerifyResult | tuple[int, str]:
    """Walk the events after ``prev_seq`` (up to ``last``) one by one; ``prev_hash`` is the hash of event ``prev_seq``."""
    with eng.read_connection(ledger.engine) as conn:
        query = select(*_COLS).where(events.c.seq > prev_seq).order_by(events.c.seq)
        if last is not None:
            query = query.where(events.c.seq <= last)
        for row in conn.execution_options(stream_results=True, yield_per=20_000).execute(query):
            kind = _check(tuple(row), prev_seq, prev_hash)
            if kind is not None:
                return _broken(kind, int(row[0]), prev_seq, prev_hash)
            prev_seq, prev_hash = int(row[0]), str(row[11])
    return prev_seq, prev_hash


def _check(r: Sequence[Any], prev_seq: int, prev_hash: str) -> str | None:
    if int(r[0]) != prev_seq + 1:
        return _GAP
    if r[10] != prev_hash:
        return _LINK
    if mistyped_field(r) is not None or event_hash(r[:11]) != r[11]:
        return _ALTERED
    return None


# -- Arrow readers --------------------------------------------------------------------
def _batches(ledger: Ledger, after: int) -> Generator[_Batch, None, None]:
    """The events after seq ``after``, in ``seq`` order, as Arrow batches; ``_Unavailable`` when there
    is no Arrow reader or it fails (the caller then walks on from the last row it checked)."""
    if ledger.backend == "sqlite":
        yield from _sqlite_batches(str(ledger.engine.url.database), after)
    else:
        yield from _pg_batches(ledger, after)


def _sqlite_batches(path: str, after: int) -> Generator[_Batch, None, None]:
    if optional_module("adbc_driver_sqlite.dbapi") is None:
        raise _Unavailable
    query = _select(_SQLITE_SELECT, after)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, path, query, str(BATCH_ROWS)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    _widen_pipe(proc.stdout.fileno())
    try:
        for batch in pa.ipc.open_stream(proc.stdout):
            if [f.type for f in batch.schema] != _SQLITE_TYPES:  # typed from a first batch with odd values
                raise _Unavailable
            yield _to_batch(batch)
        if proc.wait() != 0:  # a reader that died half-way ends its stream early
            raise _Unavailable
    except pa.ArrowException:
        raise _Unavailable from None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()


def _widen_pipe(fd: int) -> None:
    """A 1 MiB pipe instead of 64 KiB: the reader blocks and wakes far less often (Linux)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass


def _to_batch(batch: pa.RecordBatch) -> _Batch:
    col = batch.column
    return _Batch(col(0).cast(pa.int64()).to_numpy(), col(1).cast(pa.string()), col(2).cast(pa.int64()).to_numpy(),
                  col(3).cast(pa.string()), col(4).cast(pa.int64()).to_numpy() != 0)


def _pg_batches(ledger: Ledger, after: int) -> Generator[_Batch, None, None]:
    adbc_pg: Any = optional_module("adbc_driver_postgresql.dbapi")
    if adbc_pg is None:
        raise _Unavailable
    try:
        with adbc_pg.connect(libpq_dsn(ledger.engine.url)) as conn, conn.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(PG_BATCH_BYTES)})
            cur.execute(_select(_PG_SELECT, after))
            for batch in cur.fetch_record_batch():
                yield _to_batch(batch)
    except (adbc_pg.Error, pa.ArrowException, OSError):
        raise _Unavailable from None
