"""Run SQLite queries with the ADBC driver, in parallel threads, and write each result
as an Arrow IPC file (``OUT.0``, ``OUT.1``, ... in the order the queries were given).

Used by ``snapshot`` as a *separate process*: the ADBC driver links its own copy of
SQLite, and two copies of SQLite in one process break each other's POSIX file locks
(https://www.sqlite.org/howtocorrupt.html, "multiple copies of SQLite"), which we
saw as stale reads. In a child process the copy is alone and safe. One child with a
connection per query (the driver releases the GIL while it reads) starts one
interpreter instead of one per query.

    python .../consentgate/ledger/_sqlite_arrow.py DB_PATH OUT QUERY [QUERY ...]

It imports only pyarrow and the ADBC driver, so it starts quickly.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

# Rows per Arrow batch (the driver's default is 1,024: thousands of tiny batches).
BATCH_ROWS = 262_144


def _read(path: str, query: str) -> Any:
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    with adbc_sqlite.connect(f"file:{quote(path)}") as conn, conn.cursor() as cur:
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
        cur.execute(query)
        return cur.fetch_arrow_table()


def main(argv: list[str]) -> int:
    import pyarrow as pa

    path, out, *queries = argv
    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        tables = list(pool.map(lambda q: _read(path, q), queries))
    for i, table in enumerate(tables):  # types may differ (an all-NULL column): the parent casts
        with pa.OSFile(f"{out}.{i}", "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
