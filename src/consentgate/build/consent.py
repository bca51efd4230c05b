"""Pinning the consent state a build decides under: a ledger snapshot at ``as_of`` and its head.

Owns ``pin_consent`` (the snapshot, from the events alone, and the head it was taken at),
``ChainCheck`` (the ledger's hash chain verified in a separate process while the build
runs) and ``cover`` (the verified chain reaches every event the snapshot read). Pinning
runs before the engine starts, not beside it: in a thread beside the sources check it
saved about 1 s of a 10M build but raised the build's peak memory by 0.18 GiB (the
snapshot's and the engine's allocations were alive at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consentgate.errors import BuildError

if TYPE_CHECKING:  # annotations only: the chain check's process imports this module
    from consentgate.build.spec import BuildSpec

SNAPSHOT = "consent.parquet"  # under the build's scratch folder
_RESTORE = "Run `consentgate ledger verify` and restore the ledger before building."


def registry_of(spec: BuildSpec) -> str | None:
    """The ledger URL where the spec's policy must be published: ``policy.published_in``, else
    the consent ledger itself (None for an events file without ``published_in``)."""
    return spec.policy.published_in or spec.sources.consent.ledger


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

    def result(self, pinned: tuple[int, str] | None = None) -> None:
        """Wait for the verification; raise ``LedgerIntegrityError`` (or what failed) when it did not pass.

        ``pinned``: the head (sequence, hash) the build's snapshot was taken at, which the
        verified chain must reach (``cover``)."""
        try:
            outcome = self._recv.recv()
        except EOFError:
            outcome = ("error", "the verification process ended without a result")
        self._proc.join()
        if outcome[0] == "broken":
            from consentgate.errors import LedgerIntegrityError

            raise LedgerIntegrityError(outcome[1], hint=_RESTORE, source=self.url)
        if outcome[0] != "ok":
            raise BuildError(f"verifying the consent ledger failed: {outcome[1]}", hint="Run `consentgate ledger verify` for details.")
        if pinned is not None:
            cover(self.url, (int(outcome[2]), str(outcome[3])), pinned)

    def stop(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()


def _verify_in_child(url: str, send: Any) -> None:
    """Child process: verify the ledger at ``url`` and send ``(status, message)``.

    A SQLite ledger is read in this process (``verify_sqlite_alone``): it has no other
    connection to the file open, which that needs."""
    from consentgate.errors import ConsentGateError, LedgerIntegrityError
    from consentgate.ledger import open_ledger
    from consentgate.ledger.verify import verify_sqlite_alone

    try:
        if _sqlite_file(url):
            result = verify_sqlite_alone(url)
            _refuse_broken(result, url)
            head = (result.head_seq, result.head_hash)
        else:
            ledger = open_ledger(url, create=False)
            try:
                head = _verify_chain(ledger, url)
            finally:
                ledger.close()
        send.send(("ok", "", *head))
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


def start_chain_check(spec: BuildSpec) -> ChainCheck | None:
    """The chain check of the spec's consent ledger, started now (None for an events file); for
    ``pin_consent``'s ``check``. The caller stops it (``ChainCheck.stop``) if the build fails."""
    ledger = spec.sources.consent.ledger
    return ChainCheck(str(ledger)) if ledger is not None else None


