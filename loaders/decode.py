"""Turn a raw file into one DuckDB reads natively: decompress, transcode, convert, streaming.

DuckDB reads UTF-8 csv/tsv/jsonl (plain or gzip) and Parquet itself. Everything else is streamed
through Python into the load's scratch folder in bounded memory: bzip2 is decompressed, other
encodings are transcoded to UTF-8, feather is rewritten as Parquet batch by batch, xlsx rows
become a Parquet file of text columns. Raw files are only ever read.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from loaders.errors import LoadError
from loaders.sniff import TEXT_FORMATS, FileKind, verify_xlsx_parts

CHUNK = 1 << 20
UTF8 = {"utf-8", "utf-8-sig"}
SUGGESTIONS = ("utf-8", "cp932", "euc_jp", "gb18030", "cp1252")
Progress = Callable[[int], None]


def open_raw(kind: FileKind) -> IO[bytes]:
    """The raw file's content as a binary stream, decompressed as its name says."""
    if kind.compression == "gzip":
        return gzip.open(kind.path, "rb")
    if kind.compression == "bzip2":
        return bz2.open(kind.path, "rb")
    return kind.path.open("rb")


def materialise(kind: FileKind, encoding: str, scratch: Path, progress: Progress) -> Path:
    """A path DuckDB can read for this file: the file itself, or a converted copy in scratch."""
    if kind.format in TEXT_FORMATS:
        if codecs.lookup(encoding).name in UTF8 and kind.compression != "bzip2":
            return kind.path
        target = scratch / f"{kind.stem}.utf8.{kind.format}"
        transcode(kind, encoding, target, progress)
        return target
    plain = kind.path
    if kind.compression:
        plain = scratch / f"{kind.stem}.{kind.format}"
        _copy_stream(kind, plain, progress)
    if kind.format == "xlsx":
        verify_xlsx_parts(kind, plain)
    return plain


def _copy_stream(kind: FileKind, target: Path, progress: Progress) -> None:
    try:
        with open_raw(kind) as source, target.open("wb") as sink:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                sink.write(chunk)
                progress(len(chunk))
    except (EOFError, OSError) as exc:
        raise LoadError(
            f"{kind.path}: the {kind.compression} stream is damaged or truncated ({exc})"
        ) from None


def transcode(kind: FileKind, encoding: str, target: Path, progress: Progress) -> None:
    """Decode the file from `encoding` and write it as UTF-8, a chunk at a time."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        with open_raw(kind) as source, target.open("wb") as sink:
            first = True
            for chunk in iter(lambda: source.read(CHUNK), b""):
                if first:  # a UTF-8 byte-order mark is dropped whatever the declared encoding
                    chunk, first = chunk.removeprefix(codecs.BOM_UTF8), False
                sink.write(decoder.decode(chunk).removeprefix("\ufeff").encode("utf-8"))
                progress(len(chunk))
            sink.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError:
        raise decode_error(kind, encoding) from None
    except (EOFError, OSError) as exc:
        raise LoadError(
            f"{kind.path}: the {kind.compression} stream is damaged or truncated ({exc})"
        ) from None


def decode_error(kind: FileKind, encoding: str) -> LoadError:
    """Find the first undecodable line and say where it is and what the encoding may be."""
    offset = 0
    with open_raw(kind) as source:
        for number, line in enumerate(_lines(source), start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as exc:
                bad = line[exc.start : exc.start + 4]
                return LoadError(
                    f"{kind.path}: line {number}, byte offset {offset + exc.start}: bytes "
                    f"{bad.hex(' ')} are not valid {encoding}; the file looks like "
                    f"{suggest_encoding(kind, encoding)} — declare `encoding:` in the contract"
                )
            offset += len(line)
    return LoadError(f"{kind.path}: the file is not valid {encoding}")


def _lines(source: IO[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in iter(lambda: source.read(CHUNK), b""):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if pending:
        yield pending


def suggest_encoding(kind: FileKind, declared: str) -> str:
    """The first common encoding that decodes the file's first megabyte."""
    with open_raw(kind) as source:
        sample = source.read(CHUNK)
    for candidate in SUGGESTIONS:
        if codecs.lookup(candidate).name == codecs.lookup(declared).name:
            continue
        try:
            codecs.getincrementaldecoder(candidate)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return candidate
    return "latin-1"
