"""Tests of the seeded sample-data generator (loaders/sample_data.py)."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import duckdb
import numpy as np
import pytest

from loaders import sample_data as sd
from loaders.sample_data import (
    COLUMNS,
    SCENARIOS,
    GenerationReport,
    generate_events,
    true_propensity,
    write_sample,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "data" / "samples" / "events"
HEADER = "customer_id,event_time,treated,y,age,gender,rfm_score,prior_7d_spend,web_session_cnt"
MESSY_GENDERS = {"M", "F", "U", "m", "f", " M", " F", "X"}
# Rows that break contracts/events.yml once its cleaning rules are applied (sentinel -1 -> NULL,
# gender upper-cased with fallback U, blank prior spend -> 0): they would be rejected.
VIOLATION = """
    customer_id IS NULL OR TRY_CAST(customer_id AS BIGINT) IS NULL
    OR event_time IS NULL OR TRY_STRPTIME(event_time, '%Y-%m-%d %H:%M:%S') IS NULL
    OR treated IS NULL OR treated NOT IN ('0', '1')
    OR (y IS NOT NULL AND TRY_CAST(y AS DOUBLE) IS NULL)
    OR (age IS NOT NULL AND (TRY_CAST(age AS INTEGER) IS NULL
        OR (TRY_CAST(age AS INTEGER) <> -1 AND TRY_CAST(age AS INTEGER) NOT BETWEEN 0 AND 110)))
    OR (rfm_score IS NOT NULL AND COALESCE(TRY_CAST(rfm_score AS DOUBLE) NOT BETWEEN 0 AND 1000,
        TRUE))
    OR (prior_7d_spend IS NOT NULL AND COALESCE(TRY_CAST(prior_7d_spend AS DOUBLE)
        NOT BETWEEN 0 AND 1e6, TRUE))
    OR (web_session_cnt IS NOT NULL AND COALESCE(TRY_CAST(web_session_cnt AS INTEGER)
        NOT BETWEEN 0 AND 10000, TRUE))
"""


def _rel(path: Path) -> str:
    return f"read_csv('{path}', all_varchar = true, header = true)"


def _query(sql: str) -> list[tuple]:
    with duckdb.connect() as con:
        return con.sql(sql).fetchall()


def _numeric(path: Path) -> dict[str, np.ndarray]:
    """Columns of a clean (messy=False) file as numpy arrays."""
    sql = f"""
        SELECT treated::INT AS t, age::DOUBLE AS age, (gender = 'F')::DOUBLE AS female,
               (gender = 'U')::DOUBLE AS unknown, rfm_score::DOUBLE AS rfm,
               prior_7d_spend::DOUBLE AS spend, web_session_cnt::DOUBLE AS sessions, gender
        FROM {_rel(path)}"""
    with duckdb.connect() as con:
        return con.sql(sql).fetchnumpy()


COVARIATES = ("age", "female", "unknown", "rfm", "spend", "sessions")


def _fit_logistic(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Propensity scores of a logistic regression linear in x (Newton / IRLS)."""
    design = np.column_stack([np.ones(len(t)), (x - x.mean(axis=0)) / x.std(axis=0)])
    beta = np.zeros(design.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-design @ beta))
        hessian = design.T @ (design * (p * (1.0 - p))[:, None])
        step = np.linalg.solve(hessian, design.T @ (t - p))
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return 1.0 / (1.0 + np.exp(-design @ beta))


def _weighted_smd(x: np.ndarray, t: np.ndarray, ps: np.ndarray) -> float:
    w = t / ps + (1 - t) / (1 - ps)
    treated, control = t == 1, t == 0
    mean_t = np.average(x[treated], weights=w[treated])
    mean_c = np.average(x[control], weights=w[control])
    pooled = np.sqrt((x[treated].var(ddof=1) + x[control].var(ddof=1)) / 2)
    return float((mean_t - mean_c) / pooled)


def _max_abs_smd(cols: dict[str, np.ndarray], ps: np.ndarray) -> float:
    t = cols["t"]
    return max(abs(_weighted_smd(cols[c], t, ps)) for c in COVARIATES)


def _overlap_share(ps: np.ndarray) -> float:
    return float(((ps > 0.05) & (ps < 0.95)).mean())


@pytest.fixture(scope="module")
def messy_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationReport]:
    path = tmp_path_factory.mktemp("messy") / "events.csv"
    return path, generate_events(path, 200_000, seed=11, chunk_rows=50_000)


@pytest.fixture(scope="module")
def scenario_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    out = tmp_path_factory.mktemp("scenarios")
    files = {}
    for scenario in SCENARIOS:
        path = out / f"{scenario}.csv"
        generate_events(path, 100_000, seed=3, scenario=scenario, messy=False)
        files[scenario] = _numeric(path)
    return files


def _true_ps(cols: dict[str, np.ndarray], scenario: str) -> np.ndarray:
    return true_propensity(
        cols["age"], cols["gender"], cols["rfm"], cols["spend"], cols["sessions"], scenario
    )


