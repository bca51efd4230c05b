"""SISA sharding: which shard a record goes to, defined so that every engine computes the same.

The rule (docs/build-reference.md, "Sharding hash"):

    key   = thread_id if thread_id is not null else record_id
    h     = the first 8 bytes of SHA-256(UTF-8 bytes of key), read as an unsigned big-endian integer
    shard = h mod shards

so one conversation stays in one shard. It is computed here in Python over Arrow
arrays (not by an engine's own hash function, which differs between DuckDB and
Spark). A Spark engine can compute the same in SQL as
``pmod(conv(substr(sha2(key, 256), 1, 16), 16, 10) ...)`` with decimal arithmetic,
or by calling ``shard_array`` inside ``mapInArrow``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def shard_of(key: str, shards: int) -> int:
    """The shard of one key (the reference definition)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % shards


def shard_keys(record_ids: pa.Array, thread_ids: pa.Array) -> pa.Array:
    """The sharding key of each record: its thread id, or its record id where there is none."""
    return pc.coalesce(thread_ids, record_ids)


def shard_array(keys: pa.Array | pa.ChunkedArray, shards: int) -> pa.Array:
    """``shard_of`` over an Arrow string array, as int32; each distinct key is hashed once."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if len(keys) == 0:
        return pa.array([], pa.int32())
    encoded = pc.dictionary_encode(keys)
    sha = hashlib.sha256
    digests = b"".join([sha(k.encode("utf-8")).digest()[:8] for k in encoded.dictionary.to_pylist()])
    per_key = (np.frombuffer(digests, dtype=">u8") % np.uint64(shards)).astype(np.int32)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return pa.array(per_key[indices], pa.int32())
