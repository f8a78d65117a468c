"""The live progress line of ``raftkv bench`` on stderr."""

from __future__ import annotations

from typing import TextIO

from loadgen.stats import OpStats

__all__ = ["Progress"]


class Progress:
    """The live line on ``stream``: rewritten in place (``\\r``) on a terminal, else one line per
    update."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._width = 0

    def show(self, line: str) -> None:
        """Replace the progress line with ``line``."""
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, line: str) -> None:
        """A line of its own (after ending the progress line, if one is shown)."""
        self.finish()
        self.stream.write(f"raftkv bench: {line}\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the progress line on a terminal, so what follows starts on a fresh line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def tick(
        self,
        *,
        warming: bool,
        since_s: float,
        interval: OpStats,
        span_s: float,
        total: OpStats,
        cpu_share: float,
    ) -> None:
        """One second's line: phase and time, ops/s in the last interval, totals, p99 so far."""
        rate = interval.ops / span_s if span_s > 0 else 0.0
        phase = f"warm-up {since_s:4.1f}s left" if warming else f"{since_s:6.1f}s"
        p99 = f"{total.latency.percentile(0.99) / 1e6:.2f} ms" if total.ops else "-"
        self.show(
            f"[{phase}] {rate:>10,.0f} ops/s | total {total.ops:,} | "
            f"errors {total.error_count:,} | p99 {p99} | client cpu {cpu_share:.0%}"
        )
