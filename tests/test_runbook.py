"""The daily runbook end to end with real dbt: land -> validate -> stage -> build, last wins."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from loaders.settings import Paths

HEADER = "customer_id,event_time,treated,y,age,gender,rfm_score,prior_7d_spend,web_session_cnt"
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "events"


def drop(tmp_path: Path, name: str, rows: dict[int, float]) -> Path:
    """A file of one row per customer id with outcome y."""
    folder = tmp_path / name
    folder.mkdir()
    lines = [f"{i},2024-01-01 10:00:00,{i % 2},{y},40,M,100,1,3" for i, y in rows.items()]
    (folder / f"{name}.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    return folder


def sample_drop(tmp_path: Path) -> Path:
    """A drop folder holding a copy of the bundled sample."""
    folder = tmp_path / "sample"
    folder.mkdir()
    for file in SAMPLES.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    return folder


def ready(paths: Paths) -> pd.DataFrame:
    with duckdb.connect(str(paths.warehouse)) as con:
        return con.execute(
            "select customer_id, y from events.cur_records "
            "where event_time = timestamp '2024-01-01 10:00:00' and customer_id <= 3 order by 1"
        ).fetchdf()


def test_three_batches_last_wins_and_the_gate_blocks_a_bad_batch(
    project: Paths, tmp_path: Path, ciq
) -> None:
    # the sample gives the build enough rows for the propensity model; ids 1..3 overlap it
    sample = sample_drop(tmp_path)
    assert ciq("land", "events", str(sample), "--run-date", "20240101")[0] == 0
    assert (
        ciq(
            "land",
            "events",
            str(drop(tmp_path, "monday", {1: 1.0, 2: 1.0, 3: 1.0})),
            "--run-date",
            "20240102",
        )[0]
        == 0
    )
    assert (
        ciq(
            "land",
            "events",
            str(drop(tmp_path, "tuesday", {2: 2.0, 3: 2.0})),
            "--run-date",
            "20240103",
        )[0]
        == 0
    )
    assert (
        ciq("land", "events", str(drop(tmp_path, "tuesday2", {3: 3.0})), "--run-date", "20240103")[
            0
        ]
        == 0
    )
    assert ciq("validate", "events")[0] == 0
    code, out, _ = ciq("stage", "events", "--batch", "all")
    assert code == 0 and out.count(": staged (staged)") == 4
    code, out, _ = ciq("stage", "events", "--batch", "all")
    assert code == 0 and out.count("unchanged, skipped") == 4  # running it twice changes nothing
    code, out, err = ciq("build", "events")
    assert code == 0, err
    curated = ready(project).set_index("customer_id")["y"]
    # last by (run_date, batch_id, file, row): tuesday2 > tuesday > monday > the sample
    assert (curated.loc[1], curated.loc[2], curated.loc[3]) == (1.0, 2.0, 3.0)
    code, out, _ = ciq("status", "events")
    assert out.count("✓") == 4

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bad.csv").write_text(HEADER + ",coupon\n9,2024-01-01 10:00:00,1,1,1,M,1,1,1,5\n")
    ciq("land", "events", str(bad), "--run-date", "20240104")
    code, out, _ = ciq("stage", "events", "--run-date", "20240104")
    assert code == 1 and "failed_schema_mismatch" in out
    code, _, err = ciq("build", "events")
    assert code == 1
    assert "schema gate: 1 staged batch(es) of events disagree with events.yml" in err
    assert "run_date=20240104" in err and "'coupon' are not in events.yml" in err


def curated(paths: Paths) -> pd.DataFrame:
    with duckdb.connect(str(paths.warehouse)) as con:
        frame = con.execute("select * from events.cur_records").fetchdf()
    return frame.sort_values(["customer_id", "event_time"]).reset_index(drop=True)


def test_incremental_merges_equal_a_full_refresh_even_with_a_backfill(
    project: Paths, tmp_path: Path, ciq
) -> None:
    from loaders.dbt_build import dbt_args, run_dbt

    sample = sample_drop(tmp_path)
    steps = [
        (sample, "20240101"),
        (drop(tmp_path, "wednesday", {1: 5.0, 2: 5.0}), "20240110"),
        (drop(tmp_path, "backfill", {2: 7.0, 4: 7.0}), "20240105"),  # older run date, later
    ]
    for folder, run_date in steps:
        assert ciq("land", "events", str(folder), "--run-date", run_date)[0] == 0
        assert ciq("stage", "events", "--run-date", run_date)[0] == 0
        code, _, err = ciq("build", "events")
        assert code == 0, err
    target = project.dbt_project / "target"
    model = Path("ciq") / "models" / "curated" / "cur_records.sql"
    assert "fresh as" in (target / "compiled" / model).read_text()  # the incremental path ran
    assert "delete from" in (target / "run" / model).read_text()  # ...as delete+insert
    incremental = curated(project)
    values = incremental[incremental["event_time"] == pd.Timestamp("2024-01-01 10:00:00")]
    by_id = values.set_index("customer_id")["y"]
    # the backfill (run date 20240105) loses to wednesday (20240110) for id 2, adds id 4
    assert (by_id.loc[1], by_id.loc[2], by_id.loc[4]) == (5.0, 5.0, 7.0)
    run = run_dbt(project, dbt_args(project, "build", "--full-refresh", "--select", "cur_records"))
    assert run.success
    pd.testing.assert_frame_equal(incremental, curated(project))


def test_removed_staged_data_leaves_curated_through_an_automatic_full_refresh(
    project: Paths, tmp_path: Path, ciq
) -> None:
    assert ciq("init", "events")[0] == 0
    extra = drop(tmp_path, "extra", {900001: 1.0})
    (project.raw("events") / "extra.csv").write_bytes((extra / "extra.csv").read_bytes())
    assert ciq("load", "events", "--quiet")[0] == 0
    assert ciq("build", "events")[0] == 0
    assert 900001 in set(curated(project)["customer_id"])
    (project.raw("events") / "extra.csv").unlink()
    assert ciq("load", "events", "--quiet")[0] == 0
    assert ciq("build", "events")[0] == 0
    assert 900001 not in set(curated(project)["customer_id"])


def test_new_columns_append_flow_through_or_are_ignored(
    project: Paths, tmp_path: Path, ciq
) -> None:
    contract = project.contract_file("events")
    base = contract.read_text()
    contract.write_text(base + "on_new_columns: append\n")
    sample = sample_drop(tmp_path)
    assert ciq("land", "events", str(sample), "--run-date", "20240101")[0] == 0
    assert ciq("stage", "events")[0] == 0
    assert ciq("build", "events")[0] == 0
    coupon = tmp_path / "coupon"
    coupon.mkdir()
    row = "1,2024-01-01 10:00:00,1,9.5,40,M,100,1,3,SPRING"
    (coupon / "coupon.csv").write_text(f"{HEADER},coupon_code\n{row}\n")
    assert ciq("land", "events", str(coupon), "--run-date", "20240102")[0] == 0
    assert ciq("stage", "events", "--run-date", "20240102")[0] == 0
    code, out, _ = ciq("status", "events")
    assert "new column coupon_code (appended)" in out and "✗" not in out
    code, _, err = ciq("build", "events")
    assert code == 0, err
    with duckdb.connect(str(project.warehouse)) as con:
        codes = con.execute(
            "select coupon_code, count(*) from events.cur_records group by 1 order by 1"
        ).fetchall()
        ready_columns = [r[0] for r in con.execute("describe events.causal_ready").fetchall()]
    assert codes[0] == ("SPRING", 1)  # the incremental table gained the column
    assert "coupon_code" not in ready_columns  # only the contract's roles reach causal_ready

    contract.write_text(base + "on_new_columns: ignore\n")
    assert ciq("stage", "events", "--batch", "all")[0] == 0  # the contract changed: restaged
    code, out, _ = ciq("status", "events")
    assert "coupon_code" not in out


def test_every_step_logs_a_structured_line_with_batch_and_counts(
    project: Paths, tmp_path: Path, ciq
) -> None:
    import json

    folder = drop(tmp_path, "monday", {1: 1.0, 2: 1.0})
    ciq("land", "events", str(folder), "--run-date", "20240102")
    ciq("stage", "events")
    ciq("init", "events")
    ciq("load", "events", "--quiet")
    lines = [json.loads(x) for x in (project.root / "logs" / "ciq.log").read_text().splitlines()]
    by_command = {line["command"]: line for line in lines}
    assert by_command["land"]["parts"] == 1 and by_command["land"]["run_date"] == "20240102"
    batch = by_command["stage.batch"]
    assert (batch["batch"], batch["state"], batch["rows"]) == (
        by_command["land"]["batch"],
        "staged",
        2,
    )
    load = by_command["load"]
    assert load["rows_read"] == load["rows_staged"] + load["rows_rejected"] > 0
    assert all({"time", "command", "dataset", "outcome", "seconds"} <= set(x) for x in lines)
