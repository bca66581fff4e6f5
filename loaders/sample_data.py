"""Seeded generator of marketing events with a known true propensity.

The files follow ``contracts/events.yml`` and carry the mess of real exports: blank and sentinel
ages, badly cased genders, blank prior spend and a few rows that break the contract on purpose.
Rows are generated and written in chunks, so memory stays bounded whatever the row count.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

SCENARIOS = ("realistic", "poor_overlap", "imbalanced")
COLUMNS = (
    "customer_id",
    "event_time",
    "treated",
    "y",
    "age",
    "gender",
    "rfm_score",
    "prior_7d_spend",
    "web_session_cnt",
)
TRUE_EFFECT = 5.0  # true average treatment effect of the campaign on y

# Shares of the mess (messy=True).
AGE_BLANK_SHARE = 0.03
AGE_SENTINEL_SHARE = 0.01
GENDER_LOWER_SHARE = 0.08  # of M/F rows: "m", "f"
GENDER_SPACED_SHARE = 0.02  # of M/F rows: " M", " F"
GENDER_X_SHARE = 0.10  # of U rows: "X" (normalised to U by the contract)
SPEND_BLANK_OF_ZERO = 0.19  # of zero-spend rows (about 5% of all rows); blank means 0
RULE_BREAKER_RATE = 0.002
GZIP_LEVEL = 1  # fast: Arrow's gzip stream is fixed at level 9 (~15x slower)
HIGH_RFM_THRESHOLD = 650.0  # targeting rule of the imbalanced scenario

_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("event_time", pa.timestamp("s")),
        ("treated", pa.int8()),
        ("y", pa.float64()),
        ("age", pa.int16()),
        ("gender", pa.string()),
        ("rfm_score", pa.string()),
        ("prior_7d_spend", pa.float64()),
        ("web_session_cnt", pa.int32()),
    ]
)
_HEADER = (",".join(COLUMNS) + "\n").encode()
# Gender codes: 0-2 are the clean values, 3-7 the messy spellings of them.
_GENDER_TEXT = pa.array(["M", "F", "U", "m", "f", " M", " F", "X"])
_BASE_MONTH = np.datetime64("2024-01", "M")

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GenerationReport:
    """What one generated file holds."""

    path: Path
    rows: int
    rule_breakers: int


@dataclass(frozen=True)
class _Chunk:
    table: pa.Table
    breakers: npt.NDArray[np.bool_]


def _check_scenario(scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {SCENARIOS}")


def _logistic(index: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-index))


def _propensity_index(
    age: Array,
    female: Array,
    unknown: Array,
    rfm: Array,
    spend: Array,
    sessions: Array,
    scenario: str,
) -> Array:
    """Linear predictor of treatment (log-odds) from clean covariates."""
    za = (age - 42.0) / 13.0
    zr = (rfm - 500.0) / 180.0
    zs = (spend - 40.0) / 44.0
    zw = (sessions - 5.6) / 3.8
    if scenario == "imbalanced":
        # A threshold targeting rule on rfm_score: a linear-in-covariates model cannot follow it.
        return -1.5 + 0.3 * za + 3.5 * (rfm > HIGH_RFM_THRESHOLD)
    linear = -0.1 + 0.35 * za + 0.45 * zr + 0.3 * zs + 0.3 * zw + 0.25 * female - 0.2 * unknown
    return 8.0 * linear if scenario == "poor_overlap" else linear


def true_propensity(
    age: npt.ArrayLike,
    gender: npt.ArrayLike,
    rfm_score: npt.ArrayLike,
    prior_7d_spend: npt.ArrayLike,
    web_session_cnt: npt.ArrayLike,
    scenario: str,
) -> Array:
    """True P(treated = 1) for clean covariates (gender as "M"/"F"/"U") under a scenario."""
    _check_scenario(scenario)
    g = np.char.upper(np.char.strip(np.asarray(gender).astype(str)))
    index = _propensity_index(
        np.asarray(age, dtype=np.float64),
        (g == "F").astype(np.float64),
        ((g != "M") & (g != "F")).astype(np.float64),
        np.asarray(rfm_score, dtype=np.float64),
        np.asarray(prior_7d_spend, dtype=np.float64),
        np.asarray(web_session_cnt, dtype=np.float64),
        scenario,
    )
    return _logistic(index)


def _simulate(
    rng: np.random.Generator, n: int, first_id: int, scenario: str, month: int
) -> dict[str, np.ndarray]:
    """Clean covariates, treatment and outcome for n customers."""
    engagement = rng.standard_normal(n)
    age = np.clip(np.rint(rng.normal(42.0, 13.0, n)), 18, 90)
    gender = rng.choice(3, size=n, p=[0.47, 0.47, 0.06]).astype(np.int8)
    rfm = 500.0 + 180.0 * (0.6 * engagement + 0.8 * rng.standard_normal(n))
    rfm = np.clip(np.round(rfm, 2), 0.0, 1000.0)
    zero = rng.random(n) < _logistic(-1.1 - 0.5 * engagement)
    spend = np.where(zero, 0.0, np.round(rng.gamma(2.0, 25.0 * np.exp(0.3 * engagement)), 2))
    sessions = np.minimum(rng.poisson(np.exp(1.6 + 0.5 * engagement)), 10_000)
    female = (gender == 1).astype(np.float64)
    index = _propensity_index(
        age, female, (gender == 2).astype(np.float64), rfm, spend, sessions, scenario
    )
    treated = (rng.random(n) < _logistic(index)).astype(np.int8)
    y = (
        20.0
        + 0.1 * age
        + 0.03 * rfm
        + 0.5 * spend
        + 0.8 * sessions
        + 2.0 * female
        + TRUE_EFFECT * treated
        + rng.normal(0.0, 8.0, n)
    )
    start = (_BASE_MONTH + (month - 1)).astype("datetime64[s]")
    seconds = int(((_BASE_MONTH + month).astype("datetime64[s]") - start).astype(np.int64))
    return {
        "customer_id": np.arange(first_id, first_id + n, dtype=np.int64),
        "event_time": start + rng.integers(0, seconds, n).astype("timedelta64[s]"),
        "treated": treated,
        "y": np.round(y, 2) + 0.0,
        "age": age.astype(np.int16),
        "gender": gender,
        "rfm_score": rfm,
        "prior_7d_spend": spend,
        "web_session_cnt": sessions.astype(np.int32),
    }


def _breaker_count(rows: int) -> int:
    """Rule breakers planted in a file of `rows` rows: ~0.2%, at least 1 from 1000 rows."""
    return max(round(rows * RULE_BREAKER_RATE), 1 if rows >= 1000 else 0)


def _messy_gender(rng: np.random.Generator, gender: np.ndarray) -> np.ndarray:
    """Lower-case, space-padded and out-of-category spellings of the clean codes."""
    u = rng.random(gender.size)
    male_female = gender < 2
    out = gender.copy()
    out[male_female & (u < GENDER_LOWER_SHARE)] += 3
    spaced = male_female & (u >= GENDER_LOWER_SHARE)
    out[spaced & (u < GENDER_LOWER_SHARE + GENDER_SPACED_SHARE)] += 5
    out[(gender == 2) & (u < GENDER_X_SHARE)] = 7
    return out


def _render(
    rng: np.random.Generator, clean: dict[str, np.ndarray], messy: bool, n_breakers: int
) -> _Chunk:
    """Arrow table of one chunk, with the mess and `n_breakers` rule breakers when messy."""
    n = clean["customer_id"].size
    age, gender = clean["age"].copy(), clean["gender"]
    no_rows = np.zeros(n, dtype=bool)
    age_blank, spend_blank, id_blank, rfm_na = no_rows, no_rows, no_rows.copy(), no_rows.copy()
    if messy:
        u = rng.random(n)
        age_blank = u < AGE_BLANK_SHARE
        age[(u >= AGE_BLANK_SHARE) & (u < AGE_BLANK_SHARE + AGE_SENTINEL_SHARE)] = -1
        gender = _messy_gender(rng, gender)
        zero = clean["prior_7d_spend"] == 0.0
        spend_blank = zero & (rng.random(n) < SPEND_BLANK_OF_ZERO)
        rows = rng.choice(n, size=n_breakers, replace=False)
        kinds = np.arange(n_breakers) % 3
        age[rows[kinds == 0]] = 130
        age_blank = age_blank & (age != 130)
        rfm_na[rows[kinds == 1]] = True
        id_blank[rows[kinds == 2]] = True
    rfm = pc.cast(pa.array(clean["rfm_score"]), pa.string())
    arrays = [
        pa.array(clean["customer_id"], mask=id_blank),
        pa.array(clean["event_time"]),
        pa.array(clean["treated"]),
        pa.array(clean["y"]),
        pa.array(age, mask=age_blank),
        pc.take(_GENDER_TEXT, pa.array(gender)),
        pc.if_else(pa.array(rfm_na), pa.scalar("n/a"), rfm),
        pa.array(clean["prior_7d_spend"], mask=spend_blank),
        pa.array(clean["web_session_cnt"]),
    ]
    table = pa.Table.from_arrays(arrays, schema=_SCHEMA)
    return _Chunk(table, (age == 130) | rfm_na | id_blank)


def _chunks(
    rows: int,
    seed: int | Sequence[int],
    scenario: str,
    messy: bool,
    first_id: int,
    chunk_rows: int,
    month: int = 1,
) -> Iterator[_Chunk]:
    """Generate the rows of one file chunk by chunk (never all at once)."""
    rng = np.random.default_rng(seed)
    total_breakers = _breaker_count(rows) if messy else 0
    for start in range(0, rows, chunk_rows):
        stop = min(start + chunk_rows, rows)
        n_breakers = total_breakers * stop // rows - total_breakers * start // rows
        clean = _simulate(rng, stop - start, first_id + start, scenario, month)
        yield _render(rng, clean, messy, n_breakers)


class _GzipSink:
    """Minimal writable file that gzips into `raw` at a fast level with a fixed header."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        # wbits=31: gzip container; zlib writes mtime 0, so the bytes depend only on the data.
        self._zip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self.closed = False

    def write(self, data: bytes) -> int:
        self._raw.write(self._zip.compress(data))
        return len(data)

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        if not self.closed:
            self._raw.write(self._zip.flush())
            self._raw.close()
            self.closed = True


