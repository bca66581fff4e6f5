"""Names and places of ciq's PostgreSQL side (publish, scale-out build), in one place."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from loaders.errors import PublishError
from loaders.settings import Paths

LOG_TABLE = "ciq_published_tables"  # one row per published table, in the publish schema
SOURCE = "ciq_publish"  # the dbt source over the published tables
SCHEMA_VAR = "ciq_publish_schema"  # dbt var naming the publish schema (default: the dataset)
SCHEMA_ENV = "CIQ_PUBLISH_SCHEMA"  # environment variable for the same
LOADER_TABLE = "loader_records"  # the staged rows on PostgreSQL: source('loader', 'records')
DEFAULT_TARGET = "postgres"  # the profiles.yml output ciq publish builds the publish layer with
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def publish_schema(
    dataset: str, schema: str | None, environ: Mapping[str, str] | None = None
) -> str:
    """The PostgreSQL schema to publish to: --schema, else CIQ_PUBLISH_SCHEMA, else the dataset."""
    env = os.environ if environ is None else environ
    name = schema or env.get(SCHEMA_ENV) or dataset
    if not IDENTIFIER.match(name):
        raise PublishError(
            f"publish schema {name!r} must be a letter or '_' followed by up to 62 letters, "
            "digits or '_'"
        )
    return name


def manifest_path(paths: Paths, dataset: str) -> Path:
    """The publish manifest (JSON) of a dataset: warehouse/publish/<dataset>.json."""
    return paths.warehouse.parent / "publish" / f"{dataset}.json"
