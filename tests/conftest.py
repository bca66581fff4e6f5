"""Shared fixtures: a throw-away project root with the real dbt project, macros and contracts."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from loaders.cli import main
from loaders.settings import Paths
from tests.postgres_fixtures import postgres, postgres_server  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]
GENERATED = {
    "_loader__sources.yml",
    "_staging__models.yml",
    "_curated__models.yml",
    "_causal__models.yml",
    "_ciq_publish__sources.yml",
    "_publish__models.yml",
}


def _ignore(folder: str, names: list[str]) -> set[str]:
    skipped = {"target", "logs", "generated", "__pycache__", *GENERATED}
    return {name for name in names if name in skipped}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A fresh project root (contracts, dbt project, macros, profiles) as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("dbt_project", "macros", "contracts"):
        shutil.copytree(REPO / name, root / name, ignore=_ignore)
    shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
    shutil.copytree(REPO / "data" / "samples", root / "data" / "samples")
    monkeypatch.setenv("CIQ_HOME", str(root))
    monkeypatch.delenv("CIQ_WAREHOUSE", raising=False)
    monkeypatch.delenv("CIQ_TARGET", raising=False)
    monkeypatch.chdir(root)
    return Paths(root)


@pytest.fixture
def ciq(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run the `ciq` command line in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def write_csv(path: Path, header: str, *rows: str) -> Path:
    """Write a small CSV file (header + rows, newline-terminated)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path
