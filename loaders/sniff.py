"""What a raw file claims to be (its name) and what it is (its first bytes): they must agree."""

from __future__ import annotations

import bz2
import gzip
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from loaders.errors import LoadError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
    ".parquet": "parquet",
    ".feather": "feather",
    ".arrow": "feather",
}
COMPRESSIONS = {".gz": "gzip", ".bz2": "bzip2"}
TEXT_FORMATS = frozenset({"csv", "tsv", "jsonl"})
XLSX_PARTS = ("[Content_Types].xml", "xl/workbook.xml")
HEAD_BYTES = 64 * 1024
MAGIC = (
    (b"\x1f\x8b", "gzip data"),
    (b"BZh", "bzip2 data"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PAR1", "Parquet"),
    (b"ARROW1", "Arrow IPC (feather)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xd0\xcf\x11\xe0", "a legacy Office file (.xls/.doc)"),
    (b"\x28\xb5\x2f\xfd", "zstd data"),
    (b"7z\xbc\xaf", "a 7z archive"),
)


def whitelist() -> str:
    """The accepted file names, for messages and docs."""
    formats = ", ".join(sorted(FORMATS))
    return f"{formats}, each plain or with .gz or .bz2"


@dataclass(frozen=True)
class FileKind:
    """A raw file's format and compression, as its name declares them."""

    path: Path
    format: str
    compression: str | None

    @property
    def stem(self) -> str:
        """The file name without its format and compression suffixes."""
        name = self.path.name
        cut = len(self.path.suffixes[-1]) if self.compression else 0
        name = name[: len(name) - cut] if cut else name
        return name[: name.lower().rfind(".")]


def kind_of(path: Path) -> FileKind:
    """The declared kind of a file from its name; anything off the whitelist is refused."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    file_format = FORMATS.get(suffixes[-1]) if suffixes else None
    if file_format is None:
        raise LoadError(f"{path}: {path.name!r} is not an accepted file type ({whitelist()})")
    return FileKind(path, file_format, compression)


def describe(head: bytes) -> str:
    """What the first bytes of a file look like, in words."""
    if not head:
        return "empty"
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    sample = head[:HEAD_BYTES]
    if _is_binary(sample):
        return "binary data"
    stripped = sample.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "JSON text" if stripped.startswith((b"{", b"[")) else "text"


def _is_binary(sample: bytes) -> bool:
    controls = sum(1 for byte in sample[:4096] if byte < 9 or 13 < byte < 32)
    return controls > len(sample[:4096]) * 0.1


def read_head(kind: FileKind) -> bytes:
    """The first bytes of the file's content, decompressed when the name says so."""
    path = kind.path
    with path.open("rb") as raw:
        outer = raw.read(8)
    if kind.compression == "gzip" and not outer.startswith(b"\x1f\x8b"):
        raise _mismatch(kind, "gzip", describe(outer))
    if kind.compression == "bzip2" and not outer.startswith(b"BZh"):
        raise _mismatch(kind, "bzip2", describe(outer))
    opener = {"gzip": gzip.open, "bzip2": bz2.open}.get(kind.compression or "")
    if opener is None:
        with path.open("rb") as handle:
            return handle.read(HEAD_BYTES)
    try:
        with opener(path, "rb") as handle:
            return handle.read(HEAD_BYTES)
    except (EOFError, OSError, zlib.error) as exc:
        raise LoadError(
            f"{path}: the {kind.compression} stream is damaged or truncated ({exc})"
        ) from None


def verify(kind: FileKind) -> None:
    """Refuse a file whose content is not what its name claims (empty files included)."""
    head = read_head(kind)
    content = describe(head)
    if content == "empty":
        raise LoadError(f"{kind.path}: the file is empty")
    expected = {
        "xlsx": ("a zip archive",),
        "parquet": ("Parquet",),
        "feather": ("Arrow IPC (feather)",),
        "jsonl": ("JSON text",),
        "csv": ("text", "JSON text"),
        "tsv": ("text", "JSON text"),
    }[kind.format]
    if content not in expected:
        raise _mismatch(kind, kind.format, content)


def verify_xlsx_parts(kind: FileKind, path: Path) -> None:
    """An xlsx file is a zip archive holding the workbook parts."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise LoadError(f"{kind.path}: not a readable xlsx (zip) file: {exc}") from None
    missing = [part for part in XLSX_PARTS if part not in names]
    if missing:
        raise _mismatch(kind, "xlsx", f"a zip archive without {', '.join(missing)}")


def _mismatch(kind: FileKind, claimed: str, content: str) -> LoadError:
    return LoadError(
        f"{kind.path}: the name says {claimed} but the content is {content}; "
        "rename the file to what it is or ask the sender for the declared format"
    )
