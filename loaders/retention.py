"""`ciq clean`: compress old landing parts, remove old landing and staged batches, safely.

A batch's age is counted from the time in its batch id (when it was landed), not from its run
date, which may be back-dated. Never removed: the newest `keep_newest` batches of a
namespace/table (and of a dataset's staged batches), the `latest` batch of each run date, a
landing batch whose staged folder exists, a staged batch whose landing batch still exists, the
raw batch of `ciq load`, and anything whose batch id carries no time.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from loaders import atomic
from loaders.contract import Contract, Retention
from loaders.errors import CiqError
from loaders.landing import LATEST, MANIFEST, sha256_of
from loaders.settings import RAW_BATCH, Paths
from loaders.sniff import TEXT_FORMATS
from loaders.staging import swap_dir

ENVIRONMENT = {
    "staged_days": "CIQ_STAGED_RETENTION_DAYS",
    "compress_after_days": "CIQ_COMPRESS_AFTER_DAYS",
    "delete_after_days": "CIQ_LANDING_RETENTION_DAYS",
    "keep_newest": "CIQ_KEEP_NEWEST",
}
COMPRESS, REMOVE_LANDING, REMOVE_STAGED = "compress", "remove landing batch", "remove staged batch"


class RetentionError(CiqError):
    """A retention setting is not a whole number >= 0."""


@dataclass(frozen=True)
class Settings:
    """The retention settings in force: contract, else environment variable, else default."""

    staged_days: int = 30
    compress_after_days: int = 7
    delete_after_days: int = 90
    keep_newest: int = 3


def settings_for(retention: Retention, environ: Mapping[str, str] = os.environ) -> Settings:
    """Each setting from the contract's `retention:`, else its environment variable."""
    values: dict[str, int] = {}
    for name, variable in ENVIRONMENT.items():
        value = getattr(retention, name)
        if value is None and variable in environ:
            text = environ[variable].strip()
            if not text.isdigit():
                raise RetentionError(f"{variable}={text!r} must be a whole number >= 0")
            value = int(text)
        if value is not None:
            values[name] = value
    return Settings(**values)


@dataclass(frozen=True)
class Action:
    """One change `ciq clean` makes: compress a batch's parts, or remove a batch."""

    kind: str
    path: Path
    parts: tuple[str, ...] = ()
    extra: tuple[Path, ...] = ()  # removed with it (a staged batch's rejects)

    def line(self, root: Path) -> str:
        where = self.path.relative_to(root)
        return f"{self.kind} {where}" + (f": {', '.join(self.parts)} -> .gz" if self.parts else "")


