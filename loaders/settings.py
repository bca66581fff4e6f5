"""Where things live. Every path derives from the project root (`CIQ_HOME`, default: the cwd)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATASET = "events"
# `ciq load` stages the raw folder as this batch, older than any landed batch.
RAW_RUN_DATE, RAW_BATCH = "00000000", "raw"


@dataclass(frozen=True)
class Paths:
    """The folders of one ciq project root."""

    root: Path

    @classmethod
    def from_env(cls) -> Paths:
        """The project root named by `CIQ_HOME`, or the current directory."""
        return cls(Path(os.environ.get("CIQ_HOME", ".")).resolve())

    @property
    def contracts(self) -> Path:
        return self.root / "contracts"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dbt_project(self) -> Path:
        return self.root / "dbt_project"

    @property
    def macros(self) -> Path:
        return self.root / "macros"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def warehouse(self) -> Path:
        return Path(os.environ.get("CIQ_WAREHOUSE", self.root / "warehouse" / "ciq.duckdb"))

    def contract_file(self, dataset: str) -> Path:
        return self.contracts / f"{dataset}.yml"

    def samples(self, dataset: str) -> Path:
        return self.data / "samples" / dataset

    def raw(self, dataset: str) -> Path:
        return self.data / "raw" / dataset

    def staged(self, dataset: str) -> Path:
        return self.data / "staged" / dataset

    def rejects(self, dataset: str) -> Path:
        return self.data / "rejects" / dataset

    def staged_batch(self, dataset: str, run_date: str, batch_id: str) -> Path:
        """Where one batch's staged Parquet lives: staged/<dataset>/run_date=<d>/batch_id=<id>/."""
        return self.staged(dataset) / f"run_date={run_date}" / f"batch_id={batch_id}"

    def rejects_batch(self, dataset: str, run_date: str, batch_id: str) -> Path:
        return self.rejects(dataset) / f"run_date={run_date}" / f"batch_id={batch_id}"

    def staged_raw(self, dataset: str) -> Path:
        """The batch `ciq load` stages data/raw/<dataset>/ into."""
        return self.staged_batch(dataset, RAW_RUN_DATE, RAW_BATCH)

    def rejects_raw(self, dataset: str) -> Path:
        return self.rejects_batch(dataset, RAW_RUN_DATE, RAW_BATCH)

    def artifacts(self, dataset: str) -> Path:
        """Where `ciq report` writes the report and pictures of a dataset (git-ignored)."""
        return self.root / "artifacts" / dataset