def test_header_and_row_counts(tmp_path: Path) -> None:
    for name in ("a.csv", "a.csv.gz"):
        report = generate_events(tmp_path / name, 3_001, chunk_rows=1_000)
        assert report == GenerationReport(tmp_path / name, 3_001, report.rule_breakers)
        text = (tmp_path / name).read_bytes()
        if name.endswith(".gz"):
            text = gzip.decompress(text)
        lines = text.decode().splitlines()
        assert lines[0] == HEADER == ",".join(COLUMNS)
        assert len(lines) == 3_002
        assert _query(
            f"SELECT count(*), count(DISTINCT event_time) > 1 FROM {_rel(tmp_path / name)}"
        ) == [(3_001, True)]
    empty = generate_events(tmp_path / "empty.csv", 0)
    assert empty.rows == 0
    assert (tmp_path / "empty.csv").read_text() == HEADER + "\n"


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    for name in ("e.csv", "e.csv.gz"):
        first = generate_events(tmp_path / "1" / name, 20_000, seed=5, chunk_rows=7_000)
        second = generate_events(tmp_path / "2" / name, 20_000, seed=5, chunk_rows=7_000)
        other = generate_events(tmp_path / "3" / name, 20_000, seed=6, chunk_rows=7_000)
        assert first.path.read_bytes() == second.path.read_bytes()
        assert first.path.read_bytes() != other.path.read_bytes()
    assert write_sample(tmp_path / "s1") != []
    write_sample(tmp_path / "s2")
    for name in ("events_2024_01.csv", "events_2024_02.csv.gz"):
        assert (tmp_path / "s1" / name).read_bytes() == (tmp_path / "s2" / name).read_bytes()


def test_gz_files_are_really_gzip(tmp_path: Path) -> None:
    plain = generate_events(tmp_path / "e.csv", 5_000, seed=9)
    packed = generate_events(tmp_path / "e.csv.gz", 5_000, seed=9)
    raw = packed.path.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert len(raw) < plain.path.stat().st_size / 2
    assert gzip.decompress(raw) == plain.path.read_bytes()
    assert packed.rule_breakers == plain.rule_breakers


def test_mess_is_present_in_realistic_proportions(
    messy_file: tuple[Path, GenerationReport],
) -> None:
    path, report = messy_file
    n = report.rows
    (row,) = _query(f"""
        SELECT count(*) FILTER (age IS NULL), count(*) FILTER (age = '-1'),
               count(*) FILTER (gender IN ('m', 'f')), count(*) FILTER (gender IN (' M', ' F')),
               count(*) FILTER (gender = 'X'), count(*) FILTER (prior_7d_spend IS NULL),
               count(*) FILTER (TRY_STRPTIME(event_time, '%Y-%m-%d %H:%M:%S') IS NULL),
               list(DISTINCT gender)
        FROM {_rel(path)}""")
    age_blank, age_sentinel, lower, spaced, x, spend_blank, bad_time, genders = row
    assert 0.025 < age_blank / n < 0.035
    assert 0.008 < age_sentinel / n < 0.012
    assert 0.05 < lower / n < 0.10
    assert 0.01 < spaced / n < 0.03
    assert 0.002 < x / n < 0.01
    assert 0.04 < spend_blank / n < 0.06
    assert bad_time == 0
    assert set(genders) == MESSY_GENDERS


def test_clean_files_have_no_mess(tmp_path: Path) -> None:
    report = generate_events(tmp_path / "c.csv", 20_000, messy=False)
    assert report.rule_breakers == 0
    (row,) = _query(f"""
        SELECT count(*) FILTER ({VIOLATION}), count(*) FILTER (age IS NULL OR age = '-1'),
               count(*) FILTER (prior_7d_spend IS NULL), list(DISTINCT gender ORDER BY gender)
        FROM {_rel(report.path)}""")
    assert row == (0, 0, 0, ["F", "M", "U"])


def test_rule_breakers_are_counted(messy_file: tuple[Path, GenerationReport]) -> None:
    path, report = messy_file
    (row,) = _query(f"""
        SELECT count(*) FILTER ({VIOLATION}), count(*) FILTER (customer_id IS NULL),
               count(*) FILTER (age = '130'), count(*) FILTER (rfm_score = 'n/a')
        FROM {_rel(path)}""")
    violations, blank_id, old, not_a_number = row
    assert violations == report.rule_breakers == blank_id + old + not_a_number
    assert min(blank_id, old, not_a_number) > 0
    assert 0.0015 < report.rule_breakers / report.rows < 0.0025


def test_small_files_still_carry_a_rule_breaker(tmp_path: Path) -> None:
    report = generate_events(tmp_path / "small.csv", 1_000, seed=1)
    (row,) = _query(f"SELECT count(*) FILTER ({VIOLATION}) FROM {_rel(report.path)}")
    assert row[0] == report.rule_breakers >= 1


