"""``run_build``: from a spec to a complete, verified-shape dataset folder, atomically.

Owns the order of a build: pin the consent state (a ledger snapshot at ``as_of``,
or an events file loaded into a temporary ledger), refuse a policy that is not
published unchanged and in effect at ``as_of``, compile the policy to SQL, hand
the engine-neutral plan to the engine, then hash every file and write the
dataset card and ``manifest.json`` before the folder is renamed into place.
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
from consentgate.build.files import parquet_rows, sha256_file
from consentgate.build.manifest import CARD, FORMAT, MANIFEST, write_manifest
from consentgate.build.plan import BuildPlan, EngineResult, NullProgress, Progress, StepConfig, get_engine
from consentgate.build.sources import source_files
from consentgate.build.steps import TOPIC_ENTITY
from consentgate.build.spec import BuildSpec
from consentgate.config import Settings, load_settings
from consentgate.errors import BuildError

SHARD_HASH = "sha256-first8-be-mod"


class ChainCheck:
    """The ledger's chain verification, running in a separate process while the build goes on.

    Verifying walks and re-hashes every event (tens of seconds for millions of events,
    pure Python); in its own process it neither holds up the build's phases nor
    competes for their interpreter lock. The build joins it before anything is
    published; the process is stopped if the build fails first.
    """

    def __init__(self, url: str) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_verify_in_child, args=(url, send), name="consentgate-verify", daemon=True)
        self._proc.start()
        send.close()
        self.url = url

    def result(self) -> None:
        """Wait for the verification; raise ``LedgerIntegrityError`` (or what failed) when it did not pass."""
        try:
            outcome = self._recv.recv()
        except EOFError:
            outcome = ("error", "the verification process ended without a result")
        self._proc.join()
        if outcome[0] == "broken":
            from consentgate.errors import LedgerIntegrityError

            raise LedgerIntegrityError(outcome[1], hint="Run `consentgate ledger verify` and restore the ledger before building.",
                                       source=self.url)
        if outcome[0] != "ok":
            raise BuildError(f"verifying the consent ledger failed: {outcome[1]}", hint="Run `consentgate ledger verify` for details.")

    def stop(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()


def _verify_in_child(url: str, send: Any) -> None:
    """Child process: verify the ledger at ``url`` and send ``(status, message)``."""
    from consentgate.errors import ConsentGateError, LedgerIntegrityError
    from consentgate.ledger import open_ledger

    try:
        ledger = open_ledger(url, create=False)
        try:
            _verify_chain(ledger, url)
        finally:
            ledger.close()
        send.send(("ok", ""))
    except LedgerIntegrityError as exc:
        send.send(("broken", exc.message))
    except ConsentGateError as exc:
        send.send(("error", exc.message))
    except Exception as exc:  # noqa: BLE001  (reported in the parent; never the ledger's contents)
        send.send(("error", type(exc).__name__))


@dataclass(frozen=True)
class PinnedConsent:
    snapshot: Path
    rows: int
    head_seq: int
    head_hash: str
    kind: str
    registry_url: str | None
    check: ChainCheck | None = None


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


def pin_consent(spec: BuildSpec, as_of: datetime, work: Path, *, background: bool = False) -> PinnedConsent:
    """Snapshot the consent ledger at ``as_of`` into ``work`` and record its head.

    The snapshot is computed from the events alone, and the ledger's hash chain (which
    covers every event) is verified too: before returning, or with ``background``
    in a ``ChainCheck`` the caller must join (``PinnedConsent.check.result()``) before
    publishing anything. An events file is loaded into a fresh ledger whose chain this
    build has just written, so it is not re-verified.
    """
    from consentgate.ledger import open_ledger

    consent = spec.sources.consent
    snapshot = work / "consent.parquet"
    registry: str | None
    if consent.ledger is not None:
        ledger = open_ledger(consent.ledger, create=False)
        kind, registry = "ledger", spec.policy.published_in or consent.ledger
    else:
        assert consent.events is not None
        if consent.events.path is None:
            raise BuildError("sources.consent.events must be a file (Parquet, CSV or JSONL)", field="sources.consent.events")
        ledger = open_ledger(f"sqlite:///{work / 'events-ledger.db'}", create=True)
        ledger.import_file(consent.events.path)
        kind, registry = "events", spec.policy.published_in
    check: ChainCheck | None = None
    try:
        if kind == "ledger" and background:
            check = ChainCheck(str(consent.ledger))
        elif kind == "ledger":
            _verify_chain(ledger, str(consent.ledger))
        # From the events alone: they are what the chain check covers. (The maintained
        # consent_state table is not checked here, so the build does not read it.)
        info = ledger.snapshot(as_of, snapshot, from_events=True)
    except BaseException as exc:
        if check is not None:
            if isinstance(exc, Exception):
                # A snapshot that cannot be read from the events (a BLOB where a choice should
                # be, say) is most likely tampering: when the chain check says so, that is the error.
                check.result()
            check.stop()
        raise
    finally:
        ledger.close()
    return PinnedConsent(snapshot, int(info.rows), int(info.head_seq), str(info.head_hash), kind, registry, check)


def _verify_chain(ledger: Any, label: str) -> None:
    """Refuse to build on a ledger whose hash chain is broken: a deleted opt-out must not
    silently let a member's records in under an authoritative-looking manifest."""
    from consentgate.errors import LedgerIntegrityError

    result = ledger.verify(state=False)  # the build's snapshot comes from the events, not consent_state
    if not result.ok:
        where = f"its hash chain is broken at sequence {result.first_bad_seq}"
        raise LedgerIntegrityError(
            f"the consent ledger fails verification: {where} ({result.reason}); refusing to build",
            hint="Run `consentgate ledger verify` and restore the ledger before building.", source=label,
        )


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


