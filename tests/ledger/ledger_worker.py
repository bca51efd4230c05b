"""A ledger writer process for the concurrency and crash tests (run as a script).

    python ledger_worker.py URL WORKER_ID COUNT ACK_FILE            # COUNT single records
    python ledger_worker.py URL WORKER_ID import FILE ACK_FILE      # one bulk import

The tests fork it (``main(argv)``); it also runs as a script.

After each write *returns*, one line is appended to ACK_FILE (unbuffered), so the
test knows exactly which writes were acknowledged before the process died.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from consentgate.ledger import make_event, open_ledger

SCOPES = ("first_party", "affiliate", "third_party")


def main(argv: list[str]) -> int:
    url, wid = argv[0], argv[1]
    led = open_ledger(url, create=False)
    if argv[2] == "import":
        fd = os.open(argv[4], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        n = led.import_file(Path(argv[3]))
        os.write(fd, f"imported {n}\n".encode())
        return 0
    count, fd = int(argv[2]), os.open(argv[3], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for i in range(count):
        member, scope = f"w{wid}-m{i % 25}", SCOPES[i % 3]
        choice = "grant" if (i * 7 + int(wid)) % 5 < 2 else "deny"
        ev = make_event(member_id=member, scope=scope, choice=choice, source="member")
        stored = led.record(ev, idempotency_key=f"w{wid}-{i}")
        os.write(fd, f"{stored.seq} {stored.event_id} {member} {scope} {choice} {stored.hash}\n".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