def test_tracked_sample_is_up_to_date(tmp_path: Path) -> None:
    tracked = sorted(p.name for p in SAMPLE_DIR.iterdir())
    assert tracked == ["events_2024_01.csv", "events_2024_02.csv.gz"]
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir()) < 300_000
    fresh = write_sample(tmp_path)
    assert [p.name for p in fresh] == tracked
    for path in fresh:
        assert path.read_bytes() == (SAMPLE_DIR / path.name).read_bytes()


def test_sample_has_corrections_across_files(tmp_path: Path) -> None:
    first, second = (_rel(p) for p in write_sample(tmp_path))
    (row,) = _query(f"""
        SELECT count(*), count(*) FILTER (a.y <> b.y)
        FROM {first} a JOIN {second} b USING (customer_id, event_time)""")
    assert 3 <= row[0] <= 20
    assert row[1] == row[0]
    for rel in (first, second):
        (counts,) = _query(f"SELECT count(*), count(DISTINCT (customer_id, event_time)) FROM {rel}")
        assert counts == (2_000, 2_000)  # no duplicate key inside a file
    (months,) = _query(f"""
        SELECT count(*) FILTER (event_time LIKE '2024-02-%'), count(*) FILTER (event_time
        LIKE '2024-01-%') FROM {second}""")
    assert months == (2_000 - row[0], row[0])
    (breakers,) = _query(f"""
        SELECT (SELECT count(*) FILTER ({VIOLATION}) FROM {first})
             + (SELECT count(*) FILTER ({VIOLATION}) FROM {second})""")
    assert 1 <= breakers[0] <= 25


def test_realistic_scenario_overlaps_and_balances(scenario_files: dict) -> None:
    cols = scenario_files["realistic"]
    true_ps = _true_ps(cols, "realistic")
    assert _overlap_share(true_ps) >= 0.8
    x = np.column_stack([cols[c] for c in COVARIATES])
    estimated = _fit_logistic(x, cols["t"])
    assert _overlap_share(estimated) >= 0.8
    assert _max_abs_smd(cols, estimated) < 0.05
    assert _max_abs_smd(cols, np.full_like(estimated, cols["t"].mean())) > 0.2  # confounded


def test_poor_overlap_scenario(scenario_files: dict) -> None:
    cols = scenario_files["poor_overlap"]
    assert _overlap_share(_true_ps(cols, "poor_overlap")) < 0.45


def test_imbalanced_scenario_defeats_a_linear_model(scenario_files: dict) -> None:
    cols = scenario_files["imbalanced"]
    x = np.column_stack([cols[c] for c in COVARIATES])
    estimated = _fit_logistic(x, cols["t"])
    assert _overlap_share(estimated) >= 0.7
    assert _max_abs_smd(cols, estimated) > 0.1
    assert _max_abs_smd(cols, _true_ps(cols, "imbalanced")) < 0.05  # the truth would balance


def test_true_propensity_matches_assignment(scenario_files: dict) -> None:
    for scenario, cols in scenario_files.items():
        ps = _true_ps(cols, scenario)
        assert ps.shape == cols["t"].shape
        assert abs(ps.mean() - cols["t"].mean()) < 0.01
        high = ps > np.median(ps)
        assert cols["t"][high].mean() > cols["t"][~high].mean() + 0.1
    with pytest.raises(ValueError):
        true_propensity([40], ["M"], [500.0], [0.0], [3], "nope")


def test_treatment_effect_is_the_true_one(tmp_path: Path) -> None:
    report = generate_events(tmp_path / "r.csv", 100_000, seed=2, messy=False)
    cols = _numeric(report.path)
    with duckdb.connect() as con:
        y = con.sql(f"SELECT y::DOUBLE AS y FROM {_rel(report.path)}").fetchnumpy()["y"]
    t = cols["t"]
    ps = _true_ps(cols, "realistic")
    ipw = np.mean(t * y / ps) - np.mean((1 - t) * y / (1 - ps))
    naive = y[t == 1].mean() - y[t == 0].mean()
    assert sd.TRUE_EFFECT == 5.0
    assert abs(ipw - 5.0) < 1.0
    assert naive - 5.0 > 3.0  # confounding biases the naive contrast upward


def test_generation_is_chunked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    simulate = sd._simulate

    def spy(rng: np.random.Generator, n: int, *args: object) -> dict[str, np.ndarray]:
        sizes.append(n)
        return simulate(rng, n, *args)

    monkeypatch.setattr(sd, "_simulate", spy)
    tracemalloc.start()
    try:
        report = generate_events(tmp_path / "big.csv", 2_000_000, chunk_rows=200_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.rows == 2_000_000
    assert sizes == [200_000] * 10
    # All 2M rows at once would take ~200 MB of numpy arrays; a chunk takes ~15 MB.
    assert peak < 80_000_000


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_events(tmp_path / "x.csv", 10, scenario="nope")
    with pytest.raises(ValueError):
        generate_events(tmp_path / "x.csv", 10, chunk_rows=0)