def _open(path: Path) -> pa.NativeFile:
    raw = path.open("wb")
    return pa.PythonFile(_GzipSink(raw) if path.name.endswith(".gz") else raw, mode="w")


def _prefetch(chunks: Iterator[_Chunk]) -> Iterator[_Chunk]:
    """Generate the next chunk in a worker thread while the current one is written."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


def _write(path: Path, chunks: Iterator[_Chunk]) -> tuple[int, int]:
    """Write chunks as CSV (gzip when the name ends in .gz); return (rows, rule breakers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = breakers = 0
    options = pcsv.WriteOptions(include_header=False, batch_size=65_536, quoting_style="none")
    with _open(path) as sink:
        sink.write(_HEADER)
        with pcsv.CSVWriter(sink, _SCHEMA, write_options=options) as writer:
            for chunk in _prefetch(chunks):
                writer.write_table(chunk.table)
                rows += chunk.table.num_rows
                breakers += int(chunk.breakers.sum())
    return rows, breakers


def generate_events(
    path: Path,
    rows: int,
    *,
    seed: int = 7,
    scenario: str = "realistic",
    messy: bool = True,
    first_id: int = 1,
    chunk_rows: int = 500_000,
) -> GenerationReport:
    """Write `rows` events of January 2024 to `path` (.csv or .csv.gz) in chunks."""
    _check_scenario(scenario)
    if rows < 0 or chunk_rows <= 0:
        raise ValueError("rows must be >= 0 and chunk_rows > 0")
    path = Path(path)
    chunks = _chunks(rows, seed, scenario, messy, first_id, chunk_rows)
    written, breakers = _write(path, chunks)
    return GenerationReport(path=path, rows=written, rule_breakers=breakers)


def _sample_name(index: int) -> str:
    month = _BASE_MONTH + index
    year, mon = str(month).split("-")
    return f"events_{year}_{mon}.csv" + (".gz" if index % 2 else "")


def _pick_corrections(rng: np.random.Generator, chunk: _Chunk, count: int) -> pa.Table:
    """Rows of a chunk to repeat in the next file, with a corrected y."""
    candidates = np.flatnonzero(~chunk.breakers)
    rows = np.sort(rng.choice(candidates, size=min(count, candidates.size), replace=False))
    picked = chunk.table.take(pa.array(rows))
    delta = rng.uniform(1.0, 10.0, rows.size) * rng.choice([-1.0, 1.0], rows.size)
    y = np.round(picked.column("y").to_numpy() + delta, 2) + 0.0
    return picked.set_column(COLUMNS.index("y"), "y", pa.array(y))


def _with_corrections(rng: np.random.Generator, chunk: _Chunk, fixes: pa.Table) -> _Chunk:
    """Replace some non-breaking rows of a chunk by `fixes` (same count of rows)."""
    n = chunk.table.num_rows
    candidates = np.flatnonzero(~chunk.breakers)
    slots = np.sort(rng.choice(candidates, min(fixes.num_rows, candidates.size), replace=False))
    order = np.arange(n)
    order[slots] = n + np.arange(slots.size)
    table = pa.concat_tables([chunk.table, fixes.slice(0, slots.size)]).take(pa.array(order))
    return _Chunk(table, chunk.breakers)


def write_sample(
    out_dir: Path, *, rows_per_file: int = 2000, files: int = 2, seed: int = 7
) -> list[Path]:
    """Write monthly sample files (plain and .gz alternately) with corrections across files.

    A few rows of each file reappear in the next one with the same (customer_id, event_time)
    and a different y, like a later correction.
    """
    if rows_per_file < 1 or files < 1:
        raise ValueError("rows_per_file and files must be >= 1")
    out_dir = Path(out_dir)
    paths: list[Path] = []
    fixes: pa.Table | None = None
    for index in range(files):
        rng = np.random.default_rng([seed, index, 1])
        first_id = 1 + index * rows_per_file
        source = _chunks(
            rows_per_file, [seed, index], "realistic", True, first_id, 500_000, index + 1
        )
        first = next(source)
        head = first if fixes is None else _with_corrections(rng, first, fixes)
        fixes = _pick_corrections(rng, head, max(1, rows_per_file // 200))
        path = out_dir / _sample_name(index)
        _write(path, itertools.chain([head], source))
        paths.append(path)
    return paths
