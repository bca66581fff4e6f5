"""`ciq doctor`: check the machine and the project, and say what to fix.

Checks Python, the installed versions of dbt-core, dbt-duckdb, DuckDB and the report's
matplotlib against ciq's own requirements, that DuckDB runs, the free disk space of the project
root, the contracts, the warehouse file, PostgreSQL reachability (CIQ_POSTGRES_DSN, else the
libpq PG* variables, as `ciq publish` reads them: a socket connect, then a login with psycopg)
and, as an optional extra, Chromium.
Only FAIL findings make the exit code non-zero.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from loaders.errors import CiqError
from loaders.settings import Paths

OK, WARN, FAIL, INFO = "OK", "WARN", "FAIL", "INFO"
DISTRIBUTION = "ciq"
PACKAGES = ("dbt-core", "dbt-duckdb", "duckdb", "matplotlib")
FALLBACK_PYTHON = ">=3.11"
GIB = 1024**3
FAIL_FREE_BYTES = 1 * GIB
WARN_FREE_BYTES = 5 * GIB
CONNECT_TIMEOUT = 3
DSN_VAR = "CIQ_POSTGRES_DSN"
SETUP_FIX = "run `make setup` (or `pip install -e '.[dev]'` in the project's virtualenv)"


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: status, what was found, and what to do about it."""

    check: str
    status: str  # OK | WARN | FAIL | INFO
    detail: str
    fix: str = ""


def _requirements() -> dict[str, SpecifierSet]:
    """ciq's declared version ranges by package name (empty when ciq is not installed)."""
    try:
        declared = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return {}
    ranges = {}
    for text in declared:
        requirement = Requirement(text)
        if requirement.marker is None:
            ranges[requirement.name.lower()] = requirement.specifier
    return ranges


def check_python() -> Finding:
    try:
        wanted = SpecifierSet(metadata.metadata(DISTRIBUTION)["Requires-Python"] or "")
    except (metadata.PackageNotFoundError, KeyError):
        wanted = SpecifierSet(FALLBACK_PYTHON)
    version = platform.python_version()
    if version in wanted:
        return Finding("python", OK, f"{version} at {sys.executable} (ciq needs {wanted})")
    return Finding(
        "python",
        FAIL,
        f"{version} at {sys.executable}; ciq needs {wanted}",
        "install a newer Python and recreate .venv (`rm -rf .venv && make setup PYTHON=...`)",
    )


def check_package(name: str, ranges: Mapping[str, SpecifierSet]) -> Finding:
    wanted = ranges.get(name.lower(), SpecifierSet())
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return Finding(name, FAIL, "not installed", SETUP_FIX)
    if version not in wanted:
        return Finding(name, FAIL, f"{version} installed; ciq needs {wanted}", SETUP_FIX)
    needs = f" (ciq needs {wanted})" if str(wanted) else ""
    return Finding(name, OK, f"{version}{needs}")


def check_duckdb_runs() -> Finding:
    try:
        import duckdb

        with duckdb.connect() as con:
            row = con.execute("select 42").fetchone()
    except Exception as exc:  # any failure here means DuckDB cannot run on this machine
        return Finding("duckdb engine", FAIL, f"cannot run a query: {exc}", SETUP_FIX)
    if not row or row[0] != 42:
        return Finding("duckdb engine", FAIL, "a test query gave a wrong answer", SETUP_FIX)
    return Finding("duckdb engine", OK, "runs queries")


def check_disk(root: Path) -> Finding:
    free = shutil.disk_usage(root if root.exists() else root.parent).free
    detail = f"{free / GIB:.1f} GiB free at {root}"
    fix = "free some space (`make clean` removes staged data, the warehouse and dbt's target/)"
    if free < FAIL_FREE_BYTES:
        return Finding("disk space", FAIL, detail, fix)
    if free < WARN_FREE_BYTES:
        return Finding("disk space", WARN, detail + " (large loads need more)", fix)
    return Finding("disk space", OK, detail)


def check_contracts(paths: Paths) -> Finding:
    from loaders.contract import load_contract

    files = sorted(paths.contracts.glob("*.yml"))
    if not files:
        return Finding(
            "contracts",
            FAIL,
            f"no contracts in {paths.contracts}",
            "run ciq from the project root or set CIQ_HOME to it",
        )
    problems = []
    for path in files:
        try:
            load_contract(path)
        except CiqError as exc:
            problems.append(str(exc))
    if problems:
        return Finding("contracts", FAIL, "; ".join(problems), "fix the contract file named above")
    return Finding("contracts", OK, ", ".join(path.stem for path in files))


