"""A dependency-free progress line: step, loss, live PSNR, speed and time left.

On a terminal the line is redrawn in place at most ten times a second; when stderr is not a
terminal (logs, CI) a plain line is printed at each evaluation instead.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class ProgressBar:
    """Render training progress on ``stream`` (stderr by default); silent when ``quiet``."""

    def __init__(self, total_steps: int | None, total_seconds: float | None, quiet: bool = False,
                 stream: TextIO | None = None) -> None:
        self.total_steps = total_steps
        self.total_seconds = total_seconds
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._width = 0
        self.tail_seconds = 0.0  # expected time after training (final evaluation), added to the time left

    def _line(self, step: int, elapsed: float, loss: float, psnr: float, steps_per_second: float) -> str:
        fraction = 0.0
        if self.total_steps:
            fraction = step / self.total_steps
        if self.total_seconds:
            fraction = max(fraction, elapsed / self.total_seconds)
        fraction = min(fraction, 1.0)
        bar = "#" * int(20 * fraction) + "." * (20 - int(20 * fraction))
        left = (elapsed * (1 - fraction) / fraction if fraction > 0 else 0.0) + self.tail_seconds
        total = f"/{self.total_steps}" if self.total_steps else ""
        quality = "" if math.isnan(psnr) else f"psnr {psnr:5.2f} dB "
        return (f"step {step}{total} [{bar}] loss {loss:.3e} {quality}"
                f"{steps_per_second:6.1f} it/s {_clock(elapsed)}<{_clock(left)}")

    def update(self, step: int, elapsed: float, loss: float, psnr: float, steps_per_second: float,
               force: bool = False) -> None:
        """Redraw (terminal, rate-limited) or print a line (``force``, non-terminal)."""
        if self.quiet:
            return
        now = time.monotonic()
        if self.interactive:
            if not force and now - self._last_draw < 0.1:
                return
            line = self._line(step, elapsed, loss, psnr, steps_per_second)
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        elif force:
            self.stream.write(self._line(step, elapsed, loss, psnr, steps_per_second) + "\n")
        self.stream.flush()
        self._last_draw = now

    def message(self, text: str) -> None:
        """Print a line of text below the progress line."""
        if self.quiet:
            return
        if self.interactive and self._width:
            self.stream.write("\n")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the progress line."""
        if not self.quiet and self.interactive and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
