"""The Avro schemas of the wire records and the flat description the codec works from.

The ``*.avsc`` files are package data (``rater/schemas/``). Every record this codec handles
is flat: each field is a string, long, int, boolean, enum or timestamp-micros, or a
``[null, T]`` union of one of them. :func:`record_fields` describes a schema's fields that
way, and the encoders and decoders are driven by that description.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

__all__ = [
    "BOOL",
    "ENUM",
    "INT",
    "INT32_RANGE",
    "INT64_RANGE",
    "LONG",
    "STRING",
    "TS",
    "Field",
    "load_schema",
    "parsed",
    "parsed_plain",
    "raw_schema",
    "record_fields",
    "schema_dir",
]


def schema_dir() -> Path:
    """The directory holding the ``*.avsc`` files (package data, or the repository's schemas/)."""
    here = Path(__file__).resolve().parent.parent  # the rater package
    for candidate in (here / "schemas", here.parent / "schemas"):
        if (candidate / "cdr.avsc").is_file():
            return candidate
    raise FileNotFoundError(f"no Avro schemas found next to {here}")


@cache
def raw_schema(name: str) -> str:
    """The text of schema ``name``'s ``.avsc`` file, read once."""
    return (schema_dir() / f"{name}.avsc").read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """The JSON of schema ``name`` (``cdr``, ``rated``, ``balance_event``, ``topup``)."""
    loaded: dict[str, Any] = json.loads(raw_schema(name))
    return loaded


@cache
def parsed(name: str) -> Any:
    """Schema ``name`` parsed by fastavro (timestamps read as aware datetimes)."""
    return fastavro.parse_schema(load_schema(name))


@cache
def parsed_plain(name: str) -> Any:
    """The schema with logical types removed: timestamps stay integer micros, as in Polars."""
    raw = load_schema(name)
    for f in raw["fields"]:
        f["type"] = _strip_logical(f["type"])
    return fastavro.parse_schema(raw)


def _strip_logical(t: Any) -> Any:
    if isinstance(t, list):
        return [_strip_logical(x) for x in t]
    if isinstance(t, dict) and "logicalType" in t:
        return t["type"]
    return t


# Field kinds of the flat records this codec handles.
STRING, LONG, INT, BOOL, ENUM, TS = "string", "long", "int", "boolean", "enum", "ts"

# The values of an Avro int and of an Avro long.
INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Field:
    """One field of a flat record: its kind, whether it is a ``[null, T]`` union, and the
    symbols of an enum."""

    name: str
    kind: str
    nullable: bool
    symbols: tuple[str, ...] = ()


@cache
def record_fields(name: str) -> tuple[Field, ...]:
    """The fields of schema ``name``, in order; raises ValueError on a type it cannot hold."""
    out = []
    for f in load_schema(name)["fields"]:
        t = f["type"]
        nullable = isinstance(t, list)
        if nullable:
            if len(t) != 2 or t[0] != "null":
                raise ValueError(f"{name}.{f['name']}: only [null, T] unions are supported")
            t = t[1]
        symbols: tuple[str, ...] = ()
        if isinstance(t, dict):
            if t.get("logicalType") == "timestamp-micros":
                kind = TS
            elif t["type"] == "enum":
                kind, symbols = ENUM, tuple(t["symbols"])
            else:
                kind = t["type"]
        else:
            kind = t
        if kind not in (STRING, LONG, INT, BOOL, ENUM, TS):
            raise ValueError(f"{name}.{f['name']}: unsupported type {kind}")
        out.append(Field(f["name"], kind, nullable, symbols))
    return tuple(out)
