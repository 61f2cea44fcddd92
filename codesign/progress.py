"""Progress on stderr for long commands: one API, two renderings.

On a terminal (stderr is a tty) a tqdm bar shows the count, the elapsed time and an ETA.
Otherwise (a log, CI, a pipe) one plain line is printed per stage, e.g.
``validate: stage 2/5 measuring kernels (12 s)``, so logs stay readable.
``enabled=False`` (``--no-progress``) silences both; ``None`` (default) picks by tty.

Three forms:

* ``with stages("validate", total=5) as p: p.advance("measuring kernels")`` -- a fixed
  number of named stages; ``advance`` starts the next one.
* ``for item in iterate(items, "plans"): ...`` -- wrap an iterable (count = items).
* ``with reporter("validate") as on_progress: run(..., on_progress=on_progress)`` --
  the plain callback ``on_progress(stage: str, done: int, total: int)`` (``done`` steps
  of ``total`` finished, ``stage`` names the one now running) that library code which
  must not import codesign (validation/) accepts as an optional parameter
  (type ``OnProgress``).
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

OnProgress = Callable[[str, int, int], None]
T = TypeVar("T")


def is_terminal(stream: TextIO | None = None) -> bool:
    """True when `stream` (default stderr) is an interactive terminal with a width (a
    pseudo-terminal of 0 columns would show an empty bar: it gets lines instead)."""
    stream = stream if stream is not None else sys.stderr
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):
        return True


def _seconds(elapsed: float) -> str:
    return f"{elapsed:.0f} s" if elapsed < 600 else f"{elapsed / 60:.0f} min"


class Reporter:
    """Callable ``on_progress(stage, done, total)`` rendering a bar or plain lines."""

    def __init__(self, name: str, *, enabled: bool | None = None,
                 stream: TextIO | None = None, unit: str = "step",
                 stage_lines: bool = False, every_s: float = 0.0) -> None:
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled is not False
        self.bar_mode = self.enabled and is_terminal(self.stream)
        self.unit = unit
        self.stage_lines = stage_lines      # "stage k/N" (stages) vs "done/total" lines
        self.every_s = every_s              # off a terminal: at most a line per every_s
        self.start = time.monotonic()
        self.done, self.total = 0, 0
        self._first_done: int | None = None    # steps already done at the first call
        self._bar = None
        self._last_line = -float("inf")

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self._first_done is None:
            self._first_done = done
        if not self.enabled:
            return
        if self.bar_mode:
            self._draw_bar(stage, done, total)
        else:
            self._print_line(stage, done, total)

    def _draw_bar(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.name, unit=self.unit,
                             file=self.stream, dynamic_ncols=True, leave=False)
        if self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.set_postfix_str(stage, refresh=False)
        self._bar.refresh()

    def advance(self, n: int = 1, stage: str = "") -> None:
        """`n` more steps done (of the last total given)."""
        self(stage, self.done + n, self.total)

    def _print_line(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last_line < self.every_s and 0 < done < total:
            return
        self._last_line = now
        elapsed = now - self.start
        if self.stage_lines:
            head = f"stage {min(done + 1, total)}/{total}"
        else:
            head = f"{done}/{total}"
        tail = _seconds(elapsed)
        fresh = done - (self._first_done or 0)          # resumed steps took no time here
        if fresh > 0 and done < total and not self.stage_lines:   # stages differ in length
            tail += f", about {_seconds(elapsed / fresh * (total - done))} left"
        what = f"{head} {self.unit}s" if self.unit not in ("step", "it", "stage") \
            else head
        print(f"{self.name}: " + " ".join(p for p in (what, stage) if p) + f" ({tail})",
              file=self.stream, flush=True)

    def write(self, text: str) -> None:
        """A message that does not break the bar."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def reporter(name: str, *, enabled: bool | None = None, stream: TextIO | None = None,
             unit: str = "step", every_s: float = 0.0) -> Iterator[Reporter]:
    """The callback form: yields an ``OnProgress`` callable (also ``advance(n)``); closes
    its bar on exit. Off a terminal, `every_s` > 0 prints at most one line per `every_s`
    seconds (plus the first and the last)."""
    rep = Reporter(name, enabled=enabled, stream=stream, unit=unit, every_s=every_s)
    try:
        yield rep
    finally:
        rep.close()


class Stages:
    """A fixed number of named stages (see ``stages``)."""

    def __init__(self, rep: Reporter, total: int) -> None:
        self._rep = rep
        self.total = total
        self.done = -1          # index of the running stage; -1 before the first

    def advance(self, label: str) -> None:
        """Finish the running stage (if any) and start the next, named `label`."""
        self.done += 1
        self._rep(label, self.done, self.total)

    def write(self, text: str) -> None:
        self._rep.write(text)


@contextmanager
def stages(name: str, total: int, *, enabled: bool | None = None,
           stream: TextIO | None = None) -> Iterator[Stages]:
    """``with stages("validate", total=5) as p: p.advance("measuring kernels")``."""
    rep = Reporter(name, enabled=enabled, stream=stream, unit="stage", stage_lines=True)
    try:
        yield Stages(rep, total)
        if rep.bar_mode and rep._bar is not None:
            rep._bar.n = total
            rep._bar.refresh()
    finally:
        rep.close()


def iterate(items: Iterable[T], desc: str, *, total: int | None = None,
            enabled: bool | None = None, stream: TextIO | None = None,
            unit: str = "it", label: Callable[[T], str] | None = None) -> Iterator[T]:
    """Yield `items` with a bar (terminal) or one line per item (otherwise); `label(item)`
    names the running item (default: a string item itself or its `.name`)."""
    n = total if total is not None else (len(items) if hasattr(items, "__len__") else 0)
    rep = Reporter(desc, enabled=enabled, stream=stream, unit=unit)
    try:
        for done, item in enumerate(items):
            rep((label or _label)(item), done, n)
            yield item
        if rep.bar_mode and rep._bar is not None:
            rep._bar.n = n
            rep._bar.refresh()
    finally:
        rep.close()


def _label(item: object) -> str:
    text = item if isinstance(item, str) else getattr(item, "name", "")
    return str(text)[:40]
