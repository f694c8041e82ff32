"""Read CDR files (.csv, .parquet, .avro) into a frame with the core's CDR dtypes.

A file is rejected as a whole (``InputError`` naming the file, the line or record
and the fix) only when it cannot be interpreted: unreadable, not UTF-8 (CSV), a
required column missing, a timestamp or integer that does not parse or does not fit
its column's type, a kind or direction outside the contract's values, or a missing
identifier or time. Values that parse but break a rating rule (end before start,
year 9999, a 40-digit callee, negative hold, 0 segments) are kept as they are: the
core marks those records ``invalid`` with the contract's reason.

Nothing else escapes: whatever bytes a file holds, reading it either succeeds or
raises ``InputError``.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from rater.batch.avro_cdrs import read_avro
from rater.batch.coerce import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, Place, coerce
from rater.errors import InputError
from rater.tariff_files.text import FOREIGN_BOMS, first_line

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SUPPORTED_SUFFIXES",
    "check_input_file",
    "iter_cdr_batches",
    "read_cdrs",
    "read_parquet_file",
    "read_text_csv",
]

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".avro")


def check_input_file(path: Path, suffixes: tuple[str, ...] = SUPPORTED_SUFFIXES) -> None:
    """Raise InputError unless ``path`` is a readable regular file of one of ``suffixes``."""
    path = Path(path)
    name = Place(path, 1, "line").file
    formats = _one_of(suffixes)
    try:
        is_dir, exists, is_file = path.is_dir(), path.exists(), path.is_file()
    except OSError as exc:
        raise InputError(
            f"{name}: cannot be read ({reason(exc)}). "
            "Fix: pass a file readable by the user running the rater"
        ) from None
    if is_dir:
        raise InputError(f"{name}: is a directory, not a file. Fix: pass one {formats} file")
    if not exists:
        raise InputError(f"{name}: no such file. Fix: pass an existing {formats} file")
    if not is_file:
        raise InputError(f"{name}: not a regular file. Fix: pass a {formats} file on disk")
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise InputError(
            f"{name}: unknown input format {suffix or '(no extension)'!r}. "
            f"Fix: use a {formats} file"
        )
    try:
        path.open("rb").close()
    except OSError as exc:
        raise InputError(
            f"{name}: cannot be read ({reason(exc)}). "
            "Fix: make it readable by the user running the rater"
        ) from None


def _one_of(suffixes: tuple[str, ...]) -> str:
    """The suffixes as words: ".csv, .parquet or .avro"."""
    return " or ".join(filter(None, (", ".join(suffixes[:-1]), suffixes[-1])))


def read_cdrs(path: Path) -> pl.DataFrame:
    """Read a whole CDR file into CDR_SCHEMA dtypes, extra columns kept after them.

    Missing optional columns are added: ``user_id``, ``team_id`` and ``answer_time``
    as null, ``hold_ms`` as 0 and ``segments`` as 1 (nulls in those two columns
    get the same defaults). A null callee becomes the empty string. Input columns
    named like the rater's output columns (``status``, ``charge``, ...; a
    rated.parquet read back) are dropped with a warning.
    """
    path = Path(path)
    check_input_file(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        # Line 1 is the header.
        return coerce(read_text_csv(path), Place(path, 2, "line"))
    place = Place(path, 1, "record")
    frame = read_parquet_file(place) if suffix == ".parquet" else read_avro(place)
    return coerce(frame, place)


def iter_cdr_batches(frame: pl.DataFrame, batch_size: int) -> Iterator[pl.DataFrame]:
    """Yield consecutive slices of at most ``batch_size`` rows (at least one slice)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if frame.height == 0:
        yield frame
        return
    for offset in range(0, frame.height, batch_size):
        yield frame.slice(offset, batch_size)


def read_text_csv(path: Path, what: str = "CDR field names") -> pl.DataFrame:
    """Every column of a UTF-8 CSV file as text, stripped; empty cells null."""
    place = Place(path, 1, "line")
    _check_csv_encoding(place)
    try:
        # Everything as text: types are applied by coerce so that a bad value can be
        # reported with its line number instead of a parser's guess.
        frame = pl.read_csv(path, infer_schema=False, null_values=[""])
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        _raise_if_not_utf8(place)
        raise InputError(
            f"{place.file}: not a readable CSV file ({first_line(exc)}). "
            f"Fix: provide UTF-8 CSV with a header line of {what}"
        ) from None
    return frame.with_columns(pl.col(c).str.strip_chars() for c in frame.columns)


def _check_csv_encoding(place: Place) -> None:
    """Reject UTF-16/32 files and a header line that is not UTF-8 (read leniently by Polars).

    A UTF-8 byte order mark is accepted (Polars skips it).
    """
    try:
        with place.path.open("rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise InputError(
            f"{place.file}: cannot be read ({reason(exc)}). "
            "Fix: make it readable by the user running the rater"
        ) from None
    for bom, encoding in FOREIGN_BOMS:
        if head.startswith(bom):
            raise InputError(
                f"{place.at(0)}: {encoding} text, not UTF-8. Fix: save the file as UTF-8"
            )
    header, newline, _ = head.partition(b"\n")
    if newline:
        _raise_if_not_utf8(place, header)


def _raise_if_not_utf8(place: Place, data: bytes | None = None) -> None:
    """InputError naming the line of the first byte that is not UTF-8, if there is one.

    Reads ``data``, or else the whole file in chunks.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    row = 0  # lines before the current chunk
    try:
        for chunk in [data] if data is not None else _chunks(place.path):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=data is not None)
            except UnicodeDecodeError as exc:
                start = min(max(exc.start - pending, 0), len(chunk) - 1)
                row += chunk.count(b"\n", 0, start)
                raise InputError(
                    f"{place.at(row)}: not UTF-8 text (byte 0x{chunk[start]:02x} cannot be "
                    "decoded). Fix: save the file as UTF-8"
                ) from None
            row += chunk.count(b"\n")
    except OSError:
        return  # unreadable: the caller reports its own error


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            yield chunk


def read_parquet_file(place: Place, what: str = "the CDR fields") -> pl.DataFrame:
    try:
        return pl.read_parquet(place.path)
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        raise InputError(
            f"{place.file}: not a readable Parquet file ({first_line(exc)}). "
            f"Fix: provide a Parquet file with {what} as columns"
        ) from None


def reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
