"""The bundled PostgreSQL server (the `pgserver` package): used when no server is configured.

Its data live in `warehouse/postgres/` next to the DuckDB file; it listens on a Unix socket in
that folder only (no TCP port), starts on first use in about a second, and keeps running until
`ciq postgres stop` so that psql, dashboards and dbt can read what was published.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import ModuleType

from loaders.errors import PublishError
from loaders.settings import Paths


def bundled_data_dir(paths: Paths) -> Path:
    """Where the bundled server keeps its data: `warehouse/postgres/` beside the DuckDB file."""
    return paths.warehouse.parent / "postgres"


def bundled_server_uri(paths: Paths) -> str:
    """The connection URI of the bundled server, starting it when it is not running."""
    data = bundled_data_dir(paths)
    data.parent.mkdir(parents=True, exist_ok=True)
    pgserver = _pgserver()
    try:
        server = pgserver.get_server(data, cleanup_mode=None)
    except Exception as exc:  # pgserver raises plain exceptions with the server log
        raise PublishError(
            f"{data}: the bundled PostgreSQL server did not start: {exc} (see {data / 'log'})"
        ) from None
    return str(server.get_uri())


def stop_bundled_server(paths: Paths) -> bool:
    """Stop the bundled server if it runs; returns whether it was running."""
    data = bundled_data_dir(paths)
    if not (data / "postmaster.pid").exists():
        return False
    pgserver = _pgserver()
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data)
    if info is None or not info.is_running():
        return False
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    pgserver.pg_ctl(["-w", "stop"], pgdata=data, user=user)
    return True


def _pgserver() -> ModuleType:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver
    except ImportError:
        raise PublishError(
            "no PostgreSQL server configured and the bundled one is not installed: set "
            "CIQ_POSTGRES_DSN or PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE, or install it with "
            "`pip install pgserver` (`make setup` does)"
        ) from None
    return pgserver
