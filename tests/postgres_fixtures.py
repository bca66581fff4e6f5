"""PostgreSQL for the tests: a real server and a fresh database per test.

The server is the one named by CIQ_POSTGRES_DSN or the PG* variables when they are set (it must
allow CREATE DATABASE), else the bundled one (`pgserver`), started once per session in a
temporary folder and deleted at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from loaders.postgres import DSN_VAR, SERVER_VARS


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Connection string of a server the tests may create databases on."""
    if os.environ.get(DSN_VAR) or any(os.environ.get(name) for name in SERVER_VARS):
        yield os.environ.get(DSN_VAR, "")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
        import pgserver

    folder = Path(tempfile.mkdtemp(prefix="ciq-pg-"))
    server = pgserver.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new empty database; CIQ_POSTGRES_DSN points ciq at it during the test."""
    name = f"ciq_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    dsn = make_conninfo(postgres_server, dbname=name)
    monkeypatch.setenv(DSN_VAR, dsn)
    try:
        yield dsn
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')
