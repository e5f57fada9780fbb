"""A one-line progress bar with rate and ETA, for anything that runs longer than a few seconds.

On a terminal it redraws one line on stderr; otherwise (CI logs, doit capturing) it prints a line every
`every_s` seconds and at the end.
"""
from __future__ import annotations

import sys
import time


def lines_in_order() -> None:
    """Write stdout line by line, as stderr already is: a log redirected to a file then reads in the order
    things happened (a block-buffered stdout puts a task's lines after later tasks' errors)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # a replaced stream (pytest's capture, an IDE's) has none
            stream.reconfigure(line_buffering=True)


class Progress:
    def __init__(self, label: str, total: int, done: int = 0, unit: str = "pairs", every_s: float = 10.0):
        self.label, self.total, self.done, self.unit = label, total, done, unit
        self.started_done = done
        self.started = time.monotonic()
        self.every_s = every_s
        self.last_print = 0.0
        self.extra = ""
        self.tty = sys.stderr.isatty()

    def update(self, advance: int = 1, extra: str = "") -> None:
        self.done += advance
        self.extra = extra
        now = time.monotonic()
        if self.tty or now - self.last_print >= self.every_s:
            self.last_print = now
            self._draw(final=False)

    def rate_per_min(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.done - self.started_done) / elapsed * 60 if elapsed > 0 else 0.0

    def line(self) -> str:
        width = 24
        fraction = self.done / self.total if self.total else 1.0
        filled = int(round(width * min(1.0, fraction)))
        rate = self.rate_per_min()
        left = self.total - self.done
        eta = time.strftime("%H:%M:%S", time.gmtime(left / rate * 60)) if rate > 0 and left > 0 else "--:--:--"
        text = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.unit}"
                f"  {rate:.1f} {self.unit}/min  ETA {eta}")
        return f"{text}  {self.extra}" if self.extra else text

    def _draw(self, final: bool) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + self.line() + ("\n" if final else ""))
        else:
            sys.stderr.write(self.line() + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        self._draw(final=True)
