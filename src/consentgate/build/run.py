"""``run_build``: from a spec to a complete, verified-shape dataset folder, atomically.

Owns the order of a build: refuse a policy that is not published unchanged and in
effect at ``as_of``, pin the consent state (a ledger snapshot at ``as_of``, or an
events file loaded into a temporary ledger: ``build.consent``), compile the policy
to SQL, hand the engine-neutral plan to the engine, then hash every file and write
the dataset card and ``manifest.json`` before the folder is renamed into place.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from consentgate.build.atomic import AtomicFolder
from consentgate.build.card import render_card
from consentgate.build.consent import PinnedConsent, pin_consent, registry_of, start_chain_check
from consentgate.build.files import parquet_rows, sha256_file
from consentgate.build.manifest import CARD, FORMAT, MANIFEST, write_manifest
from consentgate.build.plan import DETECT_BATCH_ROWS, BuildPlan, EngineResult, NullProgress, Progress, StepConfig, get_engine
from consentgate.build.sources import source_files
from consentgate.build.steps import TOPIC_ENTITY
from consentgate.build.spec import BuildSpec
from consentgate.config import Settings, load_settings
from consentgate.errors import BuildError

SHARD_HASH = "sha256-first8-be-mod"


@dataclass(frozen=True)
class BuildResult:
    """What ``run_build`` made: the folder, its manifest and content hash."""

    output: Path
    manifest: dict[str, Any]

    @property
    def content_hash(self) -> str:
        return str(self.manifest["content_hash"])

    @property
    def counts(self) -> dict[str, Any]:
        return dict(self.manifest["counts"])


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_as_of(as_of: datetime, started: datetime) -> None:
    """``as_of`` may not lie in the future: it would pass notice periods that have not elapsed,
    count today's minors as adults, and pick up consent recorded ahead of time."""
    if as_of > started + timedelta(minutes=5):
        raise BuildError(
            f"as_of {as_of.isoformat()} is in the future (the build started at {started.isoformat()})",
            hint="Set as_of to a past moment, or leave it out to use now.", field="as_of",
        )


def check_policy(policy: Any, registry_url: str | None, as_of: datetime) -> Any:
    """Refuse a policy that is not published (unchanged) in the registry ledger or not in effect at ``as_of``;
    return its publication record (``consentgate.ledger.PublishedPolicy``)."""
    from consentgate.ledger import open_ledger
    from consentgate.policy import check_publishable

    if registry_url is None:
        from consentgate.errors import PolicyNotPublishedError

        raise PolicyNotPublishedError(
            f"policy {policy.name} {policy.version}: no ledger to check its publication in",
            hint="With `sources.consent.events`, set `policy.published_in` to the ledger URL where the policy was published.",
        )
    ledger = open_ledger(registry_url, create=False)
    try:
        published = ledger.published_policy(policy.name, policy.version)
    finally:
        ledger.close()
    check_publishable(policy, published, as_of)
    return published


def resolve_scope(spec: BuildSpec, policy: Any, settings: Settings) -> tuple[str, str | None]:
    if spec.recipient is not None:
        for r in policy.recipients:
            if r.name == spec.recipient:
                return str(r.scope), spec.recipient
        names = ", ".join(r.name for r in policy.recipients)
        raise BuildError(f"recipient {spec.recipient!r} is not named in policy {policy.name} {policy.version} ({names})",
                         hint="Use a recipient the policy names, or give `scope`.", field="recipient")
    return (spec.scope or settings.default_scope), None


def strategies_for(spec: BuildSpec, policy: Any) -> dict[str, str]:
    """The policy's PII strategies, with the spec's ``redaction`` entries on top (a spec may only tighten)."""
    from consentgate.policy import compile_policy

    strength = {"mask": 1, "pseudonym": 0, "drop_record": 2}
    merged = dict(compile_policy(policy).pii_strategies())
    for entity, strategy in spec.redaction.items():
        current = merged.get(entity)
        if current is not None and strength[strategy] < strength[current]:
            raise BuildError(
                f"redaction.{entity}: {strategy!r} is weaker than the policy's {current!r}",
                hint="A build spec may only tighten the policy's PII strategies (pseudonym < mask < drop_record).",
                field=f"redaction.{entity}",
            )
        merged[entity] = strategy
    return dict(sorted(merged.items()))


def _key(settings: Settings, strategies: dict[str, str]) -> bytes | None:
    if settings.pseudonym_key is not None:
        return settings.pseudonym_key.get_secret_value().encode("utf-8")
    if "pseudonym" in strategies.values():
        raise BuildError("the redaction strategies use `pseudonym` but no pseudonym key is set",
                         hint="Set CONSENTGATE_PSEUDONYM_KEY (or pseudonym_key in consentgate.toml).", field="pseudonym_key")
    return None