def batch_time(batch_id: str) -> dt.datetime | None:
    """The UTC time in a batch id like 20260101T120000123456Z-1a2b3c; None if it has none."""
    try:
        return dt.datetime.strptime(batch_id[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _older(batch_id: str, days: int, now: dt.datetime) -> bool:
    moment = batch_time(batch_id)
    return moment is not None and now - moment > dt.timedelta(days=days)


def _key(folder: Path) -> tuple[str, str]:
    """(run date, batch id) of a run_date=<d>/batch_id=<id> folder."""
    return folder.parent.name.removeprefix("run_date="), folder.name.removeprefix("batch_id=")


def _newest(folders: list[Path], keep: int) -> set[Path]:
    ordered = sorted(folders, key=lambda folder: _key(folder)[1])
    return set(ordered[max(len(ordered) - keep, 0) :])


def plan_clean(
    paths: Paths,
    contract: Contract,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    landing_only: bool = False,
) -> list[Action]:
    """Every change the settings call for, in order; touches nothing."""
    now = now or dt.datetime.now(dt.UTC)
    actions: list[Action] = []
    tables = sorted(paths.data.glob(f"landing/namespace=*/table={contract.dataset}"))
    for table in tables:
        actions += _plan_table(paths, contract.dataset, table, settings, now)
    if not landing_only:
        actions += _plan_staged(paths, contract.dataset, settings, now)
    return actions


def _plan_table(
    paths: Paths, dataset: str, table: Path, settings: Settings, now: dt.datetime
) -> list[Action]:
    batches = [manifest.parent for manifest in table.glob(f"run_date=*/batch_id=*/{MANIFEST}")]
    latest = {
        run / LATEST: (run / LATEST).read_text().strip()
        for run in table.glob("run_date=*")
        if (run / LATEST).exists()
    }
    kept = _newest(batches, settings.keep_newest)
    actions = []
    for batch in sorted(batches, key=_key):
        run_date, batch_id = _key(batch)
        protected = (
            batch in kept
            or latest.get(batch.parent / LATEST) == batch_id
            or paths.staged_batch(dataset, run_date, batch_id).is_dir()
        )
        if not protected and _older(batch_id, settings.delete_after_days, now):
            actions.append(Action(REMOVE_LANDING, batch))
        elif _older(batch_id, settings.compress_after_days, now):
            parts = _compressible(batch)
            if parts:
                actions.append(Action(COMPRESS, batch, parts))
    return actions


def _compressible(batch: Path) -> tuple[str, ...]:
    """Parts of a batch that are plain text (csv, tsv, jsonl) and have no .gz twin."""
    manifest = json.loads((batch / MANIFEST).read_text())
    names = {part["name"] for part in manifest["parts"]}
    return tuple(
        part["name"]
        for part in manifest["parts"]
        if part["format"] in TEXT_FORMATS
        and part["compression"] is None
        and f"{part['name']}.gz" not in names
    )


def _plan_staged(paths: Paths, dataset: str, settings: Settings, now: dt.datetime) -> list[Action]:
    batches = [
        folder
        for folder in paths.staged(dataset).glob("run_date=*/batch_id=*")
        if folder.is_dir() and _key(folder)[1] != RAW_BATCH
    ]
    kept = _newest(batches, settings.keep_newest)
    actions = []
    for folder in sorted(batches, key=_key):
        run_date, batch_id = _key(folder)
        landed = any(
            paths.data.glob(f"landing/*/table={dataset}/{folder.parent.name}/{folder.name}")
        )
        if folder not in kept and not landed and _older(batch_id, settings.staged_days, now):
            rejects = paths.rejects_batch(dataset, run_date, batch_id)
            extra = (rejects,) if rejects.is_dir() else ()
            actions.append(Action(REMOVE_STAGED, folder, extra=extra))
    return actions


def apply(paths: Paths, actions: list[Action], *, archive: bool) -> None:
    """Make the planned changes: compress in place, and delete or archive removed batches."""
    for action in actions:
        if action.kind == COMPRESS:
            compress_batch(action.path, action.parts)
            continue
        for folder in (action.path, *action.extra):
            if archive:
                target = archive_path(paths, folder)
                if target.exists():
                    raise RetentionError(f"{target}: already archived; remove it or use --hard")
                target.parent.mkdir(parents=True, exist_ok=True)
                folder.rename(target)
            else:
                doomed = folder.with_name(f".{folder.name}.delete-{uuid.uuid4().hex[:8]}")
                folder.rename(doomed)  # gone from view at once, even if the delete is cut short
                shutil.rmtree(doomed)


def archive_path(paths: Paths, folder: Path) -> Path:
    """Where --archive moves a folder of data/: the same path under data/archive/."""
    return paths.data / "archive" / folder.relative_to(paths.data)


def compress_batch(batch: Path, names: tuple[str, ...]) -> None:
    """Gzip the named parts and update the manifest in a copy, then swap the copy into place.

    Each part's entry gets the new name, SHA-256 and size; `gzipped_from` keeps the landed
    name, SHA-256 and size, so the same bytes are still recognised as already landed.
    """
    work = batch.with_name(f".{batch.name}.gzip-{uuid.uuid4().hex[:8]}")
    (work / "parts").mkdir(parents=True)
    try:
        manifest = json.loads((batch / MANIFEST).read_text())
        for part in manifest["parts"]:
            source = batch / "parts" / part["name"]
            if part["name"] not in names:
                os.link(source, work / "parts" / part["name"])
                continue
            target = work / "parts" / f"{part['name']}.gz"
            with source.open("rb") as raw, gzip.GzipFile(target, "wb", mtime=0) as packed:
                shutil.copyfileobj(raw, packed)
            original = {key: part[key] for key in ("name", "sha256", "bytes")}
            part.update(
                name=target.name,
                sha256=sha256_of(target),
                bytes=target.stat().st_size,
                compression="gzip",
                gzipped_from=original,
            )
        atomic.write_text(work / MANIFEST, json.dumps(manifest, indent=2))
        swap_dir(work, batch)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(paths: Paths, actions: list[Action], *, mode: str) -> str:
    """What a dry run would change, or what was changed, one line per action."""
    if not actions:
        return "nothing to clean"
    if mode == "dry-run":
        head = f"dry run: {len(actions)} change(s); --archive or --hard makes them:"
    elif mode == "archive":
        head = f"{len(actions)} change(s) made (removed batches moved to data/archive/):"
    else:
        head = f"{len(actions)} change(s) made:"
    return "\n".join([head, *(f"  {action.line(paths.root)}" for action in actions)])


def settings_line(settings: Settings) -> str:
    return "retention: " + ", ".join(f"{name}={value}" for name, value in asdict(settings).items())
