"""Which DuckDB tables `ciq publish` moves: the built models marked `meta.ciq_publish`.

dbt_project.yml marks the whole causal layer (causal_ready and every diagnostics model, present
or future), so nothing here lists table names. The list comes from the manifest of the last
DuckDB parse (dbt_project/target/manifest.json), which must be of the dataset being published.
"""

from __future__ import annotations

import json
from typing import Any

from loaders.errors import PublishError
from loaders.settings import Paths

PUBLISH_FLAG = "ciq_publish"
MATERIALIZED = frozenset({"table", "incremental"})


def published_models(paths: Paths, dataset: str) -> list[str]:
    """Names of the DuckDB tables to publish for `dataset`, in dependency order."""
    path = paths.dbt_project / "target" / "manifest.json"
    hint = f"run `ciq build {dataset}` (or `ciq publish {dataset}` without --no-build)"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise PublishError(f"{path}: no dbt manifest yet: {hint}") from None
    except (OSError, ValueError) as exc:
        raise PublishError(f"{path}: unreadable dbt manifest ({exc}): {hint}") from None
    adapter = manifest.get("metadata", {}).get("adapter_type")
    if adapter != "duckdb":
        raise PublishError(f"{path}: the last dbt parse was for {adapter}, not DuckDB: {hint}")
    nodes = {
        unique_id: node
        for unique_id, node in manifest.get("nodes", {}).items()
        if _is_published(node)
    }
    schemas = sorted({node["schema"] for node in nodes.values()})
    if schemas != [dataset]:
        found = ", ".join(schemas) or "none"
        raise PublishError(
            f"{path}: the last DuckDB parse built dataset(s) {found}, not {dataset}: {hint}"
        )
    return [nodes[unique_id]["name"] for unique_id in _dependency_order(nodes)]


def _is_published(node: dict[str, Any]) -> bool:
    config = node.get("config", {})
    return (
        node.get("resource_type") == "model"
        and config.get("enabled", True)
        and bool(config.get("meta", {}).get(PUBLISH_FLAG))
        and config.get("materialized") in MATERIALIZED
    )


def _dependency_order(nodes: dict[str, dict[str, Any]]) -> list[str]:
    """Upstream models first (ties by name), so logs and errors read in build order."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(unique_id: str) -> None:
        if unique_id in seen:
            return
        seen.add(unique_id)
        for parent in sorted(nodes[unique_id].get("depends_on", {}).get("nodes", [])):
            if parent in nodes:
                visit(parent)
        ordered.append(unique_id)

    for unique_id in sorted(nodes, key=lambda key: nodes[key]["name"]):
        visit(unique_id)
    return ordered
