"""`ciq land` and `ciq validate`: an immutable landing zone of batches with manifests.

Layout: data/landing/namespace=<ns>/table=<dataset>/run_date=<YYYYMMDD>/batch_id=<id>/parts/*
with `manifest.json` beside `parts/`, and a `latest` file per run date naming the newest batch.
A batch is written under a hidden temporary name and renamed into place only when every part
and the manifest are on disk, so an interrupted copy never looks like a complete batch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders import __version__, atomic
from loaders.contract import Contract
from loaders.errors import LoadError
from loaders.sniff import kind_of, verify

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RUN_DATE = re.compile(r"^\d{8}$")
MANIFEST = "manifest.json"
LATEST = "latest"
CHUNK = 1 << 20


def check_name(value: str, what: str) -> str:
    """A namespace or table name: letters, digits, '_' and '-' only (no '..', no '/')."""
    if not NAME.match(value):
        raise LoadError(
            f"{what} {value!r} is not allowed: use letters, digits, '_' and '-' (at most 64)"
        )
    return value


def check_run_date(value: str) -> str:
    """A run date as YYYYMMDD that is a real calendar date."""
    if not RUN_DATE.match(value):
        raise LoadError(f"run date {value!r} must be YYYYMMDD")
    try:
        dt.datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise LoadError(f"run date {value!r} is not a calendar date") from None
    return value


def new_batch_id(now: dt.datetime | None = None) -> str:
    """A unique batch id that sorts by creation time: 20260101T120000123456Z-1a2b3c."""
    moment = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{moment}-{uuid.uuid4().hex[:6]}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Part:
    """One file of a batch."""

    name: str
    source: str
    sha256: str
    bytes: int
    format: str
    compression: str | None


@dataclass
class LandPlan:
    """What `ciq land` will do (or did)."""

    dataset: str
    namespace: str
    run_date: str
    batch_id: str
    batch_dir: Path
    parts: list[Part] = field(default_factory=list)
    already_landed: dict[str, str] = field(default_factory=dict)  # source -> batch id

    def describe(self, *, done: bool) -> str:
        verb = "landed" if done else "would land"
        lines = []
        if self.parts:
            lines.append(f"{verb} {len(self.parts)} part(s) as batch {self.batch_id}:")
            lines += [f"  {p.source} -> parts/{p.name} ({p.bytes} bytes)" for p in self.parts]
            lines.append(f"  {self.batch_dir}")
        for source, batch in self.already_landed.items():
            lines.append(f"  skipped {source}: the same bytes are already in batch {batch}")
        if not self.parts:
            lines.append("nothing new to land")
        return "\n".join(lines)


def table_dir(root: Path, namespace: str, dataset: str) -> Path:
    return root / "landing" / f"namespace={namespace}" / f"table={dataset}"


def run_dir(root: Path, namespace: str, dataset: str, run_date: str) -> Path:
    return table_dir(root, namespace, dataset) / f"run_date={run_date}"


def _source_files(sources: list[Path]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted(
                p for p in source.iterdir() if p.is_file() and not p.name.startswith(".")
            )
        elif source.is_file():
            files.append(source)
        else:
            raise LoadError(f"{source}: no such file or folder")
    if not files:
        raise LoadError("nothing to land: the sources hold no files")
    names = [f.name for f in files]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise LoadError(f"two sources are both named {clashes[0]}: land them separately")
    return files


def manifests(
    root: Path, namespace: str | None = None, dataset: str | None = None
) -> Iterator[Path]:
    """Every batch manifest under the landing zone, optionally for one namespace/table."""
    landing = root / "landing"
    ns = f"namespace={namespace}" if namespace else "namespace=*"
    table = f"table={dataset}" if dataset else "table=*"
    yield from sorted(landing.glob(f"{ns}/{table}/run_date=*/batch_id=*/{MANIFEST}"))


def landed_digests(root: Path, namespace: str, dataset: str) -> dict[str, str]:
    """sha256 -> batch id of every part already landed for this namespace and table."""
    digests: dict[str, str] = {}
    for path in manifests(root, namespace, dataset):
        manifest = json.loads(path.read_text())
        for part in manifest["parts"]:
            digests.setdefault(landed_sha256(part), manifest["batch_id"])
    return digests


def landed_sha256(part: dict[str, Any]) -> str:
    """The SHA-256 of a part's bytes as landed (before `ciq clean` gzipped it, if it did)."""
    return str(part.get("gzipped_from", part)["sha256"])


