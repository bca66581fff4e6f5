"""One structured line per step in logs/ciq.log: time, command, dataset, batch, counts, outcome."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Step:
    """Details a step adds to its log line while it runs (batch, counts, ...)."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}

    def note(self, **fields: Any) -> None:
        self.fields.update(fields)


@contextmanager
def logged_step(log_file: Path, command: str, dataset: str | None) -> Iterator[Step]:
    """Append a JSON line for the step when it ends, with its outcome and duration."""
    step, started, outcome = Step(), time.perf_counter(), "ok"
    try:
        yield step
    except BaseException as exc:
        outcome = f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        raise
    finally:
        record = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": command,
            "dataset": dataset,
            **step.fields,
            "outcome": outcome,
            "seconds": round(time.perf_counter() - started, 3),
        }
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
