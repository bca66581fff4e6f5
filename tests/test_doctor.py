"""`ciq doctor` on real installations, files and a real PostgreSQL server (pgserver)."""

from __future__ import annotations

import platform
import re
import shutil
import socket
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from loaders.doctor import check_disk
from loaders.settings import Paths


def line(output: str, check: str) -> str:
    """The output line of one check."""
    for text in output.splitlines():
        if re.match(rf"\s+(OK|WARN|FAIL|INFO)\s+{re.escape(check)}\s", text):
            return text
    raise AssertionError(f"no line for {check!r} in:\n{output}")


@pytest.fixture
def no_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CIQ_POSTGRES_DSN", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)


def test_doctor_on_a_fresh_project_reports_versions_and_what_is_missing(
    project: Paths, ciq, no_postgres
) -> None:
    code, out, _ = ciq("doctor")
    assert code == 0
    assert platform.python_version() in line(out, "python")
    for package in ("dbt-core", "dbt-duckdb", "duckdb", "matplotlib"):
        assert re.search(rf"OK\s+{package}\s+{re.escape(metadata.version(package))}\b", out)
    assert "OK" in line(out, "duckdb engine")
    assert "events" in line(out, "contracts")
    warehouse = line(out, "warehouse")
    assert warehouse.lstrip().startswith("WARN") and "does not exist yet" in warehouse
    assert "fix: run `make all`" in out
    assert "not configured" in line(out, "postgresql")
    assert out.rstrip().endswith("Everything ciq needs is in order.")


def test_doctor_fails_and_says_what_to_fix_for_a_broken_warehouse_and_contract(
    project: Paths, ciq, no_postgres
) -> None:
    project.warehouse.parent.mkdir(parents=True, exist_ok=True)
    project.warehouse.write_bytes(b"this is not a DuckDB database" * 100)
    (project.contracts / "broken.yml").write_text("id_col: id\nmystery_key: 1\n")
    code, out, _ = ciq("doctor")
    assert code == 1
    assert line(out, "warehouse").lstrip().startswith("FAIL")
    assert "fix: move the file away and rebuild it with `make all`" in out
    contracts = line(out, "contracts")
    assert contracts.lstrip().startswith("FAIL") and "broken.yml" in contracts
    assert out.rstrip().endswith("2 problem(s) to fix.")


def test_doctor_fails_when_the_configured_postgres_does_not_answer(
    project: Paths, ciq, monkeypatch: pytest.MonkeyPatch, no_postgres
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(port))
    code, out, _ = ciq("doctor")
    assert code == 1
    postgres = line(out, "postgresql")
    assert postgres.lstrip().startswith("FAIL")
    assert f"nothing answers at 127.0.0.1:{port}" in postgres
    assert "fix: start PostgreSQL or correct CIQ_POSTGRES_DSN / PGHOST / PGPORT" in out


@pytest.fixture(scope="module")
def postgres_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real PostgreSQL server from the pgserver package, listening on a Unix socket."""
    pgserver = pytest.importorskip("pgserver")
    folder = tmp_path_factory.mktemp("pg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield folder
    finally:
        server.cleanup()


def test_doctor_logs_in_to_a_real_postgres_and_reports_a_refused_login(
    project: Paths, ciq, monkeypatch: pytest.MonkeyPatch, postgres_dir: Path, no_postgres
) -> None:
    monkeypatch.setenv("PGHOST", str(postgres_dir))
    monkeypatch.setenv("PGPORT", "5432")
    monkeypatch.setenv("PGUSER", "postgres")
    monkeypatch.setenv("PGDATABASE", "postgres")
    code, out, _ = ciq("doctor")
    postgres = line(out, "postgresql")
    assert postgres.lstrip().startswith("OK"), out
    assert re.search(r"PostgreSQL \d+\.\d+ at .*\.s\.PGSQL\.5432, database postgres", postgres)
    assert code == 0
    monkeypatch.setenv("PGDATABASE", "no_such_database")
    code, out, _ = ciq("doctor")
    postgres = line(out, "postgresql")
    assert code == 1
    assert "answers but login failed" in postgres and "no_such_database" in postgres
    assert "fix: check the user, password and database" in out


def test_doctor_reads_the_connection_string_publish_uses(
    project: Paths, ciq, monkeypatch: pytest.MonkeyPatch, postgres_dir: Path, no_postgres
) -> None:
    monkeypatch.setenv("CIQ_POSTGRES_DSN", f"postgresql://postgres@/postgres?host={postgres_dir}")
    code, out, _ = ciq("doctor")
    assert code == 0, out
    assert re.search(r"OK\s+postgresql\s+PostgreSQL \d+\.\d+ at .*, database postgres", out)


def test_disk_check_reports_the_free_space_of_the_project_root(tmp_path: Path) -> None:
    finding = check_disk(tmp_path)
    free = shutil.disk_usage(tmp_path).free / 1024**3
    reported = re.fullmatch(rf"(\d+\.\d) GiB free at {re.escape(str(tmp_path))}", finding.detail)
    assert reported is not None
    assert float(reported.group(1)) == pytest.approx(free, abs=0.2)  # others write meanwhile
    assert finding.status == ("OK" if free >= 5 else "WARN" if free >= 1 else "FAIL")
