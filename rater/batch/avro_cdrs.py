"""CDRs from an Avro object container file, whatever the writer's timestamp units."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from rater.batch.coerce import TIME_COLUMNS, Place, TimeUnit, datetime_micros
from rater.core.columns import TIME
from rater.errors import InputError
from rater.tariff_files.text import first_line, shown

__all__ = ["read_avro"]

# Avro logical types of a timestamp field, by the unit of their long value.
_AVRO_TIME_UNITS: dict[str, TimeUnit] = {
    "timestamp-millis": "ms",
    "timestamp-micros": "us",
    "timestamp-nanos": "ns",
    "local-timestamp-millis": "ms",
    "local-timestamp-micros": "us",
    "local-timestamp-nanos": "ns",
}
_AVRO_FIX = "Fix: provide an Avro object container written with schemas/cdr.avsc"


def read_avro(place: Place) -> pl.DataFrame:
    columns, units = _avro_columns(place)
    series = []
    for name, values in columns.items():
        if name in TIME_COLUMNS:
            series.append(_avro_times(name, values, units.get(name, "us"), place))
        else:
            series.append(_avro_values(name, values, place))
    return pl.DataFrame(series)


def _avro_columns(place: Place) -> tuple[dict[str, list[Any]], dict[str, TimeUnit]]:
    """Values of every top-level field, and the time unit of the timestamp fields."""
    import fastavro

    try:
        with place.path.open("rb") as fh:
            reader = fastavro.reader(fh)
            schema = _record_schema(reader.writer_schema, place)
            units = _raw_time_fields(schema, place)
            fields = [str(f["name"]) for f in schema.get("fields", [])]
            columns: dict[str, list[Any]] = {name: [] for name in fields}
            for record in reader:
                for name in fields:
                    columns[name].append(record.get(name))  # type: ignore[union-attr]
    except InputError:
        raise
    except Exception as exc:  # any decoding failure of a foreign file is the file's fault
        raise InputError(
            f"{place.file}: not a readable Avro object container file "
            f"({first_line(exc)}). {_AVRO_FIX}"
        ) from None
    return columns, units


def _record_schema(schema: Any, place: Place) -> dict[str, Any]:
    if isinstance(schema, dict) and schema.get("type") == "record":
        return schema
    kind = schema.get("type") if isinstance(schema, dict) else schema
    raise InputError(f"{place.file}: holds Avro {shown(kind)} values, not CDR records. {_AVRO_FIX}")


def _raw_time_fields(schema: dict[str, Any], place: Place) -> dict[str, TimeUnit]:
    """Units of the timestamp fields, whose logical type is then removed from the reader's
    copy of the schema: their longs come out raw, so that a value beyond Python's
    datetime range is kept (and later marked invalid) instead of failing the decoder."""
    units: dict[str, TimeUnit] = {}
    for field in schema.get("fields", []):
        name = field.get("name") if isinstance(field, dict) else None
        if name not in TIME_COLUMNS:
            continue
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for branch in branches:
            if not isinstance(branch, dict) or "logicalType" not in branch:
                continue
            logical = branch["logicalType"]
            if logical not in _AVRO_TIME_UNITS:
                raise InputError(
                    f"{place.file}: field {name!r} has logical type {shown(logical)}, "
                    f"expected timestamp-micros. {_AVRO_FIX}"
                )
            units[name] = _AVRO_TIME_UNITS[logical]
            del branch["logicalType"]
    return units


def _avro_times(name: str, values: list[Any], unit: TimeUnit, place: Place) -> pl.Series:
    """A timestamp field as Datetime (longs in ``unit``) or as text to parse later."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int}:
        return pl.Series(name, values, dtype=pl.Int64).cast(pl.Datetime(unit, "UTC"))
    if kinds <= {str}:
        return pl.Series(name, values, dtype=pl.String)
    if kinds <= {dt.datetime}:  # a decoder that converted the logical type anyway
        micros = [None if v is None else datetime_micros(v) for v in values]
        return pl.Series(name, micros, dtype=pl.Int64).cast(TIME)
    shown = ", ".join(sorted(k.__name__ for k in kinds))
    raise InputError(
        f"{place.file}: field {name!r} holds {shown} values, expected timestamps. {_AVRO_FIX}"
    )


def _avro_values(name: str, values: list[Any], place: Place) -> pl.Series:
    try:
        return pl.Series(name, values, strict=False)
    except (
        pl.exceptions.PolarsError,
        TypeError,
        ValueError,
        OverflowError,
        pl.exceptions.PanicException,
    ) as exc:
        raise InputError(
            f"{place.file}: field {name!r} has values of an unexpected type "
            f"({first_line(exc)}). {_AVRO_FIX}"
        ) from None
