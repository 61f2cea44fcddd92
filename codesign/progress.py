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

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

OnProgress = Callable[[str, int, int], None]
T = TypeVar("T")


def is_terminal(stream: TextIO | None = None) -> bool:
    """True when `stream` (default stderr) is an interactive terminal."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _seconds(elapsed: float) -> str:
    return f"{elapsed:.0f} s" if elapsed < 600 else f"{elapsed / 60:.0f} min"


class Reporter:
    """Callable ``on_progress(stage, done, total)`` rendering a bar or plain lines."""

    def __init__(self, name: str, *, enabled: bool | None = None,
                 stream: TextIO | None = None, unit: str = "step",
                 stage_lines: bool = False) -> None:
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled is not False
        self.bar_mode = self.enabled and is_terminal(self.stream)
        self.unit = unit
        self.stage_lines = stage_lines      # "stage k/N" (stages) vs "done/total" lines
        self.start = time.monotonic()
        self._bar = None
        self._last_line = -1.0

    def __call__(self, stage: str, done: int, total: int) -> None:
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

    def _print_line(self, stage: str, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.start
        if self.stage_lines:
            head = f"stage {min(done + 1, total)}/{total}"
        else:
            head = f"{done}/{total}"
        tail = _seconds(elapsed)
        if 0 < done < total:
            tail += f", about {_seconds(elapsed / done * (total - done))} left"
        print(f"{self.name}: {head} {stage} ({tail})".rstrip(), file=self.stream,
              flush=True)

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
             unit: str = "step") -> Iterator[Reporter]:
    """The callback form: yields an ``OnProgress`` callable; closes its bar on exit."""
    rep = Reporter(name, enabled=enabled, stream=stream, unit=unit)
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
            unit: str = "it") -> Iterator[T]:
    """Yield `items` with a bar (terminal) or one line per item (otherwise)."""
    n = total if total is not None else (len(items) if hasattr(items, "__len__") else 0)
    rep = Reporter(desc, enabled=enabled, stream=stream, unit=unit)
    try:
        for done, item in enumerate(items):
            rep(_label(item), done, n)
            yield item
        if rep.bar_mode and rep._bar is not None:
            rep._bar.n = n
            rep._bar.refresh()
    finally:
        rep.close()


def _label(item: object) -> str:
    text = item if isinstance(item, str) else getattr(item, "name", "")
    return str(text)[:40]
