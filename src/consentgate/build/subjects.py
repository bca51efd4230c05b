"""Subject bitmaps: for each shard, every member whose data is in it.

Owns ``subjects/shard-NNNNN.roaring``: a ``pyroaring`` bitmap per shard of the
member-index positions (``subjects/members.parquet``, members by id) of every
participant of the shard's included records. All shards' bitmaps come from one
query in the decide phase over the included records' folder (``_work/included/shard=K``,
which the shard writers read too), so the member index is read once, not once per shard.
"""

from __future__ import annotations

import array
from pathlib import Path

import duckdb
import numpy as np

from consentgate.build.sharding import shard_name
from consentgate.build.sources import parquet_scan
from consentgate.errors import BuildError


def write_subject_bitmaps(con: duckdb.DuckDBPyConnection, included: Path, member_index: Path, out: Path, shards: int) -> list[int]:
    """Write the bitmap of every shard from the folder ``included`` (``shard=K/*.parquet`` with the
    included records' ``participants``) into ``out/subjects``; return each shard's member count.

    Stops the build if a participant is missing from the member index: such records
    were to be excluded (``PARTICIPANT_NOT_IN_MEMBERS``), and a bitmap that misses a
    member would hide them from a removal request.
    """
    from pyroaring import BitMap

    # Each file's own ``shard`` column (``WRITE_PARTITION_COLUMNS``), not its folder's name: with Hive detection on,
    # a folder named ``shard=1`` above the output folder put every member in shard 1.
    records = parquet_scan(included, "*/*.parquet") if any(included.glob("*/*.parquet")) else \
        "(SELECT NULL::INTEGER AS shard, NULL::VARCHAR[] AS participants WHERE false)"  # no record included
    rows = con.sql(
        f"SELECT x.shard::INTEGER AS shard, m.index FROM (SELECT DISTINCT shard, unnest(participants) AS member_id FROM {records}) x "
        f"LEFT JOIN {parquet_scan(member_index)} m ON m.member_id = x.member_id ORDER BY 1, 2"
    ).to_arrow_table()
    if rows.column("index").null_count:
        raise BuildError("an included record has a participant missing from the member index",
                         hint="Report this: such records are excluded before any shard is written.")
    shard = rows.column("shard").to_numpy()
    index = rows.column("index").to_numpy().astype(np.uint32)
    bounds = np.searchsorted(shard, np.arange(shards + 1))
    if len(shard) and (shard[0] < 0 or bounds[-1] != len(shard)):
        raise BuildError(f"an included record is in a shard outside 0..{shards - 1}", hint="Report this: shards are assigned by the build.")
    counts = []
    for k in range(shards):
        # From an ``array('I')``: pyroaring adds a numpy array's values one at a time (10x slower).
        values = array.array("I")
        values.frombytes(index[bounds[k]:bounds[k + 1]].tobytes())
        bitmap = BitMap(values)
        (out / "subjects" / f"{shard_name(k)}.roaring").write_bytes(bitmap.serialize())
        counts.append(len(bitmap))
    return counts