def pin_consent(spec: BuildSpec, as_of: datetime, work: Path, *, check: ChainCheck | None = None) -> PinnedConsent:
    """Snapshot the consent ledger at ``as_of`` into ``work`` and record its head.

    The snapshot is computed from the events alone, and the ledger's hash chain (which
    covers every event) is verified too: before returning, or by ``check`` (from
    ``start_chain_check``), which the caller owns: it joins the check with the pinned head
    (``check.result((head_seq, head_hash))``) before publishing anything, and stops it if
    the build fails.
    An events file is loaded into a fresh ledger whose chain this build has just written,
    so it is not re-verified.
    """
    from consentgate.ledger import open_ledger

    consent = spec.sources.consent
    snapshot = work / SNAPSHOT
    if consent.ledger is not None:
        ledger = open_ledger(consent.ledger, create=False)
        kind = "ledger"
    else:
        assert consent.events is not None
        if consent.events.path is None:
            raise BuildError("sources.consent.events must be a file (Parquet, CSV or JSONL)", field="sources.consent.events")
        ledger = open_ledger(f"sqlite:///{work / 'events-ledger.db'}", create=True)
        ledger.import_file(consent.events.path)
        kind = "events"
    verified: tuple[int, str] | None = None
    try:
        if kind == "ledger" and check is None:
            verified = _verify_chain(ledger, str(consent.ledger))
        # From the events alone: they are what the chain check covers. (The maintained
        # consent_state table is not checked here, so the build does not read it.)
        info = ledger.snapshot(as_of, snapshot, from_events=True)
        if verified is not None:
            cover(str(consent.ledger), verified, (int(info.head_seq), str(info.head_hash)))
    except BaseException as exc:
        if check is not None:
            if isinstance(exc, Exception):
                # A snapshot that cannot be read from the events (a BLOB where a choice should
                # be, say) is most likely tampering: when the chain check says so, that is the error.
                check.result()
        raise
    finally:
        ledger.close()
    return PinnedConsent(snapshot, int(info.rows), int(info.head_seq), str(info.head_hash), kind)


def _verify_chain(ledger: Any, label: str) -> tuple[int, str]:
    """Refuse to build on a ledger whose hash chain is broken: a deleted opt-out must not
    silently let a member's records in under an authoritative-looking manifest. Returns the
    last event verified (sequence, hash)."""
    result = ledger.verify(state=False)  # the build's snapshot comes from the events, not consent_state
    _refuse_broken(result, label)
    return int(result.head_seq), str(result.head_hash)


def cover(url: str, verified: tuple[int, str], pinned: tuple[int, str]) -> None:
    """Make sure the verified chain holds every event the snapshot read, up to the head it
    recorded, or raise ``LedgerIntegrityError``.

    The check and the snapshot read the ledger each on its own, so a writer may append
    between the two reads: the events the snapshot read past the check's last one
    (``verified``) are verified here, from it on. In every case the snapshot's head must
    be an event of the verified chain: its sequence reached, its hash the one stored there.
    """
    from consentgate.errors import LedgerIntegrityError

    seq, hash_ = verified
    stored: str | None = hash_
    if seq != pinned[0]:  # only where a writer appended between the two reads
        from consentgate.ledger import open_ledger
        from consentgate.ledger.verify import stored_hash, verify_after

        ledger = open_ledger(url, create=False)
        try:
            if seq < pinned[0]:
                result = verify_after(ledger, seq, hash_)
                _refuse_broken(result, url)
                if result.head_seq < pinned[0]:
                    raise LedgerIntegrityError(f"the consent ledger ends at sequence {result.head_seq}, before the head its snapshot "
                                               f"was taken at ({pinned[0]}); refusing to build", hint=_RESTORE, source=url)
            stored = stored_hash(ledger, pinned[0])
        finally:
            ledger.close()
    if stored != pinned[1]:
        raise LedgerIntegrityError(f"the event at the snapshot's head (sequence {pinned[0]}) changed while the build read the "
                                   "ledger; refusing to build", hint=_RESTORE, source=url)


def _refuse_broken(result: Any, label: str) -> None:
    """Raise ``LedgerIntegrityError`` unless ``result`` (a ``VerifyResult``) says the chain holds."""
    from consentgate.errors import LedgerIntegrityError

    if not result.ok:
        where = f"its hash chain is broken at sequence {result.first_bad_seq}"
        raise LedgerIntegrityError(
            f"the consent ledger fails verification: {where} ({result.reason}); refusing to build", hint=_RESTORE, source=label,
        )


def _sqlite_file(url: str) -> bool:
    """``url`` names a SQLite database file (not an in-memory one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