def plan_landing(
    contract: Contract,
    data_root: Path,
    sources: list[Path],
    *,
    namespace: str = "default",
    run_date: str | None = None,
    force: bool = False,
) -> LandPlan:
    """Check every source (whitelist, content) and decide what lands; touches nothing."""
    namespace = check_name(namespace, "namespace")
    check_name(contract.dataset, "table")
    run_date = check_run_date(run_date or dt.date.today().strftime("%Y%m%d"))
    batch_id = new_batch_id()
    batch_dir = run_dir(data_root, namespace, contract.dataset, run_date) / f"batch_id={batch_id}"
    plan = LandPlan(contract.dataset, namespace, run_date, batch_id, batch_dir)
    seen = {} if force else landed_digests(data_root, namespace, contract.dataset)
    for source in _source_files(sources):
        kind = kind_of(source)
        verify(kind)
        digest = sha256_of(source)
        if digest in seen:
            plan.already_landed[str(source)] = seen[digest]
            continue
        seen[digest] = batch_id
        plan.parts.append(
            Part(
                source.name,
                str(source),
                digest,
                source.stat().st_size,
                kind.format,
                kind.compression,
            )
        )
    return plan


def land(contract: Contract, plan: LandPlan, *, move: bool = False) -> LandPlan:
    """Copy (or move) the planned parts into a new batch, write its manifest, point `latest`."""
    if not plan.parts:
        return plan
    temporary = plan.batch_dir.with_name(f".{plan.batch_dir.name}.tmp")
    (temporary / "parts").mkdir(parents=True)
    try:
        for part in plan.parts:
            target = temporary / "parts" / part.name
            shutil.copyfile(part.source, target)
            if sha256_of(target) != part.sha256:
                raise LoadError(f"{part.source}: changed while it was being landed; try again")
        manifest = {
            "batch_id": plan.batch_id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "namespace": plan.namespace,
            "table": plan.dataset,
            "run_date": plan.run_date,
            "sources": [part.source for part in plan.parts],
            "parts": [
                {k: v for k, v in part.__dict__.items() if k != "source"} for part in plan.parts
            ],
            "encoding": contract.encoding,
            "contract_sha256": contract.sha256,
            "ciq_version": __version__,
        }
        atomic.write_text(temporary / MANIFEST, json.dumps(manifest, indent=2))
        temporary.rename(plan.batch_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    atomic.write_text(plan.batch_dir.parent / LATEST, plan.batch_id + "\n")
    if move:
        for part in plan.parts:
            Path(part.source).unlink()
    return plan


def validate(data_root: Path, dataset: str | None = None) -> list[str]:
    """Every problem of the landing zone: manifests, parts, checksums, sizes, stray files."""
    problems: list[str] = []
    landing = data_root / "landing"
    tables = sorted(landing.glob(f"namespace=*/table={dataset or '*'}"))
    for table in tables:
        for run in sorted(table.glob("run_date=*")):
            problems += _validate_run(run)
    return problems


def _validate_run(run: Path) -> list[str]:
    problems: list[str] = []
    batches = {p.name.removeprefix("batch_id="): p for p in run.glob("batch_id=*") if p.is_dir()}
    for entry in sorted(run.iterdir()):
        if entry.name == LATEST or (entry.is_dir() and entry.name.startswith("batch_id=")):
            continue
        problems.append(
            f"{entry}: stray {'folder' if entry.is_dir() else 'file'} (an interrupted landing?)"
        )
    latest = run / LATEST
    if batches and not latest.exists():
        problems.append(f"{run}: no `latest` pointer")
    elif latest.exists() and latest.read_text().strip() not in batches:
        problems.append(f"{latest}: points at {latest.read_text().strip()!r}, which is not a batch")
    for batch_id, batch in sorted(batches.items()):
        problems += _validate_batch(batch, batch_id)
    return problems


def _validate_batch(batch: Path, batch_id: str) -> list[str]:
    manifest_path = batch / MANIFEST
    if not manifest_path.exists():
        return [f"{batch}: no {MANIFEST}"]
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        parts = {part["name"]: part for part in manifest["parts"]}
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{manifest_path}: not a valid manifest ({exc})"]
    problems = []
    if manifest.get("batch_id") != batch_id:
        problems.append(
            f"{manifest_path}: batch_id {manifest.get('batch_id')!r} != folder {batch_id!r}"
        )
    on_disk = {p.name: p for p in (batch / "parts").glob("*")} if (batch / "parts").is_dir() else {}
    for name, part in parts.items():
        path = on_disk.get(name)
        if path is None:
            problems.append(f"{batch / 'parts' / name}: part listed in the manifest is missing")
        elif path.stat().st_size != part["bytes"]:
            problems.append(f"{path}: {path.stat().st_size} bytes, manifest says {part['bytes']}")
        elif sha256_of(path) != part["sha256"]:
            problems.append(f"{path}: checksum differs from the manifest (modified after landing)")
    for name in sorted(set(on_disk) - set(parts)):
        problems.append(f"{on_disk[name]}: stray file, not in the manifest")
    extra = [p for p in batch.iterdir() if p.name not in (MANIFEST, "parts")]
    problems += [f"{p}: stray entry in the batch folder" for p in extra]
    return problems
