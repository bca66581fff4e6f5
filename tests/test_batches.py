"""Staging landed batches: incremental, idempotent, crash-safe, behind a schema gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loaders import batches
from loaders.batches import (
    FAILED_CONTRACT,
    FAILED_SCHEMA,
    STAGED,
    SchemaGateError,
    schema_gate,
    select_batches,
    stage_batch,
    status_rows,
    status_table,
)
from loaders.contract import contract_for
from loaders.errors import LoadError
from loaders.landing import land, plan_landing
from loaders.settings import Paths

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "events"
HEADER = "customer_id,event_time,treated,y,age,gender,rfm_score,prior_7d_spend,web_session_cnt"


def land_files(project: Paths, tmp_path: Path, run_date: str, *files: Path) -> str:
    contract = contract_for("events", project.contracts)
    plan = plan_landing(contract, project.data, list(files), run_date=run_date)
    return land(contract, plan).batch_id


def csv(tmp_path: Path, name: str, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "drops" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def stage_all(project: Paths, **options: object) -> list[tuple[batches.BatchState, bool]]:
    contract = contract_for("events", project.contracts)
    chosen = select_batches(project, contract, "default", None, "all")
    return [stage_batch(contract, project, batch, **options) for batch in chosen]


def test_stage_is_idempotent_and_force_restages(project: Paths, tmp_path: Path) -> None:
    land_files(project, tmp_path, "20240101", *sorted(SAMPLES.iterdir()))
    [(state, staged_now)] = stage_all(project)
    assert staged_now and state.state == STAGED
    assert state.rows > 0 and state.rejects == 8
    folder = project.staged("events") / f"run_date=20240101/batch_id={state.batch_id}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "_load_manifest.json",
        "_state.json",
        "events_2024_01.parquet",
        "events_2024_02.parquet",
    ]
    [(again, staged_now)] = stage_all(project)
    assert not staged_now and again == state
    [(forced, staged_now)] = stage_all(project, force=True)
    assert staged_now and forced.rows == state.rows
    schema_gate(project, contract_for("events", project.contracts))  # passes


def test_missing_run_date_or_batch_says_how_to_list(project: Paths, tmp_path: Path) -> None:
    contract = contract_for("events", project.contracts)
    with pytest.raises(LoadError, match="run `ciq status events` to list what exists"):
        select_batches(project, contract, "default", None, "latest")
    land_files(project, tmp_path, "20240101", *sorted(SAMPLES.iterdir()))
    with pytest.raises(LoadError, match="no batch landed for run date 20240102; run `ciq status"):
        select_batches(project, contract, "default", "20240102", "latest")
    with pytest.raises(LoadError, match="no batch 'nope'; run `ciq status"):
        select_batches(project, contract, "default", None, "nope")


def test_latest_picks_the_newest_batch_of_each_run_date(project: Paths, tmp_path: Path) -> None:
    first = land_files(
        project, tmp_path, "20240101", csv(tmp_path, "a.csv", "1,2024-01-01 00:00:00,1,1,1,M,1,1,1")
    )
    second = land_files(
        project, tmp_path, "20240101", csv(tmp_path, "b.csv", "2,2024-01-01 00:00:00,1,1,1,M,1,1,1")
    )
    contract = contract_for("events", project.contracts)
    assert [b.batch_id for b in select_batches(project, contract, "default", None, "latest")] == [
        second
    ]
    assert [b.batch_id for b in select_batches(project, contract, "default", None, "all")] == [
        first,
        second,
    ]


def test_a_batch_with_another_schema_blocks_the_build(project: Paths, tmp_path: Path) -> None:
    land_files(
        project, tmp_path, "20240101", csv(tmp_path, "a.csv", "1,2024-01-01 00:00:00,1,1,1,M,1,1,1")
    )
    bad = csv(tmp_path, "b.csv", "2,2024-01-01 00:00:00,1,1,1,M,1,1,1,9", header=HEADER + ",coupon")
    bad_batch = land_files(project, tmp_path, "20240102", bad)
    states = {s.batch_id: s for s, _ in stage_all(project)}
    assert states[bad_batch].state == FAILED_SCHEMA
    contract = contract_for("events", project.contracts)
    with pytest.raises(SchemaGateError) as error:
        schema_gate(project, contract)
    message = str(error.value)
    assert f"run_date=20240102 batch_id={bad_batch}: failed_schema_mismatch" in message
    assert "'coupon' are not in events.yml" in message
    table = status_table(status_rows(project, contract))
    assert "✗" in table and "✓" in table
    failed_folder = project.staged("events") / f"run_date=20240102/batch_id={bad_batch}"
    assert list(failed_folder.glob("*.parquet")) == []  # nothing dbt could read


def test_a_contract_change_names_type_changes_per_batch(project: Paths, tmp_path: Path) -> None:
    land_files(
        project, tmp_path, "20240101", csv(tmp_path, "a.csv", "1,2024-01-01 00:00:00,1,1,1,M,1,1,1")
    )
    stage_all(project)
    path = project.contract_file("events")
    path.write_text(path.read_text().replace("  age: int16", "  age: int32"))
    contract = contract_for("events", project.contracts)
    with pytest.raises(SchemaGateError, match="age: SMALLINT instead of INTEGER"):
        schema_gate(project, contract)
    stage_all(project)  # the contract hash changed: the batch is restaged
    schema_gate(project, contract)


def test_rejects_beyond_tolerance_fail_the_batch(project: Paths, tmp_path: Path) -> None:
    rows = [f"{i},2024-01-01 00:00:00,1,1,200,M,1,1,1" for i in range(30)]
    land_files(project, tmp_path, "20240101", csv(tmp_path, "a.csv", *rows))
    [(state, _)] = stage_all(project)
    assert state.state == FAILED_CONTRACT and state.rejects == 30
    with pytest.raises(SchemaGateError, match="failed_contract"):
        schema_gate(project, contract_for("events", project.contracts))


def test_a_crash_mid_stage_leaves_nothing_partial_and_the_next_run_recovers(
    project: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    land_files(project, tmp_path, "20240101", *sorted(SAMPLES.iterdir()))
    original = batches.swap_dir

    def crash(new: Path, final: Path) -> None:
        assert any(new.glob("*.parquet"))  # a partial write exists in the hidden work folder
        raise RuntimeError("power cut")

    monkeypatch.setattr(batches, "swap_dir", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        stage_all(project)
    staged = project.staged("events")
    assert list(staged.rglob("*.parquet")) == []
    assert [p for p in staged.rglob("*") if p.name.startswith(".")] == []
    monkeypatch.setattr(batches, "swap_dir", original)
    [(state, staged_now)] = stage_all(project)
    assert staged_now and state.state == STAGED
    json.loads((staged / f"run_date=20240101/batch_id={state.batch_id}/_state.json").read_text())
    shutil.rmtree(tmp_path / "drops", ignore_errors=True)
