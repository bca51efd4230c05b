"""A throwaway PostgreSQL server for tests and benchmarks (never used in production).

``TempPostgres`` runs ``initdb`` and ``pg_ctl`` in a private temporary folder, listening
only on a Unix socket inside that folder (no TCP port, so no clashes between runs).
PostgreSQL refuses to run as root; when we are root the server runs as the
unprivileged ``nobody`` user through ``runuser`` (util-linux) or ``su``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from consentgate.errors import LedgerError


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(cand, "initdb"), os.X_OK):
            return Path(cand)
    return None


class TempPostgres:
    """Start with ``start()``, get URLs with ``url(db)`` / ``new_database()``, end with ``stop()``."""

    def __init__(self, *, durable: bool = False, user: str = "nobody", folder: Path | None = None) -> None:
        """``folder``: keep the server's files there (reused by the next ``start()``, kept by ``stop()``);
        by default a fresh temporary folder that ``stop()`` deletes."""
        self.durable = durable
        self.run_as = user if os.geteuid() == 0 else None
        self.keep = folder
        self.dir: Path | None = None
        self.bin = find_pg_bin()

    def _cmd(self, args: list[str]) -> list[str]:
        if self.run_as is None:
            return args
        if shutil.which("runuser"):
            return ["runuser", "-u", self.run_as, "--", *args]
        return ["su", "-s", "/bin/sh", self.run_as, "-c", " ".join(f"'{a}'" for a in args)]

    def start(self) -> TempPostgres:
        if self.bin is None:
            raise LedgerError("initdb/pg_ctl not found", hint="Install PostgreSQL server binaries or set CONSENTGATE_TEST_PG_DSN.")
        if self.keep is not None:
            self.keep.mkdir(parents=True, exist_ok=True)
        self.dir = self.keep or Path(tempfile.mkdtemp(prefix="cg-pg-"))
        os.chmod(self.dir, 0o755)
        if self.run_as is not None:
            ent = pwd.getpwnam(self.run_as)
            os.chown(self.dir, ent.pw_uid, ent.pw_gid)
        data = self.dir / "data"
        if not (data / "PG_VERSION").is_file():
            self._run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C"])
        opts = f"-p 5432 -k {self.dir} -c listen_addresses='' -c max_connections=60 -c shared_buffers=256MB -c work_mem=128MB"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run([str(self.bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start"])
        return self

    def _run(self, args: list[str]) -> None:
        res = subprocess.run(self._cmd(args), capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise LedgerError(f"{Path(args[0]).name} failed (exit {res.returncode}): {(res.stderr or res.stdout).strip()[-500:]}")

    def url(self, database: str = "postgres") -> str:
        assert self.dir is not None
        return f"postgresql+psycopg://postgres@/{database}?host={self.dir}&port=5432"

    def stop(self) -> None:
        if self.dir is None or self.bin is None:
            return
        mode = "immediate" if self.keep is None else "fast"  # a kept server shuts down cleanly
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "stop"])
        except LedgerError:
            pass
        if self.keep is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


def create_database(admin_url: str, prefix: str = "cg") -> str:
    """Create a fresh, empty database through ``admin_url``; returns its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    from consentgate.ledger.snapshot import libpq_dsn

    url = make_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database named in ``url`` (closing its connections first)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from consentgate.ledger.snapshot import libpq_dsn

    name = make_url(url).database
    with psycopg.connect(libpq_dsn(make_url(admin_url)), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
