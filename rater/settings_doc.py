"""The table of environment settings in docs/configuration.md, generated from the model.

The variables, their types, defaults and meanings all come from :class:`rater.settings.Settings`
(the ``description`` of each field), so the documentation cannot name a setting that does
not exist::

    python -m rater.settings_doc                                # print the table
    python -m rater.settings_doc --write docs/configuration.md  # replace it between the markers
    python -m rater.settings_doc --check docs/configuration.md  # exit 1 if the file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from rater.settings import Settings

__all__ = ["END_MARKER", "START_MARKER", "Row", "main", "render_table", "rows", "splice"]

START_MARKER = "<!-- settings-table:start -->"
END_MARKER = "<!-- settings-table:end -->"

_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    Path: "path",
    SecretStr: "string (secret)",
}


@dataclass(frozen=True)
class Row:
    """One leaf setting: its environment variable and what the table shows of it."""

    path: tuple[str, ...]  # attribute path in Settings, e.g. ("kafka", "schema_ids")
    variable: str
    type: str
    default: str
    meaning: str


def rows(model: type[BaseModel] = Settings) -> list[Row]:
    """Every leaf setting of ``model``, in declaration order, nested models expanded."""
    prefix = str(model.model_config.get("env_prefix", ""))
    delimiter = str(model.model_config.get("env_nested_delimiter") or "__")
    return _walk(model, (), prefix, delimiter)


def _walk(model: type[BaseModel], path: tuple[str, ...], prefix: str, delimiter: str) -> list[Row]:
    found: list[Row] = []
    for name, field in model.model_fields.items():
        variable = prefix + name.upper()
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            found += _walk(nested, (*path, name), variable + delimiter, delimiter)
        else:
            found.append(_row((*path, name), variable, field))
    return found


def _row(path: tuple[str, ...], variable: str, field: FieldInfo) -> Row:
    if not field.description:
        raise ValueError(f"setting {'.'.join(path)} has no description: add Field(description=)")
    secret = SecretStr in _members(field.annotation)
    default = "—" if secret else _default(field.get_default(call_default_factory=True))
    return Row(path, variable, _type(field), default, field.description)


def _members(annotation: Any) -> list[Any]:
    """The types of an annotation, ``X | None`` unwrapped to ``[X]``."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _type(field: FieldInfo) -> str:
    (annotation,) = _members(field.annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return ", ".join(f"`{value}`" for value in get_args(annotation))
    if annotation is bool:
        return "`true`, `false`"
    if origin is dict:
        key, value = (_SCALARS[a] for a in get_args(annotation))
        return f"JSON object, {key} → {value}"
    if annotation in _SCALARS:
        return _SCALARS[annotation] + _bounds(field)
    raise TypeError(f"no documentation rule for the type {annotation!r}")


def _bounds(field: FieldInfo) -> str:
    """`` 0..65535``, `` ≥ 1`` or `` > 0`` from the field's constraints."""
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    rules = {
        name: getattr(rule, name)
        for rule in field.metadata
        for name in signs
        if type(rule).__name__ == name.title()
    }
    if "ge" in rules and "le" in rules:
        return f" {rules['ge']}..{rules['le']}"
    return "".join(f" {signs[name]} {rules[name]}" for name in signs if name in rules)


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, dict):
        text = json.dumps(value)
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, Path):
        text = value.as_posix()
    else:
        text = str(value)
    return f"`{text}`"


def render_table(table_rows: Sequence[Row]) -> str:
    """The Markdown table, without a trailing newline."""
    lines = [
        "| variable | type / allowed values | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for row in table_rows:
        cells = (f"`{row.variable}`", row.type, row.default, row.meaning)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def splice(document: str, table: str) -> str:
    """``document`` with everything between the two markers replaced by ``table``."""
    if document.count(START_MARKER) != 1 or document.count(END_MARKER) != 1:
        raise ValueError(f"expected one {START_MARKER} and one {END_MARKER}")
    head, rest = document.split(START_MARKER)
    if END_MARKER not in rest:
        raise ValueError(f"{END_MARKER} must come after {START_MARKER}")
    tail = rest.split(END_MARKER)[1]
    return f"{head}{START_MARKER}\n{table}\n{END_MARKER}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rater.settings_doc",
        description="Print the environment settings table, or write it into a Markdown "
        f"file between {START_MARKER} and {END_MARKER}.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", type=Path, metavar="FILE", help="update FILE in place")
    action.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE is stale")
    args = parser.parse_args(argv)
    table = render_table(rows())
    if args.write is None and args.check is None:
        print(table)
        return 0
    return _update(args.write or args.check, table, write=args.write is not None)


def _update(target: Path, table: str, *, write: bool) -> int:
    current = target.read_text(encoding="utf-8")
    try:
        updated = splice(current, table)
    except ValueError as exc:
        print(f"{target}: {exc}", file=sys.stderr)
        return 2
    if write:
        if updated != current:
            target.write_text(updated, encoding="utf-8")
        return 0
    if updated != current:
        print(
            f"{target}: the settings table is stale. "
            f"Fix: python -m rater.settings_doc --write {target}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
