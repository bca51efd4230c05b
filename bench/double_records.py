"""Twice the records over the same members: a 20M-record build input from the bench's 10M one.

Generating 20M records and a ledger for 2M members takes a long time and changes two
things at once. This copies a folder that ``bench/build_bench.py`` prepared (``data/``,
``ledger.db``, ``spec.yaml``) into ``FOLDER-x2`` with every record twice: as it is, and
with ``x`` before its ``record_id`` and ``thread_id``. Authors, participants, categories,
times and texts are the same, so the members, the consent ledger and the policy (linked,
not copied) decide the copy exactly as the original, and the build sees 2N records and
twice the candidates over the same member directory. An existing copy is kept (delete
``FOLDER-x2`` after regenerating FOLDER). Setup, not a benchmark: it prints
the path of the new spec for ``bench/build_phase_memory.py`` (memory per phase) or
``consentgate build run`` (time).

    .venv/bin/python bench/double_records.py .bench-data/build/10000000
    .venv/bin/python bench/build_phase_memory.py .bench-data/build/10000000-x2/spec.yaml --workers 2
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import duckdb
import yaml

from consentgate.build.sources import quote_str


def double(src: Path) -> Path:
    dest = src.with_name(src.name + "-x2")
    (dest / "data").mkdir(parents=True, exist_ok=True)
    records = dest / "data" / "records.parquet"
    if not records.is_file():
        original = quote_str(str((src / "data" / "records.parquet").resolve()))
        con = duckdb.connect(config={"memory_limit": "2GB"})
        con.execute(
            f"COPY (SELECT * FROM read_parquet({original}) UNION ALL SELECT * REPLACE ('x' || record_id AS record_id, "
            f"'x' || thread_id AS thread_id) FROM read_parquet({original})) "  # a null thread stays null
            f"TO {quote_str(f'{records}.tmp')} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
        )
        con.close()
        os.replace(f"{records}.tmp", records)
    for link, target in ((dest / "data" / "members.parquet", src / "data" / "members.parquet"), (dest / "ledger.db", src / "ledger.db")):
        if not link.exists():
            link.symlink_to(os.path.relpath(target.resolve(), link.parent))
    spec = yaml.safe_load((src / "spec.yaml").read_text(encoding="utf-8"))
    spec["name"] = f"{spec['name']}-x2"
    (dest / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return dest / "spec.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="A folder bench/build_bench.py prepared, e.g. .bench-data/build/10000000")
    print(double(ap.parse_args().folder))


if __name__ == "__main__":
    main()
