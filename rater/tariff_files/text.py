"""Tariff files as text: UTF-8 (a leading byte-order mark ignored), and values quoted back
in error messages short enough for one line."""

from __future__ import annotations

import codecs
from pathlib import Path

from rater.errors import ConfigError

__all__ = ["FOREIGN_BOMS", "decode_utf8", "first_line", "label", "read_bytes", "read_text", "shown"]

# Longest text quoted back in an error message.
_SHOWN_CHARS = 40
# Byte order marks of encodings a spreadsheet may save instead of UTF-8.
FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def shown(value: object) -> str:
    """``repr(value)``, cut short so that an error message stays one readable line."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def label(value: object) -> str:
    """``str(value)`` when short and printable, else :func:`shown`."""
    text = str(value)
    return text if text.isprintable() and len(text) <= _SHOWN_CHARS else shown(value)


def read_text(path: Path) -> str:
    """The text of a tariff file; ConfigError when it is missing, unreadable or not UTF-8."""
    return decode_utf8(read_bytes(path), str(path))


def read_bytes(path: Path) -> bytes:
    file = str(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            file, None, "file not found", f"create {path.name} in the tariff directory"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            file,
            None,
            "is a directory, not a file",
            f"replace the directory with the {path.name} file",
        ) from None
    except OSError as exc:
        raise ConfigError(
            file,
            None,
            f"cannot be read ({exc.strerror or type(exc).__name__})",
            f"make {path.name} a regular file readable by the user running the rater",
        ) from None


def decode_utf8(data: bytes, file: str) -> str:
    for bom, encoding in FOREIGN_BOMS:
        if data.startswith(bom):
            raise ConfigError(file, 1, f"is {encoding} text, not UTF-8", "save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            file,
            line,
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded)",
            "save it as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