def run_build(spec: BuildSpec, *, engine: str = "duckdb", workers: int | None = None, replace: bool = False,
              progress: bool | Progress = True, settings: Settings | None = None) -> BuildResult:
    """Build ``spec`` into ``spec.output`` (atomically); see docs/build-reference.md."""
    from consentgate.policy import load_policy

    settings = settings or load_settings()
    n_workers = workers or settings.workers
    eng = get_engine(engine)
    sink = _progress(progress)
    started = _now()
    as_of = spec.as_of or started
    check_as_of(as_of, started)
    t0 = time.perf_counter()
    policy = load_policy(spec.policy.file)
    scope, recipient = resolve_scope(spec, policy, settings)
    strategies = strategies_for(spec, policy)
    key = _key(settings, strategies)
    hasher = ThreadPoolExecutor(max_workers=1)
    try:
        folder = AtomicFolder(spec.output, replace=replace)
        with folder as tmp:
            inputs = _hash_inputs(hasher, spec)
            work = tmp / "_work"
            work.mkdir()
            sink.phase("pin consent", None)
            pinned = pin_consent(spec, as_of, work, background=True)
            try:
                published = check_policy(policy, pinned.registry_url, as_of)
                pinned_s = time.perf_counter() - t0  # pinning and the policy check count as ``prepare``
                result = _run_engine(eng, spec, policy, scope, as_of, strategies, key, settings, pinned, tmp, n_workers, sink)
            except BaseException:
                if pinned.check is not None:
                    pinned.check.stop()
                raise
            timings = {"prepare": pinned_s + result.timings.pop("prepare")}
            if pinned.check is not None:
                sink.phase("verify ledger chain", None)
                t1 = time.perf_counter()
                pinned.check.result()
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
    finally:
        sink.close()
        hasher.shutdown(wait=False, cancel_futures=True)
    return BuildResult(output=spec.output, manifest=stamped)


def _run_engine(eng: Any, spec: BuildSpec, policy: Any, scope: str, as_of: datetime, strategies: dict[str, str], key: bytes | None,
                settings: Settings, pinned: PinnedConsent, tmp: Path, n_workers: int, sink: Progress) -> EngineResult:
    """Compile the plan (the policy was checked against the pinned registry) and run it on ``eng``."""
    from consentgate.build.decide import CANDIDATES, NO_TOPICS
    from consentgate.policy import SqlTables, compile_policy, compile_sql

    t0 = time.perf_counter()
    screen_sql = compile_sql(policy, scope=scope, as_of=as_of, tables=SqlTables(topics=NO_TOPICS), output="mask", extras=True)
    decide_sql = compile_sql(policy, scope=scope, as_of=as_of, tables=SqlTables(records=CANDIDATES))
    plan = BuildPlan(
        name=spec.name, records=spec.sources.records, members=spec.sources.members, mapping=spec.mapping,
        consent_snapshot=pinned.snapshot, screen_sql=screen_sql, decide_sql=decide_sql, shards=spec.shards, slices=spec.slices,
        batch_size=min(settings.batch_size, 65536),
        steps=StepConfig(spec.shards, {**strategies, TOPIC_ENTITY: "mask"}, key,
                         tuple(e for e, s in strategies.items() if s == "drop_record"), compile_policy(policy).redact_topics()),
    )
    prepared = time.perf_counter() - t0
    result = eng.run(plan, tmp, workers=n_workers, progress=sink)
    result.timings["prepare"] = prepared
    return result  # type: ignore[no-any-return]


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
