"""Run one SQLite query with the ADBC driver and write the result as an Arrow IPC file.

Used by ``snapshot`` as a *separate process*: the ADBC driver links its own copy of
SQLite, and two copies of SQLite in one process break each other's POSIX file locks
(https://www.sqlite.org/howtocorrupt.html, "multiple copies of SQLite"), which we
saw as stale reads. In a child process the copy is alone and safe.

    python .../consentgate/ledger/_sqlite_arrow.py DB_PATH QUERY OUT.arrow

It imports only pyarrow and the ADBC driver, so it starts quickly.
"""

from __future__ import annotations

import sys
from urllib.parse import quote


def main(argv: list[str]) -> int:
    import adbc_driver_sqlite.dbapi as adbc_sqlite
    import pyarrow as pa

    path, query, out = argv
    with adbc_sqlite.connect(f"file:{quote(path)}") as conn, conn.cursor() as cur:
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.execute(query)
        table = cur.fetch_arrow_table()
    with pa.OSFile(out, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