def _refuse_in_spawn_bootstrap() -> None:
    """Stop a build started while a spawned process re-runs its parent's main script: the
    build's worker processes are spawned, so a script that calls ``run_build`` at import
    time, without an ``if __name__ == "__main__":`` guard, would start a second build,
    on the same output folder, inside each of its own workers."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # CPython's own flag for this check
        raise BuildError("run_build was called while a worker process was starting (it re-ran the calling script)",
                         hint='Guard the script\'s entry point with `if __name__ == "__main__":`.')


def run_build(spec: BuildSpec, *, engine: str = "duckdb", workers: int | None = None, replace: bool = False,
              progress: bool | Progress = True, settings: Settings | None = None) -> BuildResult:
    """Build ``spec`` into ``spec.output`` (atomically); see docs/build-reference.md."""
    from consentgate.policy import load_policy

    _refuse_in_spawn_bootstrap()
    settings = settings or load_settings()
    n_workers = workers or settings.workers
    started = _now()
    as_of = spec.as_of or started
    check_as_of(as_of, started)
    t0 = time.perf_counter()
    # The ledger's chain check starts first (a process of its own, reading the ledger on its own): while
    # this process imports the engine, loads the policy and reads the ledger's registry it has a core to
    # itself (started after the engine's imports, it began 0.3 s later). It reads nothing of the build,
    # and is stopped if the build fails; the snapshot's head is checked against it (``cover``).
    check = start_chain_check(spec)
    hasher = ThreadPoolExecutor(max_workers=1)
    sink: Progress = NullProgress()
    try:
        eng = get_engine(engine)
        sink = _progress(progress)
        policy = load_policy(spec.policy.file)
        scope, recipient = resolve_scope(spec, policy, settings)
        strategies = strategies_for(spec, policy)
        key = _key(settings, strategies)
        folder = AtomicFolder(spec.output, replace=replace)
        with folder as tmp:
            inputs = _hash_inputs(hasher, spec)
            work = tmp / "_work"
            work.mkdir()
            published = check_policy(policy, registry_of(spec), as_of)  # before any work on the ledger or sources
            sink.phase("pin consent", None)
            pinned = pin_consent(spec, as_of, work, check=check)
            pinned_s = time.perf_counter() - t0  # the policy check and pinning count as ``prepare``
            result = _run_engine(eng, spec, policy, scope, as_of, strategies, key, settings, pinned, tmp, n_workers, sink)
            timings = {"prepare": pinned_s + result.timings.pop("prepare")}
            if check is not None:
                sink.phase("verify ledger chain", None)
                t1 = time.perf_counter()
                check.result((pinned.head_seq, pinned.head_hash))
                result.timings["ledger_verify_wait"] = time.perf_counter() - t1
            shutil.rmtree(work)
            sink.phase("manifest", None)
            t1 = time.perf_counter()
            manifest = _manifest(spec, policy, published, scope, recipient, as_of, pinned, strategies, result, eng.name, inputs, tmp)
            (tmp / CARD).write_text(render_card(manifest), encoding="utf-8")
            manifest["outputs"] = _outputs(tmp, n_workers)
            timings.update(result.timings)
            timings["manifest"] = time.perf_counter() - t1
            timings["total"] = time.perf_counter() - t0
            manifest["build"] = {"id": str(uuid.uuid4()), "started_at": started.isoformat(), "finished_at": _now().isoformat(),
                                 "workers": n_workers, "timings_s": {k: round(v, 3) for k, v in timings.items()}}
            stamped = write_manifest(tmp / MANIFEST, manifest)
            folder.commit()
    except BaseException:
        if check is not None:
            check.stop()
        raise
    finally:
        sink.close()
        hasher.shutdown(wait=False, cancel_futures=True)
    return BuildResult(output=spec.output, manifest=stamped)


def _run_engine(eng: Any, spec: BuildSpec, policy: Any, scope: str, as_of: datetime, strategies: dict[str, str], key: bytes | None,
                settings: Settings, pinned: PinnedConsent, tmp: Path, n_workers: int, sink: Progress) -> EngineResult:
    """Compile the plan (the policy was checked against its registry) and run it on ``eng``."""
    from consentgate.build.decide import CANDIDATES, NO_TOPICS
    from consentgate.policy import SqlTables, compile_policy, compile_sql

    t0 = time.perf_counter()
    screen_sql = compile_sql(policy, scope=scope, as_of=as_of, tables=SqlTables(topics=NO_TOPICS), output="mask", extras=True)
    # The candidates are the records the rest of the policy includes: only their topics can still exclude them.
    decide_sql = compile_sql(policy, scope=scope, as_of=as_of, tables=SqlTables(records=CANDIDATES), output="topics")
    plan = BuildPlan(
        name=spec.name, records=spec.sources.records, members=spec.sources.members, mapping=spec.mapping,
        consent_snapshot=pinned.snapshot, screen_sql=screen_sql, decide_sql=decide_sql, shards=spec.shards, slices=spec.slices,
        batch_size=min(settings.batch_size, DETECT_BATCH_ROWS),
        steps=StepConfig(spec.shards, {**strategies, TOPIC_ENTITY: "mask"}, key,
                         tuple(e for e, s in strategies.items() if s == "drop_record"), compile_policy(policy).redact_topics()),
    )
    prepared = time.perf_counter() - t0
    result: EngineResult = eng.run(plan, tmp, workers=n_workers, progress=sink)
    result.timings["prepare"] = prepared
    return result


def _progress(progress: bool | Progress) -> Progress:
    if progress is True:
        from consentgate.build.progress import RichProgress

        return RichProgress()
    if progress is False:
        return NullProgress()
    return progress


def _relative(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return os.path.relpath(path, base)
        except ValueError:
            pass
    return str(path)


def _hash_inputs(pool: ThreadPoolExecutor, spec: BuildSpec) -> list[tuple[str, Path, Future[str]]]:
    out: list[tuple[str, Path, Future[str]]] = []
    for role, src in (("records", spec.sources.records), ("members", spec.sources.members)):
        files, _fmt = source_files(src, role)
        out += [(role, p, pool.submit(sha256_file, p)) for p in files]
    events = spec.sources.consent.events
    if events is not None and events.path is not None:
        out.append(("consent_events", events.path, pool.submit(sha256_file, events.path)))
    out.append(("policy", spec.policy.file, pool.submit(sha256_file, spec.policy.file)))
    return out


def _file_rows(role: str, path: Path, result: EngineResult, pinned: PinnedConsent) -> int | None:
    files = result.input_files.get(role, ())
    if role in result.input_rows and len(files) == 1:
        return result.input_rows[role]
    if path.suffix.lower() in (".parquet", ".pq"):
        return parquet_rows(path)
    return None


def _publication(published: Any) -> dict[str, Any]:
    """What the ledger holds of the policy's publication: the file's dates and the ledger's own record of it."""
    return {
        "published_at": published.published_at.isoformat(), "effective_at": published.effective_at.isoformat(),
        "notice_days": published.notice_days, "notice_from": published.notice_from.isoformat(),
        "recorded_at": published.recorded_at.isoformat() if published.recorded_at is not None else None,
        "backfilled": published.backfilled,
    }


