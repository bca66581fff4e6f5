"""Benchmark: `ciq publish` (DuckDB -> PostgreSQL) against `psql \\copy` of the same rows.

Both load the same 1M-row events table (the shape of causal_ready) into the same PostgreSQL
server in the same run, each in a fresh process, best of N:
- psql: `\\copy <table> from '<csv>' (format csv)` into an empty table with the same column
  types; the CSV is written by DuckDB beforehand (not timed). Wall time of the psql process.
- ciq: describe the DuckDB table (content checksum), then the publish transaction: binary COPY
  into a new table, row-count check, primary key, ANALYZE, swap, log. Wall time of that work in
  a process that has imported its libraries; the process start is reported apart.
Peak RSS is each process's own high-water mark (VmHWM). The server is the one named by
CIQ_POSTGRES_DSN / PG* or else a temporary bundled one; psql is the one shipped with pgserver
when there is one, else `psql` on PATH.

Run: `.venv/bin/python bench/publish.py [--rows N] [--repeats N]` (or `make bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loaders.postgres import DSN_VAR, SERVER_VARS  # noqa: E402

TABLE = """
create or replace table events.causal_ready as
select
    i::bigint as customer_id,
    timestamp '2024-01-01' + to_seconds(i % 5000000) as event_time,
    (hash(i) % 2)::tinyint as treated,
    random() * 400 as y,
    case when i % 31 = 0 then null else (18 + i % 70)::smallint end as age,
    ['M', 'F', 'U'][i % 3 + 1] as gender,
    (random() * 1000)::float as rfm_score,
    case when i % 11 = 0 then null else (random() * 500)::float end as prior_7d_spend,
    (i % 40)::smallint as web_session_cnt
from range({rows}) as r(i)
"""

PUBLISH = """
import json, resource, sys, time
from pathlib import Path
import duckdb, psycopg
from loaders.contract import load_contract
from loaders.publish_move import describe_source, move_tables
contract = load_contract(Path(sys.argv[3]))
with duckdb.connect(sys.argv[1], read_only=True) as duck:
    with psycopg.connect(sys.argv[2], autocommit=True) as pg:
        pg.execute("drop schema if exists events cascade")
        started = time.perf_counter()
        sources = [describe_source(duck, "events", "causal_ready", contract)]
        (result,) = move_tables(duck, sources, pg, "events", contract)
        seconds = time.perf_counter() - started
assert result.postgres_rows == result.duckdb_rows
print("RESULT", json.dumps({"seconds": seconds, "rows": result.postgres_rows}))
"""


def run(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of a child process.

    The peak is the child's own VmHWM, read from /proc while it runs: wait4's ru_maxrss would
    also count the pages it shared with this (large) process between fork and exec.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    peak = 0.0
    output: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: output.append(stdout.read()))
    reader.start()
    while process.poll() is None:
        peak = max(peak, _high_water_mark(process.pid))
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    reader.join()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {output}")
    return seconds, peak, "".join(output)


def _high_water_mark(pid: int) -> float:
    """VmHWM of a running process in MB (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


@contextmanager
def server(work: Path) -> Iterator[str]:
    """The configured server, else a temporary bundled one."""
    if os.environ.get(DSN_VAR) or any(os.environ.get(name) for name in SERVER_VARS):
        yield os.environ.get(DSN_VAR, "")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    handle = pgserver.get_server(work / "pgdata", cleanup_mode="delete")
    try:
        yield str(handle.get_uri())
    finally:
        handle.cleanup()


def psql_binary() -> str:
    """pgserver's own psql when installed, else the one on PATH."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
        bundled = POSTGRES_BIN_PATH / "psql"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("psql")
    if found is None:
        raise SystemExit("no psql: install pgserver (make setup) or postgresql-client")
    return found


def bench_publish(work: Path, rows: int, repeats: int) -> None:
    import duckdb
    import psycopg

    warehouse = work / "publish.duckdb"
    csv = work / "publish.csv"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema events")
        con.execute(TABLE.format(rows=rows))
        con.execute(f"copy events.causal_ready to '{csv}' (format csv, header false)")
    contract = REPO / "contracts" / "events.yml"
    psql = psql_binary()
    with server(work) as dsn:
        with psycopg.connect(dsn) as pg:
            version = pg.execute("show server_version").fetchone()[0]
        print(
            f"publish: {rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB as CSV), best of "
            f"{repeats}; PostgreSQL {version}; psql {psql}"
        )
        reference, ours = [], []
        for _ in range(repeats):
            with psycopg.connect(dsn, autocommit=True) as pg:
                pg.execute("drop table if exists public.bench_psql")
                pg.execute(
                    "create table public.bench_psql (customer_id bigint, event_time timestamp, "
                    "treated smallint, y double precision, age smallint, gender text, "
                    "rfm_score real, prior_7d_spend real, web_session_cnt smallint)"
                )
            copy = f"\\copy public.bench_psql from '{csv}' with (format csv)"
            reference.append(run([psql, dsn, "-v", "ON_ERROR_STOP=1", "-c", copy])[:2])
            seconds, rss, output = run(
                [sys.executable, "-c", PUBLISH, str(warehouse), dsn, str(contract)]
            )
            work_seconds = json.loads(output.split("RESULT", 1)[1])["seconds"]
            ours.append((work_seconds, rss, seconds))
        with psycopg.connect(dsn, autocommit=True) as pg:
            pg.execute("drop table if exists public.bench_psql")
            pg.execute("drop schema if exists events cascade")
    psql_seconds, psql_rss = min(reference)
    ciq_seconds, ciq_rss, ciq_process = min(ours)
    print(f"  psql \\copy    {psql_seconds:6.2f} s   peak RSS {psql_rss:6.0f} MB")
    print(
        f"  ciq publish   {ciq_seconds:6.2f} s   peak RSS {ciq_rss:6.0f} MB   "
        f"({ciq_process:.2f} s with Python start and imports)"
    )
    print(
        f"  ratio         {ciq_seconds / psql_seconds:6.2f}x time "
        f"({ciq_process / psql_seconds:.2f}x with start-up)  (target <= 1.1x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ciq-bench-publish-"))
    try:
        bench_publish(work, args.rows, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
