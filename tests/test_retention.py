"""`ciq clean`: what is kept, compressed, removed or archived, and that a dry run is exact."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import pytest

from loaders.batches import landed_batches, stage_batch
from loaders.contract import Retention, contract_for, load_contract
from loaders.errors import ContractError
from loaders.landing import LandPlan, land, new_batch_id, plan_landing, validate
from loaders.retention import (
    COMPRESS,
    ENVIRONMENT,
    REMOVE_LANDING,
    REMOVE_STAGED,
    RetentionError,
    Settings,
    apply,
    plan_clean,
    settings_for,
)
from loaders.settings import Paths

HEADER = "customer_id,event_time,treated,y,age,gender,rfm_score,prior_7d_spend,web_session_cnt"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NEVER = 100_000  # days: compress nothing
ALL_OLD = Settings(staged_days=30, compress_after_days=NEVER, delete_after_days=90, keep_newest=0)


@pytest.fixture(autouse=True)
def no_retention_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)


def land_at(
    project: Paths, tmp_path: Path, days_ago: int, run_date: str = "20240101", ns: str = "default"
) -> LandPlan:
    """Land a one-row events file as a batch whose id says it was landed `days_ago` before NOW."""
    folder = tmp_path / f"drop-{ns}-{run_date}-{days_ago}"
    folder.mkdir()
    row = f"{days_ago},2024-01-01 10:00:00,1,1.5,40,M,100,1,3"
    (folder / f"part{days_ago}.csv").write_text(f"{HEADER}\n{row}\n")
    contract = contract_for("events", project.contracts)
    plan = plan_landing(contract, project.data, [folder], namespace=ns, run_date=run_date)
    plan.batch_id = new_batch_id(NOW - dt.timedelta(days=days_ago))
    plan.batch_dir = plan.batch_dir.with_name(f"batch_id={plan.batch_id}")
    return land(contract, plan)


def stage(project: Paths, plan: LandPlan) -> Path:
    contract = contract_for("events", project.contracts)
    (batch,) = [
        b for b in landed_batches(project, contract, plan.namespace) if b.batch_id == plan.batch_id
    ]
    state, _ = stage_batch(contract, project, batch)
    assert state.state == "staged"
    return project.staged_batch("events", plan.run_date, plan.batch_id)


def planned(project: Paths, settings: Settings, **options: bool) -> set[tuple[str, Path]]:
    contract = contract_for("events", project.contracts)
    return {(a.kind, a.path) for a in plan_clean(project, contract, settings, now=NOW, **options)}


def clean(project: Paths, settings: Settings) -> None:
    contract = contract_for("events", project.contracts)
    apply(project, plan_clean(project, contract, settings, now=NOW), archive=False)


def listing(root: Path) -> dict[str, int]:
    """Every file and folder under root with its modification time."""
    return {
        str(path.relative_to(root)): path.stat().st_mtime_ns for path in [root, *root.rglob("*")]
    }


def test_keeps_the_newest_k_per_namespace_even_when_all_are_old(
    project: Paths, tmp_path: Path
) -> None:
    crm = [land_at(project, tmp_path, days, ns="crm") for days in (500, 400, 300, 200, 100)]
    web = [land_at(project, tmp_path, days, ns="web") for days in (600, 550)]
    keep_three = Settings(compress_after_days=NEVER, keep_newest=3)
    assert planned(project, keep_three) == {
        (REMOVE_LANDING, crm[0].batch_dir),
        (REMOVE_LANDING, crm[1].batch_dir),
    }
    # with nothing kept by count, only the `latest` batch of each run date stays
    assert planned(project, ALL_OLD) == {
        *((REMOVE_LANDING, plan.batch_dir) for plan in crm[:4]),
        (REMOVE_LANDING, web[0].batch_dir),
    }


def test_never_removes_latest_nor_a_batch_staged_data_comes_from(
    project: Paths, tmp_path: Path
) -> None:
    staged_from, doomed, latest = (land_at(project, tmp_path, days) for days in (300, 200, 100))
    staged = stage(project, staged_from)
    orphan = land_at(project, tmp_path, 250, run_date="20240102")
    orphan_staged = stage(project, orphan)
    land_at(project, tmp_path, 240, run_date="20240102")  # now the latest of 20240102
    orphan_rejects = project.rejects_batch("events", "20240102", orphan.batch_id)
    orphan_rejects.mkdir(parents=True, exist_ok=True)
    raw = project.staged_raw("events")
    raw.mkdir(parents=True)
    # the landing batch of `orphan` goes first, so its staged folder may go on the next run
    assert planned(project, ALL_OLD) == {(REMOVE_LANDING, doomed.batch_dir)}
    clean(project, ALL_OLD)
    assert not doomed.batch_dir.exists()
    assert staged_from.batch_dir.is_dir() and latest.batch_dir.is_dir() and staged.is_dir()
    assert orphan.batch_dir.is_dir()  # its staged data still comes from it

    shutil.rmtree(orphan.batch_dir)
    assert planned(project, ALL_OLD) == {(REMOVE_STAGED, orphan_staged)}
    assert planned(project, ALL_OLD, landing_only=True) == set()
    clean(project, ALL_OLD)
    assert not orphan_staged.exists() and not orphan_rejects.exists()
    assert staged.is_dir() and raw.is_dir()  # still landed; the raw batch of `ciq load`
    assert validate(project.data) == []


def test_compression_keeps_validate_green_and_staging_unchanged(
    project: Paths, tmp_path: Path, ciq
) -> None:
    plan = land_at(project, tmp_path, 10)
    fresh = land_at(project, tmp_path, 3, run_date="20240102")
    assert ciq("stage", "events", "--batch", "all")[0] == 0
    original = (plan.batch_dir / "parts" / "part10.csv").read_bytes()
    settings = Settings(compress_after_days=7)
    assert planned(project, settings) == {(COMPRESS, plan.batch_dir)}
    clean(project, settings)

    assert ciq("validate", "events")[:2] == (0, "landing zone: all valid\n")
    (part,) = json.loads((plan.batch_dir / "manifest.json").read_text())["parts"]
    assert part["name"] == "part10.csv.gz" and part["compression"] == "gzip"
    assert part["gzipped_from"]["name"] == "part10.csv"
    assert gzip.decompress((plan.batch_dir / "parts" / "part10.csv.gz").read_bytes()) == original
    assert list((plan.batch_dir / "parts").iterdir()) == [
        plan.batch_dir / "parts" / "part10.csv.gz"
    ]
    assert (fresh.batch_dir / "parts" / "part3.csv").exists()  # younger than 7 days
    code, out, _ = ciq("stage", "events", "--batch", "all")
    assert code == 0 and out.count("unchanged, skipped") == 2  # same bytes, not restaged
    code, out, _ = ciq("stage", "events", "--batch", "all", "--force")
    assert code == 0 and out.count("staged (staged); 1 rows, 0 rejected") == 2  # reads the .gz
    again = plan_landing(
        contract_for("events", project.contracts),
        project.data,
        [tmp_path / "drop-default-20240101-10"],
        run_date="20240103",
    )
    assert again.parts == [] and again.already_landed  # still recognised as landed
    assert planned(project, settings) == set()  # nothing left to compress


def test_dry_run_changes_nothing_and_lists_what_hard_does(
    project: Paths, tmp_path: Path, ciq, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIQ_KEEP_NEWEST", "1")
    # batch ids from before 2026 make every batch years old against the real clock
    for days in (400, 300, 200):
        land_at(project, tmp_path, days)
    land_at(project, tmp_path, 100, run_date="20240102")
    before = listing(project.data)
    code, dry, _ = ciq("clean", "events")
    assert code == 0 and listing(project.data) == before
    assert "keep_newest=1" in dry
    assert dry.count("  remove landing batch") == 2 and dry.count("  compress") == 2

    code, hard, _ = ciq("clean", "events", "--hard")
    assert code == 0
    assert dry.splitlines()[2:] == hard.splitlines()[2:]  # the same lines, in the same order
    removed = [line.split()[-1] for line in dry.splitlines() if "remove landing batch" in line]
    assert all(not (project.root / path).exists() for path in removed)
    assert validate(project.data) == []
    code, out, _ = ciq("clean", "events", "--hard")
    assert out.splitlines()[1] == "nothing to clean"


def test_archive_moves_batches_to_data_archive(
    project: Paths, tmp_path: Path, ciq, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIQ_KEEP_NEWEST", "0")  # the `latest` batch is kept all the same
    old, _ = land_at(project, tmp_path, 400), land_at(project, tmp_path, 300)
    manifest = (old.batch_dir / "manifest.json").read_text()
    gone = new_batch_id(NOW - dt.timedelta(days=500))  # staged, its landing batch deleted
    for folder in (
        project.staged_batch("events", "20231231", gone),
        project.rejects_batch("events", "20231231", gone),
    ):
        folder.mkdir(parents=True)
        (folder / "x.parquet").write_bytes(b"PAR1")
    code, out, _ = ciq("clean", "events", "--archive")
    assert code == 0 and "moved to data/archive/" in out
    archived = project.data / "archive" / old.batch_dir.relative_to(project.data)
    assert not old.batch_dir.exists()
    assert (archived / "manifest.json").read_text() == manifest
    for kind in ("staged", "rejects"):
        folder = project.data / kind / "events" / "run_date=20231231" / f"batch_id={gone}"
        assert not folder.exists()
        assert (project.data / "archive" / folder.relative_to(project.data) / "x.parquet").exists()
    assert validate(project.data) == []


def test_settings_come_from_the_contract_then_the_environment_then_defaults(
    tmp_path: Path,
) -> None:
    assert settings_for(Retention(), {}) == Settings(30, 7, 90, 3)
    environ = {"CIQ_KEEP_NEWEST": "5", "CIQ_STAGED_RETENTION_DAYS": "10"}
    assert settings_for(Retention(keep_newest=2), environ) == Settings(10, 7, 90, 2)
    with pytest.raises(RetentionError, match="CIQ_COMPRESS_AFTER_DAYS='-1' must be"):
        settings_for(Retention(), {"CIQ_COMPRESS_AFTER_DAYS": "-1"})

    events = (Path(__file__).resolve().parents[1] / "contracts" / "events.yml").read_text()
    path = tmp_path / "events.yml"
    path.write_text(events + "retention:\n  keep_newest: 5\n  delete_after_days: 0\n")
    assert load_contract(path).retention == Retention(delete_after_days=0, keep_newest=5)
    path.write_text(events + "retention:\n  keep_last: 5\n")
    with pytest.raises(ContractError, match="unknown key 'keep_last' in retention"):
        load_contract(path)
    path.write_text(events + "retention:\n  staged_days: -3\n")
    with pytest.raises(ContractError, match=r"retention\.staged_days must be a whole number >= 0"):
        load_contract(path)