def _manifest(spec: BuildSpec, policy: Any, published: Any, scope: str, recipient: str | None, as_of: datetime, pinned: PinnedConsent,
              strategies: dict[str, str], result: EngineResult, engine: str,
              inputs: list[tuple[str, Path, Future[str]]], tmp: Path) -> dict[str, Any]:
    import duckdb
    import pyarrow
    import pyroaring

    import consentgate

    base = spec.path.parent if spec.path is not None else None
    input_list = [{"role": role, "path": _relative(p, base), "sha256": fut.result(), "rows": _file_rows(role, p, result, pinned)}
                  for role, p, fut in inputs]
    return {
        "format": FORMAT,
        "name": spec.name,
        "spec": {"sha256": spec.sha256, "path": _relative(spec.path, base) if spec.path else None},
        "policy": {"name": policy.name, "version": policy.version, "sha256": policy.sha256, "purpose": policy.purpose,
                   "publication": _publication(published)},
        "scope": scope,
        "recipient": recipient,
        "as_of": as_of.isoformat(),
        "ledger": {"kind": pinned.kind, "head_seq": pinned.head_seq, "head_hash": pinned.head_hash, "snapshot_rows": pinned.rows},
        "inputs": input_list,
        "input_rows": dict(sorted(result.input_rows.items())),
        "counts": result.counts,
        "redaction": {"strategies": strategies, "counts": result.redactions},
        "sharding": {"shards": spec.shards, "slices": spec.slices, "key": "thread_id, else record_id", "hash": SHARD_HASH,
                     "rows": result.shard_rows, "subjects": result.subject_counts, "members_indexed": result.members_indexed},
        "engine": {"name": engine, "versions": {
            "consentgate": consentgate.__version__, "duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__,
            "pyroaring": pyroaring.__version__, "python": platform.python_version(),
        }},
    }


def _outputs(root: Path, threads: int) -> list[dict[str, Any]]:
    """Every file of the folder (but the manifest), sorted, with SHA-256, size and row count (hashed in threads)."""
    from consentgate.build.verify import file_rows

    paths = [p for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).as_posix() != MANIFEST]
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        digests = list(pool.map(sha256_file, paths))
    return [{"path": p.relative_to(root).as_posix(), "sha256": d, "bytes": p.stat().st_size, "rows": file_rows(p)}
            for p, d in zip(paths, digests)]
