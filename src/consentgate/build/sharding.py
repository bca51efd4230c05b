"""SISA sharding: which shard a record goes to, defined so that every engine computes the same.

The rule (docs/build-reference.md, "Sharding hash"):

    key   = thread_id if thread_id is not null else record_id
    h     = the first 8 bytes of SHA-256(UTF-8 bytes of key), read as an unsigned big-endian integer
    shard = h mod shards

so one conversation stays in one shard. It is standard SHA-256, never an engine's
own hash function (which differs between DuckDB and Spark). ``shard_array`` computes
it over an Arrow array with DuckDB's ``sha256`` (three times faster than a Python
loop over ``hashlib``, which was a tenth of a detection worker's time); tests check
it against ``shard_of``. A Spark engine can compute the same in SQL as
``pmod(conv(substr(sha2(key, 256), 1, 16), 16, 10) ...)`` with decimal arithmetic,
or by calling ``shard_array`` inside ``mapInArrow``.
"""

from __future__ import annotations

import hashlib
import threading

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

# The first 16 hex digits of SHA-256 are the first 8 bytes, big-endian.
_SHARD_SQL = "SELECT CAST(CAST('0x' || substr(sha256(k), 1, 16) AS UBIGINT) % {shards}::UBIGINT AS INTEGER) AS shard FROM keys"
_local = threading.local()


def shard_of(key: str, shards: int) -> int:
    """The shard of one key (the reference definition)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % shards


def shard_keys(record_ids: pa.Array, thread_ids: pa.Array) -> pa.Array:
    """The sharding key of each record: its thread id, or its record id where there is none."""
    return pc.coalesce(thread_ids, record_ids)


def shard_array(keys: pa.Array | pa.ChunkedArray, shards: int) -> pa.Array:
    """``shard_of`` over an Arrow string array (no nulls), as int32."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if len(keys) == 0:
        return pa.array([], pa.int32())
    if keys.null_count:
        raise ValueError("a sharding key is null")
    con = getattr(_local, "con", None)
    if con is None:  # one small connection per thread: DuckDB connections are not shared across threads
        con = _local.con = duckdb.connect(config={"threads": 1})
    con.register("keys", pa.table({"k": keys.cast(pa.string())}))
    try:
        out = con.sql(_SHARD_SQL.format(shards=int(shards))).to_arrow_table().column(0).combine_chunks()
    finally:
        con.unregister("keys")
    return out.cast(pa.int32()) if len(out) == len(keys) else _mismatch(len(out), len(keys))


def _mismatch(got: int, want: int) -> pa.Array:
    raise AssertionError(f"shard_array computed {got} shards for {want} keys")


def shard_name(k: int) -> str:
    """The file stem of shard ``k``: ``data/<name>.parquet`` and ``subjects/<name>.roaring``."""
    return f"shard-{k:05d}"
