"""The one progress-bar style of the project (training, the attack, the claim runner, later distillation).

Also the sizing of a jitted loop's chunks when its steps are slow (:class:`ChunkSizer`).

The counts (``completed/total``) and the value shown beside them are never cut: only the description
shrinks (with an ellipsis) when the terminal is narrow, and below ``NARROW`` columns the description,
bar and clock are left out. Bars are drawn only on terminals (never into logs or pipes). The value column is named by the caller, so that a bar never shows a
quantity under the name that a metrics file uses for a different one (the attack's bar shows its
``objective``, training's bar its ``train loss``).

Example::

    with progress_bar(enabled=True, value_name="train loss") as bar:
        task = bar.add_task("GD relu:2 m=256", total=1000, value=None)   # shown as "..." until the first update
        bar.update(task, completed=500, value=1e-3)
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

NARROW = 60
"""Below this terminal width only the counts and the value are shown (they fit down to 40 columns)."""


PENDING = "..."
"""What the value column shows before a task's first value (``value=None``); a NaN value is shown as nan."""


class _ValueColumn(ProgressColumn):
    """``NAME 1.234e-03`` from the task's ``value`` field; PENDING while it is None."""

    def __init__(self, name: str):
        super().__init__(table_column=Column(no_wrap=True))
        self.name = name

    def render(self, task) -> Text:
        value = task.fields.get("value")
        return Text(f"{self.name} {PENDING if value is None else format(value, '.3e')}")


def progress_bar(*, enabled: bool = True, value_name: str | None = None, console: Console | None = None,
                 transient: bool = False) -> Progress:
    """A rich Progress in the project's style; tasks take a ``value`` field when ``value_name`` is given (None:
    no value yet).

    The bar is drawn on the console (default: stdout) only when it is a terminal: logs and pipes get no
    bar frames.
    """
    console = console or Console()
    enabled = enabled and console.is_terminal
    keep = Column(no_wrap=True)
    counts = [MofNCompleteColumn(table_column=keep)]
    if value_name is not None:
        counts.append(_ValueColumn(value_name))
    if console.width < NARROW:
        columns = counts
    else:
        columns = [TextColumn("{task.description}", table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis",
                                                                         min_width=8)),
                   BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=4)),
                   *counts[:1], TimeElapsedColumn(table_column=Column(no_wrap=True)), *counts[1:]]
    return Progress(*columns, console=console, disable=not enabled, expand=True, transient=transient)


def duration(seconds: float) -> str:
    """A duration for people: "42 s", "3 min 05 s", "2 h 07 min"."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


PROGRESS_SECONDS = 10.0
"""After a timed step, a jitted loop's chunks are sized so that its progress bar moves, and a Ctrl-C is answered
with a checkpoint, about this often."""
LONG_RUN_SECONDS = 300.0
"""A run whose remaining steps are estimated above this gets a one-line note with the estimate."""


def step_time(seconds: float) -> str:
    """One step's time for people: "1.3 s", "0.42 s", "3.1 ms", "45 us"."""
    if seconds >= 0.1:
        return f"{seconds:.2g} s"
    return f"{seconds * 1e3:.2g} ms" if seconds >= 1e-4 else f"{seconds * 1e6:.2g} us"


class ChunkSizer:
    """Chunk lengths for a loop that runs ``chunk`` steps per jitted call. A ``heavy`` loop (the caller's work
    estimate says a chunk could take long) first runs two single steps, the first compiling and the second
    timed; chunks are then capped so that one takes about PROGRESS_SECONDS. A light loop keeps ``chunk`` and is
    timed by its second chunk (its first compiles). Either way :meth:`ran` says once when the steps left are
    estimated above LONG_RUN_SECONDS (the caller prints a note: a huge --steps of fast steps got none)."""

    def __init__(self, chunk: int, heavy: bool):
        self.chunk = int(chunk)
        self._single_steps_left = 2 if heavy else 0
        self._chunks_run = 0
        self.seconds_per_step: float | None = None

    def length(self, remaining: int) -> int:
        """Steps of the next chunk."""
        return min(1 if self._single_steps_left else self.chunk, remaining)

    def ran(self, seconds: float, steps_left: int, steps: int = 1) -> float | None:
        """Record a chunk of ``steps`` steps and its wall time. Right after the step time was measured
        (``seconds_per_step``; a heavy loop's chunk is then capped), returns the time the ``steps_left`` will take
        when it exceeds LONG_RUN_SECONDS, once; otherwise None."""
        self._chunks_run += 1
        if self._single_steps_left:
            self._single_steps_left -= 1
            if self._single_steps_left:
                return None
            self.seconds_per_step = max(float(seconds), 1e-9)
            self.chunk = max(1, min(self.chunk, int(PROGRESS_SECONDS / self.seconds_per_step)))
        elif self.seconds_per_step is None and self._chunks_run == 2:
            self.seconds_per_step = max(float(seconds) / max(int(steps), 1), 1e-12)
        else:
            return None
        remaining = steps_left * self.seconds_per_step
        return remaining if remaining > LONG_RUN_SECONDS else None
