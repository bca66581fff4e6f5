"""One built copy of the sample project per test session, shared by the report and browser tests.

Building the sample (load, dbt build with every diagnostics model, report, dbt docs) is the slow
part of those tests, and they only read what it leaves behind, so it is done once per session.
Tests that change a project (failing gates, other thresholds) build their own.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from loaders.cli import main
from loaders.dbt_build import run_dbt
from loaders.settings import Paths

REPO = Path(__file__).resolve().parents[1]
SKIPPED = {"target", "logs", "generated", "__pycache__", "artifacts"}
BUILD_LOG = "build_output.txt"


def copy_project(root: Path) -> Paths:
    """A fresh project root holding the repository's contracts, dbt project, macros and samples."""
    root.mkdir(parents=True)
    for name in ("dbt_project", "macros", "contracts"):
        shutil.copytree(
            REPO / name,
            root / name,
            ignore=lambda folder, names: {n for n in names if n in SKIPPED or "__models" in n},
        )
    shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
    shutil.copytree(REPO / "data" / "samples", root / "data" / "samples")
    return Paths(root)


def run_ciq(paths: Paths, *args: str) -> tuple[int, str, str]:
    """`ciq ARGS` in-process with the project root as CIQ_HOME and working directory;
    returns (exit code, what it printed, what it printed to stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIQ_HOME", str(paths.root))
        patch.delenv("CIQ_WAREHOUSE", raising=False)
        patch.delenv("CIQ_TARGET", raising=False)
        patch.chdir(paths.root)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def docs_generate(paths: Paths) -> None:
    """`dbt docs generate` for the project (writes target/index.html, manifest and catalog)."""
    args = ["docs", "generate", "--project-dir", str(paths.dbt_project)]
    outcome = run_dbt(paths, [*args, "--profiles-dir", str(paths.root)])
    assert getattr(outcome, "success", False), getattr(outcome, "exception", None)


def built_sample(factory: pytest.TempPathFactory) -> Paths:
    """The sample loaded and built with `ciq build events --report` (as `make all` does), then
    `dbt docs generate`; built once per session. What the build printed is kept in BUILD_LOG."""
    root = factory.getbasetemp() / "built_sample"
    paths = Paths(root)
    if (root / BUILD_LOG).exists():
        return paths
    copy_project(root)
    printed = []
    for args in (
        ("init", "events"),
        ("load", "events", "--quiet"),
        ("build", "events", "--report"),
    ):
        code, out, err = run_ciq(paths, *args)
        assert code == 0, err
        printed.append(out)
    docs_generate(paths)
    (root / BUILD_LOG).write_text("".join(printed))
    return paths
