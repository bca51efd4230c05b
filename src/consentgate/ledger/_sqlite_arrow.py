"""Run one SQLite query with the ADBC driver and stream the result to stdout as Arrow IPC.

Used by ``snapshot`` as a *separate process*: the ADBC driver links its own copy of
SQLite, and two copies of SQLite in one process break each other's POSIX file locks
(https://www.sqlite.org/howtocorrupt.html, "multiple copies of SQLite"), which we
saw as stale reads. In a child process the copy is alone and safe.

    python .../consentgate/ledger/_sqlite_arrow.py DB_PATH QUERY > result.arrows

It imports only pyarrow and the ADBC driver, so it starts quickly.
"""

from __future__ import annotations

import sys
from urllib.parse import quote


def main(argv: list[str]) -> int:
    import adbc_driver_sqlite.dbapi as adbc_sqlite
    import pyarrow as pa

    path, query = argv
    with adbc_sqlite.connect(f"file:{quote(path)}") as conn, conn.cursor() as cur:
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.execute(query)
        table = cur.fetch_arrow_table()
    with pa.ipc.new_stream(pa.PythonFile(sys.stdout.buffer, mode="w"), table.schema) as writer:
        writer.write_table(table)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