def check_warehouse(paths: Paths) -> Finding:
    import duckdb

    path = paths.warehouse
    if not path.exists():
        return Finding("warehouse", WARN, f"{path} does not exist yet", "run `make all`")
    try:
        with duckdb.connect(str(path)) as con:
            rows = con.execute(
                "select distinct table_schema from information_schema.tables "
                "where table_name = 'causal_ready' order by 1"
            ).fetchall()
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            return Finding(
                "warehouse",
                WARN,
                f"{path} is in use by another process",
                "wait for the running build (or close the program holding it)",
            )
        return Finding("warehouse", FAIL, f"{path}: {exc}", _REBUILD)
    except duckdb.Error as exc:
        return Finding("warehouse", FAIL, f"{path} cannot be read: {exc}", _REBUILD)
    datasets = ", ".join(row[0] for row in rows) or "none built yet"
    return Finding("warehouse", OK, f"{path} (datasets: {datasets})")


_REBUILD = "move the file away and rebuild it with `make all`"


def check_postgres(env: Mapping[str, str]) -> Finding:
    """The server ciq publishes to: CIQ_POSTGRES_DSN, else the libpq PG* variables."""
    dsn = env.get(DSN_VAR, "").strip()
    settings = dict(env)
    if dsn:
        try:
            from psycopg.conninfo import conninfo_to_dict

            parsed = conninfo_to_dict(dsn)
        except ImportError:
            parsed = {}
        except Exception as exc:  # psycopg raises ProgrammingError for a malformed string
            return Finding("postgresql", FAIL, f"{DSN_VAR} is not a connection string: {exc}", "")
        settings.update(
            {"PGHOST": str(parsed.get("host") or ""), "PGPORT": str(parsed.get("port") or "5432")}
        )
    host = settings.get("PGHOST", "").strip()
    if not host:
        return Finding(
            "postgresql",
            INFO,
            f"not configured ({DSN_VAR} and PGHOST are not set); needed only to publish",
            "",
        )
    try:
        port = int(settings.get("PGPORT") or "5432")
    except ValueError:
        return Finding("postgresql", FAIL, f"PGPORT={settings['PGPORT']!r} is not a port", _PG_FIX)
    where = f"{host}:{port}"
    if host.startswith("/"):
        socket_path = Path(host) / f".s.PGSQL.{port}"
        if not socket_path.exists():
            return Finding("postgresql", FAIL, f"no PostgreSQL socket at {socket_path}", _PG_FIX)
        where = str(socket_path)
    else:
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
                pass
        except OSError as exc:
            return Finding("postgresql", FAIL, f"nothing answers at {where} ({exc})", _PG_FIX)
    return _postgres_login(dsn, where)


_PG_FIX = (
    f"start PostgreSQL or correct {DSN_VAR} / PGHOST / PGPORT (unset them if you do not publish)"
)


def _postgres_login(dsn: str, where: str) -> Finding:
    try:
        import psycopg
    except ImportError:
        return Finding("postgresql", WARN, f"{where} answers; psycopg missing", SETUP_FIX)
    try:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT) as con:
            row = con.execute(
                "select current_setting('server_version'), current_database()"
            ).fetchone()
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        return Finding(
            "postgresql",
            FAIL,
            f"{where} answers but login failed: {reason}",
            f"check the user, password and database of {DSN_VAR} or PGUSER, PGPASSWORD "
            "(or ~/.pgpass) and PGDATABASE",
        )
    version, database = row if row else ("?", "?")
    return Finding("postgresql", OK, f"PostgreSQL {version} at {where}, database {database}")


def check_chromium() -> Finding:
    path = shutil.which("chromium")
    if path:
        return Finding("chromium", OK, f"{path} (for the docs browser test)")
    return Finding(
        "chromium",
        INFO,
        "not installed; needed only by the docs browser test",
        "apt-get install chromium",
    )


def diagnose(paths: Paths, env: Mapping[str, str] | None = None) -> list[Finding]:
    """Run every check; never raises for a failed check."""
    environment = os.environ if env is None else env
    ranges = _requirements()
    checks: list[Callable[[], Finding]] = [
        check_python,
        *(lambda name=name: check_package(name, ranges) for name in PACKAGES),
        check_duckdb_runs,
        lambda: check_disk(paths.root),
        lambda: check_contracts(paths),
        lambda: check_warehouse(paths),
        lambda: check_postgres(environment),
        check_chromium,
    ]
    return [check() for check in checks]


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(finding.status == FAIL for finding in findings) else 0


def render(findings: list[Finding], paths: Paths) -> str:
    width = max(len(finding.check) for finding in findings)
    lines = [f"ciq doctor: project root {paths.root}"]
    for finding in findings:
        lines.append(f"  {finding.status:<5} {finding.check:<{width}}  {finding.detail}")
        if finding.fix and finding.status in (FAIL, WARN):
            lines.append(f"  {'':<5} {'':<{width}}  fix: {finding.fix}")
    failed = sum(finding.status == FAIL for finding in findings)
    lines.append(f"{failed} problem(s) to fix." if failed else "Everything ciq needs is in order.")
    return "\n".join(lines)
