"""A progress bar for large files on a terminal; silent when not a TTY or when CI is set."""

from __future__ import annotations

import os
import sys
import time

LARGE_FILE = 32 * 1024 * 1024


def interactive() -> bool:
    """Whether progress should be drawn: stderr is a terminal and CI is not set."""
    return sys.stderr.isatty() and not os.environ.get("CI")


class ByteProgress:
    """Draws `name  42%  120/270 MB` on stderr as bytes are processed, at most 5 times a second."""

    def __init__(self, name: str, total: int, *, enabled: bool) -> None:
        self.name, self.total, self.done = name, max(total, 1), 0
        self.enabled = enabled and total >= LARGE_FILE
        self.shown_at = 0.0

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self.shown_at > 0.2:
            self.shown_at = now
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            sys.stderr.write(
                f"\r{self.name}  [{bar:<30}] {share:4.0%}  "
                f"{self.done / 1e6:,.0f}/{self.total / 1e6:,.0f} MB"
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.shown_at:
            sys.stderr.write("\n")
