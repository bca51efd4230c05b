"""Process-pool scanning over batches, with bounded memory.

Owns ``scan_parallel(detector, arrays)``. Each worker restores the parent's
``Detector`` once from ``Detector.to_bytes`` (the compiled Hyperscan databases travel
with it: no compile, no cache read), then scans batches sent as Arrow IPC bytes (so that a slice ships only its
own bytes, not its parent buffer). At most ``2 x workers`` batches are in flight,
so memory stays bounded by the batch size whatever the input size. Results come
back in batch order.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from consentgate.detect.engine import Detector, ScanResult

_WORKER: dict[str, Any] = {}


def _init(serialised: bytes) -> None:
    from consentgate.detect.engine import Detector

    det = Detector.from_bytes(serialised)
    det.workers = 1  # a worker scans its batches itself
    _WORKER["detector"] = det


def _table_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _work(payload: bytes, row_base: int) -> tuple[bytes, bytes]:
    det = _WORKER["detector"]
    arr = _from_ipc(payload).column("text").combine_chunks()
    spans, topics = det.scan_batch(arr, row_base)
    return _table_ipc(spans), _table_ipc(topics)


def scan_parallel(detector: "Detector", arrays: list[pa.StringArray]) -> "ScanResult":
    """Scan ``arrays`` with ``detector.workers`` processes; same result as a serial scan."""
    from consentgate.detect.engine import SPANS_SCHEMA, TOPICS_SCHEMA, ScanResult, _concat
    from consentgate.detect.segments import iter_batches

    spans: list[pa.Table] = []
    topics: list[pa.Table] = []
    window = 2 * detector.workers
    pending: deque[Future[tuple[bytes, bytes]]] = deque()
    with ProcessPoolExecutor(
        max_workers=detector.workers,
        initializer=_init,
        initargs=(detector.to_bytes(),),
    ) as pool:
        for base, batch in iter_batches(arrays, detector.batch_bytes):
            pending.append(pool.submit(_work, _table_ipc(pa.table({"text": batch})), base))
            if len(pending) >= window:
                s, t = pending.popleft().result()
                spans.append(_from_ipc(s))
                topics.append(_from_ipc(t))
        while pending:
            s, t = pending.popleft().result()
            spans.append(_from_ipc(s))
            topics.append(_from_ipc(t))
    return ScanResult(_concat(spans, SPANS_SCHEMA), _concat(topics, TOPICS_SCHEMA))
