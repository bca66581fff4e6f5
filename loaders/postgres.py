"""Which PostgreSQL server ciq talks to, and how to connect to it.

In order of precedence:
1. `CIQ_POSTGRES_DSN`: a libpq connection string or URI (`postgresql://user:pw@host:5432/db`);
2. the libpq variables `PGHOST` (or `PGHOSTADDR` / `PGSERVICE`), `PGPORT`, `PGUSER`,
   `PGPASSWORD`, `PGDATABASE`;
3. otherwise the bundled server (the `pgserver` package) with its data in
   `warehouse/postgres/`, started on first use and left running (`ciq postgres stop`).

The dbt profile's `postgres` output reads the PG* variables; `dbt_environment` sets them from the
connection ciq actually made, so dbt and ciq always talk to the same server and database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import conninfo as libpq

from loaders.errors import PublishError
from loaders.settings import Paths

DSN_VAR = "CIQ_POSTGRES_DSN"
SERVER_VARS = ("PGHOST", "PGHOSTADDR", "PGSERVICE")
CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class PostgresSettings:
    """How to reach PostgreSQL: a conninfo string (empty: libpq's PG* variables) and its origin."""

    conninfo: str
    origin: str

    def connect(self, **options: object) -> psycopg.Connection:
        """A new connection; a PublishError naming the server when it cannot be made."""
        try:
            return psycopg.connect(
                self.conninfo, connect_timeout=CONNECT_TIMEOUT_SECONDS, **options
            )
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split())
            raise PublishError(
                f"cannot connect to PostgreSQL ({self.origin}: {self.describe()}): {reason}. "
                f"Set {DSN_VAR} or PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE to a running server, "
                "or unset them to use the bundled one"
            ) from None

    def describe(self) -> str:
        """user@host:port/dbname as libpq would resolve it (never the password)."""
        params = {**_environment_params(), **_parse(self.conninfo)}
        host = params.get("host") or params.get("hostaddr") or "(default socket)"
        return (
            f"{params.get('user') or '(default user)'}@{host}:{params.get('port') or 5432}"
            f"/{params.get('dbname') or '(default database)'}"
        )


def resolve(paths: Paths, environ: Mapping[str, str] | None = None) -> PostgresSettings:
    """The server named by the environment, else the bundled one (started if needed)."""
    env = os.environ if environ is None else environ
    dsn = env.get(DSN_VAR, "").strip()
    if dsn:
        _parse(dsn, origin=DSN_VAR)
        return PostgresSettings(dsn, DSN_VAR)
    if any(env.get(name) for name in SERVER_VARS):
        return PostgresSettings("", "PG* environment")
    from loaders.postgres_server import bundled_data_dir, bundled_server_uri

    uri = bundled_server_uri(paths)
    return PostgresSettings(uri, f"bundled server in {bundled_data_dir(paths)}")


def connection_env(connection: psycopg.Connection) -> dict[str, str]:
    """The PG* variables that reach the same server and database as `connection`."""
    info = connection.info
    env = {
        "PGHOST": info.host,
        "PGPORT": str(info.port),
        "PGUSER": info.user,
        "PGPASSWORD": info.password or "",
        "PGDATABASE": info.dbname,
    }
    sslmode = info.get_parameters().get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = sslmode
    return env


@contextmanager
def dbt_environment(connection: psycopg.Connection) -> Iterator[dict[str, str]]:
    """Set the PG* variables the dbt profile reads for the duration of a dbt run."""
    env = connection_env(connection)
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _parse(conninfo: str, origin: str = "connection string") -> dict[str, str]:
    try:
        return {key: str(value) for key, value in libpq.conninfo_to_dict(conninfo).items()}
    except psycopg.ProgrammingError as exc:
        raise PublishError(f"{origin}: not a valid PostgreSQL connection string: {exc}") from None


def _environment_params() -> dict[str, str]:
    names = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user", "PGDATABASE": "dbname"}
    return {key: os.environ[name] for name, key in names.items() if os.environ.get(name)}
