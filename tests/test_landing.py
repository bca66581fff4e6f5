"""The landing zone: immutable batches with manifests, validated, idempotent, traversal-proof."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loaders import landing
from loaders.contract import contract_for
from loaders.errors import LoadError
from loaders.landing import land, plan_landing, validate
from loaders.runlog import logged_step
from loaders.settings import Paths

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "events"


def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    shutil.copytree(SAMPLES, folder)
    return folder


def land_drop(project: Paths, folder: Path, **options: object) -> landing.LandPlan:
    contract = contract_for("events", project.contracts)
    move = bool(options.pop("move", False))
    plan = plan_landing(contract, project.data, [folder], run_date="20240105", **options)
    return land(contract, plan, move=move)


def test_land_writes_parts_manifest_and_latest(project: Paths, tmp_path: Path) -> None:
    plan = land_drop(project, drop(tmp_path))
    batch = plan.batch_dir
    assert batch.parent.name == "run_date=20240105"
    assert batch.parent.parent == project.data / "landing" / "namespace=default" / "table=events"
    manifest = json.loads((batch / "manifest.json").read_text())
    assert [p["name"] for p in manifest["parts"]] == ["events_2024_01.csv", "events_2024_02.csv.gz"]
    assert manifest["parts"][1]["compression"] == "gzip"
    assert manifest["contract_sha256"] == contract_for("events", project.contracts).sha256
    assert (batch.parent / "latest").read_text().strip() == plan.batch_id
    assert validate(project.data) == []
    assert (tmp_path / "drop" / "events_2024_01.csv").exists()  # copied, not moved


def test_landing_the_same_bytes_twice_is_reported_not_duplicated(
    project: Paths, tmp_path: Path
) -> None:
    folder = drop(tmp_path)
    first = land_drop(project, folder)
    second = land_drop(project, folder)
    assert second.parts == []
    assert set(second.already_landed.values()) == {first.batch_id}
    assert "already in batch" in second.describe(done=True)
    assert len(list(first.batch_dir.parent.glob("batch_id=*"))) == 1
    forced = land_drop(project, folder, force=True)
    assert len(forced.parts) == 2
    assert (first.batch_dir.parent / "latest").read_text().strip() == forced.batch_id


def test_move_removes_the_sources_after_landing(project: Paths, tmp_path: Path) -> None:
    folder = drop(tmp_path)
    land_drop(project, folder, move=True)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"namespace": "../etc"}, "namespace '../etc' is not allowed"),
        ({"namespace": "a/b"}, "namespace 'a/b' is not allowed"),
        ({"run_date": "2024/01/05"}, "must be YYYYMMDD"),
        ({"run_date": "20241305"}, "not a calendar date"),
    ],
)
def test_traversal_and_odd_names_are_refused(
    project: Paths, tmp_path: Path, options: dict[str, str], message: str
) -> None:
    contract = contract_for("events", project.contracts)
    arguments = {"run_date": "20240105", **options}
    with pytest.raises(LoadError, match=message):
        plan_landing(contract, project.data, [drop(tmp_path)], **arguments)
    assert not (project.data / "landing").exists()


def test_dry_run_plan_touches_nothing_and_refuses_bad_content(
    project: Paths, tmp_path: Path
) -> None:
    contract = contract_for("events", project.contracts)
    plan = plan_landing(contract, project.data, [drop(tmp_path)], run_date="20240105")
    assert "would land 2 part(s)" in plan.describe(done=False)
    assert not (project.data / "landing").exists()
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    with pytest.raises(LoadError, match="the name says parquet but the content is text"):
        plan_landing(contract, project.data, [fake], run_date="20240105")


def test_validate_finds_tampering_missing_and_stray_files(project: Paths, tmp_path: Path) -> None:
    plan = land_drop(project, drop(tmp_path))
    parts = plan.batch_dir / "parts"
    with (parts / "events_2024_01.csv").open("a") as handle:
        handle.write("9,2024-01-01 00:00:00,1,1,1,M,1,1,1\n")
    (parts / "events_2024_02.csv.gz").unlink()
    (parts / "extra.csv").write_text("x\n")
    (plan.batch_dir.parent / ".batch_id=x.tmp").mkdir()
    problems = validate(project.data)
    assert any("events_2024_01.csv" in p and "bytes, manifest says" in p for p in problems)
    assert any(
        "events_2024_02.csv.gz: part listed in the manifest is missing" in p for p in problems
    )
    assert any("extra.csv: stray file" in p for p in problems)
    assert any(".batch_id=x.tmp: stray folder" in p for p in problems)


def test_an_interrupted_copy_leaves_no_batch(
    project: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    copy, folder = shutil.copyfile, drop(tmp_path)

    def failing_copy(source: str, target: Path, **options: bool) -> None:
        calls.append(source)
        if len(calls) == 2:
            raise OSError("disk full")
        copy(source, target, **options)

    monkeypatch.setattr(landing.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        land_drop(project, folder)
    run = project.data / "landing" / "namespace=default" / "table=events" / "run_date=20240105"
    assert list(run.iterdir()) == []
    assert validate(project.data) == []


def test_batch_ids_sort_by_time_and_are_unique() -> None:
    import datetime as dt

    early = landing.new_batch_id(dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC))
    late = landing.new_batch_id(dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.UTC))
    assert early < late
    assert len({landing.new_batch_id() for _ in range(200)}) == 200


def test_run_log_records_steps_and_failures(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "ciq.log"
    with logged_step(log, "land", "events") as step:
        step.note(batch="b1", parts=2)
    with pytest.raises(LoadError), logged_step(log, "stage", "events"):
        raise LoadError("bad file")
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert (first["command"], first["batch"], first["parts"], first["outcome"]) == (
        "land",
        "b1",
        2,
        "ok",
    )
    assert second["outcome"] == "error: bad file"
    assert second["seconds"] >= 0


def test_cli_land_validate_and_log(project: Paths, tmp_path: Path, ciq) -> None:
    folder = drop(tmp_path)
    code, out, _ = ciq("land", "events", str(folder), "--run-date", "20240105", "--dry-run")
    assert code == 0 and "would land 2 part(s)" in out
    assert not (project.data / "landing").exists()
    code, out, _ = ciq("land", "events", str(folder), "--run-date", "20240105")
    assert code == 0 and "landed 2 part(s)" in out
    code, out, _ = ciq("land", "events", str(folder), "--run-date", "20240105")
    assert code == 0 and "nothing new to land" in out
    assert ciq("validate")[1].strip() == "landing zone: all valid"
    part = next((project.data / "landing").rglob("events_2024_01.csv"))
    part.write_text("tampered\n")
    code, out, _ = ciq("validate", "events")
    assert code == 1 and "1 problem(s)" in out
    code, _, err = ciq("land", "events", str(folder), "--namespace", "../up")
    assert code == 2 and "namespace '../up' is not allowed" in err
    lines = [
        json.loads(line) for line in (project.root / "logs" / "ciq.log").read_text().splitlines()
    ]
    assert [line["command"] for line in lines] == [
        "land",
        "land",
        "land",
        "validate",
        "validate",
        "land",
    ]
    assert lines[-1]["outcome"].startswith("error: namespace '../up'")
    assert lines[1]["dataset"] == "events"
