"""The build's rich progress bar: the phase, records done, records per second, elapsed time.

Owns ``RichProgress``, the ``Progress`` sink that ``build run`` shows on stderr
(``--quiet`` uses ``NullProgress`` instead). It shows counts only, never data.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if not task.fields.get("counted") or not elapsed or not task.completed:
            return Text("")
        return Text(f"{task.completed / elapsed:,.0f} records/s", style="cyan")


class RichProgress:
    """One bar per phase on stderr; starts on the first phase, stops at ``close``."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description:<14}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
            TimeElapsedColumn(), console=console or Console(stderr=True), transient=False,
        )
        self._task: TaskID | None = None
        self._started = False

    def phase(self, name: str, total: int | None) -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        self._finish()
        self._task = self._progress.add_task(name, total=total, counted=total is not None)

    def relabel(self, name: str, total: int | None) -> None:
        if self._task is None:
            self.phase(name, total)
            return
        self._progress.remove_task(self._task)
        self._task = self._progress.add_task(name, total=total, counted=total is not None)

    def _finish(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            if task.total is None:
                self._progress.update(self._task, total=1, completed=1)
            self._progress.stop_task(self._task)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def close(self) -> None:
        if self._started:
            self._finish()
            self._progress.stop()
            self._started = False
