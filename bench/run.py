"""Benchmarks (`make bench`): never run as tests; each measurement runs in its own process.

1. The loader (`ciq load`: read, cast, check every contract rule, split rejects, write Parquet)
   against DuckDB's own `COPY (SELECT * FROM read_csv(...)) TO '...parquet'` on the same file in
   the same run: wall time, the ratio, and peak RSS of each process.
2. propensity_scores + overlap_diagnostics + covariate_balance (the dbt Python models' functions)
   per 1M rows: wall time and peak RSS above the process's baseline.
Publish (bench/publish.py): `ciq publish` of 1M rows into PostgreSQL against `psql \\copy` of the
same rows into the same server: wall time, the ratio and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.formats import bench_formats, bench_large  # noqa: E402
from bench.publish import bench_publish  # noqa: E402

COPY = """
import duckdb
con = duckdb.connect()
# -- work --
con.execute(
    "copy (select * from read_csv('{csv}')) to '{out}' (format parquet)"
)
"""

LOAD = """
from pathlib import Path
from loaders.contract import load_contract
from loaders.settings import Paths
from loaders.staging import load_dataset
root = Path('{root}')
contract = load_contract(root / 'contracts' / 'events.yml')
# -- work --
result = load_dataset(contract, Paths(root), [Path('{csv}')], quiet=True)
assert result.rows_read == result.rows_staged + result.rows_rejected
"""

STATS = """
import numpy as np
import pandas as pd
from loaders.dbt_python import covariate_balance, overlap_diagnostics, propensity_scores
n = {rows}
rng = np.random.default_rng(1)
frame = pd.DataFrame({{
    "customer_id": np.arange(n, dtype=np.int64),
    "age": np.where(rng.random(n) < 0.03, np.nan, rng.integers(18, 90, n)).astype(float),
    "gender": rng.choice(["M", "F", "U"], n),
    "rfm_score": rng.uniform(0, 1000, n).astype(np.float32),
    "prior_7d_spend": rng.gamma(2.0, 40.0, n).astype(np.float32),
    "web_session_cnt": rng.poisson(6, n).astype(np.int16),
}})
index = 0.02 * (frame["age"].fillna(50) - 50) + 0.002 * (frame["rfm_score"] - 500)
frame["treated"] = (rng.random(n) < 1 / (1 + np.exp(-index))).astype(np.int8)
settings = {{
    "primary_key": ["customer_id"], "treatment_col": "treated", "estimand": "ate",
    "covariates": [{{"name": c, "categorical": c == "gender"}} for c in
                   ["age", "gender", "rfm_score", "prior_7d_spend", "web_session_cnt"]],
    "overlap_lower": 0.05, "overlap_upper": 0.95, "min_overlap_share": 0.6, "max_abs_smd": 0.1,
}}
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))
baseline = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as refs:  # reset VmHWM to the current RSS
    refs.write("5")
# -- work --
scores = propensity_scores(frame, settings)
overlap_diagnostics(scores, settings)
covariate_balance(frame, scores, settings)
extra = (status("VmHWM:") - baseline) / 1024
print("STATS_RSS", extra)
"""

MEASURE = """
import json, time
exec(compile({setup!r}, "setup", "exec"))
started = time.perf_counter()
exec(compile({work!r}, "work", "exec"))
# VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into ru_maxrss across exec
peak_kb = next(
    int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")
)
print("RESULT", json.dumps({{
    "seconds": time.perf_counter() - started,
    "peak_rss_mb": peak_kb / 1024,
}}))
"""


def measure(code: str) -> dict[str, float]:
    """Run `code` in a fresh interpreter: its setup, then the timed part after `# -- work --`."""
    setup, work = textwrap.dedent(code).split("# -- work --")
    script = MEASURE.format(setup=setup, work=work)
    output = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout
    result = json.loads(output.split("RESULT", 1)[1])
    for line in output.splitlines():
        if line.startswith("STATS_RSS"):
            result["stats_extra_mb"] = float(line.split()[1])
    return result


def bench_loader(work: Path, rows: int, repeats: int) -> None:
    from loaders.sample_data import generate_events

    root = work / "project"
    (root / "contracts").mkdir(parents=True)
    contract = (REPO / "contracts" / "events.yml").read_text()
    (root / "contracts" / "events.yml").write_text(contract)
    csv = work / "events.csv"
    report = generate_events(csv, rows, seed=11, messy=False)
    size_mb = csv.stat().st_size / 1e6
    print(f"loader: {report.rows:,} rows, {size_mb:.0f} MB csv, best of {repeats}")
    copy = min(
        (measure(COPY.format(csv=csv, out=work / "copy.parquet")) for _ in range(repeats)),
        key=lambda r: r["seconds"],
    )
    load = min(
        (measure(LOAD.format(root=root, csv=csv)) for _ in range(repeats)),
        key=lambda r: r["seconds"],
    )
    print(f"  duckdb COPY   {copy['seconds']:6.2f} s   peak RSS {copy['peak_rss_mb']:6.0f} MB")
    print(f"  ciq load      {load['seconds']:6.2f} s   peak RSS {load['peak_rss_mb']:6.0f} MB")
    print(
        f"  ratio         {load['seconds'] / copy['seconds']:6.2f}x time, "
        f"{load['peak_rss_mb'] / copy['peak_rss_mb']:.2f}x RSS  (targets <= 1.15x, <= 1.2x)"
    )
    print(f"  throughput    {report.rows / load['seconds'] / 1e6:6.2f} M rows/s")


def bench_stats(rows: int) -> None:
    result = measure(STATS.format(rows=rows))
    per_million = 1e6 / rows
    print(f"propensity + overlap + balance on {rows:,} rows:")
    print(
        f"  {result['seconds']:.2f} s, {result['stats_extra_mb']:.0f} MB above baseline "
        f"-> {result['seconds'] * per_million:.2f} s and "
        f"{result['stats_extra_mb'] * per_million:.0f} MB per 1M rows (targets <= 3 s, <= 600 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of the loader CSV")
    parser.add_argument("--stats-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--format-rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--large-csv-rows", type=int, default=10_000_000)
    parser.add_argument("--large-jsonl-rows", type=int, default=2_000_000)
    parser.add_argument("--publish-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--only",
        choices=["loader", "stats", "formats", "large", "publish"],
        help="run one part only",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ciq-bench-"))
    parts = [args.only] if args.only else ["loader", "stats", "formats", "large", "publish"]
    try:
        if "loader" in parts:
            bench_loader(work, args.rows, args.repeats)
        if "stats" in parts:
            bench_stats(args.stats_rows)
        if "formats" in parts:
            bench_formats(work, args.format_rows, args.xlsx_rows, measure)
        if "large" in parts:
            bench_large(work, measure, args.large_csv_rows, args.large_jsonl_rows)
        if "publish" in parts:
            bench_publish(work, args.publish_rows, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
