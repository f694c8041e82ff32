"""plans.yaml: the plans (currency, zone, rounding, fallback, bands, allowances) and the
top-level ``max_call_seconds``, validated with the line of every problem."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from rater.core.calendar import DAYS, MINUTES_PER_DAY
from rater.core.tariff.build import MAX_PLANS
from rater.core.tariff.model import (
    DEFAULT_MAX_CALL_SECONDS,
    MAX_CALL_SECONDS_LIMIT,
    Allowance,
    Band,
    Plan,
)
from rater.errors import ConfigError
from rater.tariff_files.catalogue import parse_billing_fields
from rater.tariff_files.csv_rows import DIGITS
from rater.tariff_files.text import first_line, label, read_text, shown

__all__ = ["PLANS_FILE", "PlansFile", "load_plans", "parse_hhmm"]

PLANS_FILE = "plans.yaml"


class _LineLoader(yaml.SafeLoader):
    """Records the 1-based line of every mapping under the key ``__line__``."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _parse_band(raw: Any, file: str, line: int) -> Band:
    if not isinstance(raw, dict):
        raise ConfigError(file, line, "a band must be a mapping", "write {name, days, from, to}")
    line = raw.get("__line__", line)
    for key in ("name", "days", "from", "to"):
        if key not in raw:
            raise ConfigError(file, line, f"band lacks {key!r}", "give name, days, from and to")
    start = parse_hhmm(str(raw["from"]), allow_end_of_day=False)
    end = parse_hhmm(str(raw["to"]), allow_end_of_day=True)
    if start is None or end is None:
        raise ConfigError(
            file,
            line,
            f"band {shown(raw['name'])}: bad time {shown(raw['from'])}..{shown(raw['to'])}",
            'write times as "HH:MM" (00:00..23:59; "24:00" only as "to")',
        )
    if start == end:
        raise ConfigError(
            file,
            line,
            f"band {shown(raw['name'])} is empty or ambiguous (from == to)",
            "use 00:00-24:00 for all day",
        )
    days = raw["days"]
    if not isinstance(days, list) or any(str(d).lower() not in DAYS for d in days):
        raise ConfigError(
            file,
            line,
            f"band {shown(raw['name'])}: bad days {shown(_strip_lines(days))}",
            f"use a list of {', '.join(DAYS)}",
        )
    return Band(
        name=str(raw["name"]),
        days=tuple(str(d).lower() for d in days),  # type: ignore[misc]
        from_minute=start,
        to_minute=end,
    )


def _parse_plan(raw: Any, file: str, index: int) -> Plan:
    if not isinstance(raw, dict):
        raise ConfigError(
            file, f"plans[{index}]", "a plan must be a mapping", "see the plans.yaml format"
        )
    line = raw.get("__line__", index)
    plan_id = raw.get("id")
    where = f"{line} (plan {label(plan_id)})"
    if not plan_id:
        raise ConfigError(file, line, "plan without an id", "give every plan an id")
    tz = raw.get("timezone")
    try:
        if not isinstance(tz, str):
            raise ZoneInfoNotFoundError(str(tz))
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            file, where, f"unknown time zone {shown(tz)}", "use an IANA name such as Europe/Paris"
        ) from None
    bands = raw.get("bands") or []
    allowances = raw.get("allowances") or []
    if not isinstance(bands, list) or not isinstance(allowances, list):
        raise ConfigError(
            file, where, "bands and allowances must be lists", "write them as YAML lists"
        )
    parsed_bands = tuple(_parse_band(b, file, line) for b in bands)
    names = [b.name for b in parsed_bands]
    if len(set(names)) != len(names) or "any" in names:
        raise ConfigError(file, where, "band names must be unique and not 'any'", "rename the band")
    parsed_allowances = [_parse_allowance(a, file, line, plan_id) for a in allowances]
    billing = parse_billing_fields(raw, file, where)
    fields = {k: v for k, v in _strip_lines(raw).items() if k not in ("bands", "allowances")}
    try:
        return Plan.model_validate(
            {**fields, **billing, "bands": parsed_bands, "allowances": tuple(parsed_allowances)}
        )
    except ValidationError as exc:
        raise ConfigError(
            file,
            where,
            f"bad plan: {_first_error(exc)}",
            "check currency, timezone, decimals (0..6), rounding (half_up|up|down), fallback",
        ) from None


def _parse_allowance(raw: Any, file: str, line: int, plan_id: Any) -> Allowance:
    """One allowance of a plan: its kind's quantity only, prefixes of digits only."""
    a_line = raw.get("__line__", line) if isinstance(raw, dict) else line
    try:
        allowance = Allowance.model_validate(_strip_lines(raw))
    except ValidationError as exc:
        raise ConfigError(
            file,
            a_line,
            f"plan {label(plan_id)}: bad allowance: {_first_error(exc)}",
            _ALLOWANCE_FIX,
        ) from None
    wrong = allowance.segments if allowance.kind == "call" else allowance.seconds
    right = allowance.seconds if allowance.kind == "call" else allowance.segments
    if wrong is not None or right is None:
        raise ConfigError(
            file, a_line, f"plan {label(plan_id)}: bad allowance quantity", _ALLOWANCE_FIX
        )
    if any(not p or not DIGITS.fullmatch(p) for p in allowance.prefixes):
        raise ConfigError(
            file,
            a_line,
            f"plan {label(plan_id)}: allowance prefixes must be digits",
            _ALLOWANCE_FIX,
        )
    return allowance


_ALLOWANCE_FIX = (
    "write {kind: call, direction: inbound|outbound|any, prefixes: [...], seconds: N} "
    "or {kind: sms, ..., segments: N}"
)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])


@dataclass(frozen=True)
class PlansFile:
    """What plans.yaml defines: the plans and the top-level options."""

    plans: dict[str, Plan]
    max_call_seconds: int = DEFAULT_MAX_CALL_SECONDS


def load_plans(directory: Path) -> PlansFile:
    """The plans of ``directory``/plans.yaml and its top-level ``max_call_seconds``."""
    path = directory / PLANS_FILE
    file = str(path)
    doc, root = _parse_yaml(read_text(path), file)
    if not isinstance(doc, dict) or not isinstance(doc.get("plans"), list) or not doc["plans"]:
        raise ConfigError(
            file, 1, "no 'plans' list", "start the file with 'plans:' and a list of plans"
        )
    plans, lines = _parse_plans(doc["plans"], file)
    if len(plans) > MAX_PLANS:
        raise ConfigError(file, None, f"more than {MAX_PLANS} plans", "merge plans")
    _check_fallbacks(plans, lines, file)
    return PlansFile(plans, _parse_max_call_seconds(doc, root, file))


def _parse_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None]:
    """The document of ``text`` and its root node (for the lines of top-level keys)."""
    loader = _LineLoader(text)
    try:
        root = loader.get_single_node()
        doc = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            file, line, f"invalid YAML: {_yaml_problem(exc)}", "fix the YAML syntax"
        ) from None
    except RecursionError:
        raise ConfigError(
            file, None, "invalid YAML: nested too deeply", "write plans as in the example"
        ) from None
    except ValueError as exc:  # a scalar the resolver typed but cannot build (2001-13-45)
        raise ConfigError(
            file, None, f"invalid YAML value: {first_line(exc)}", "quote or fix the value"
        ) from None
    finally:
        loader.dispose()
    return doc, root


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's complaint on one line, without the quoted excerpt of the file."""
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [exc.context, exc.problem]
        text = " ".join(str(p) for p in parts if p)
    else:
        text = str(exc)
    return " ".join(text.split()) or type(exc).__name__


def _parse_plans(raws: list[Any], file: str) -> tuple[dict[str, Plan], dict[str, Any]]:
    """Plans by id and the line of each."""
    plans: dict[str, Plan] = {}
    lines: dict[str, Any] = {}
    for i, raw in enumerate(raws):
        plan = _parse_plan(raw, file, i)
        line = raw.get("__line__")
        if plan.id in plans:
            raise ConfigError(
                file, line, f"duplicate plan id {shown(plan.id)}", "give each plan a unique id"
            )
        plans[plan.id] = plan
        lines[plan.id] = line
    return plans, lines


def _check_fallbacks(plans: dict[str, Plan], lines: dict[str, Any], file: str) -> None:
    for plan in plans.values():
        where = f"{lines[plan.id]} (plan {plan.id})"
        if plan.fallback is None:
            continue
        target = plans.get(plan.fallback)
        if target is None:
            raise ConfigError(
                file,
                where,
                f"unknown fallback plan {shown(plan.fallback)}",
                "name a plan defined in plans.yaml",
            )
        if target.currency != plan.currency:
            raise ConfigError(
                file,
                where,
                f"fallback plan {shown(target.id)} is in {target.currency}, not {plan.currency}",
                "fall back only on a plan with the same currency",
            )
        chain = [plan.id]
        cursor: Plan | None = target
        while cursor is not None:
            if cursor.id in chain:
                raise ConfigError(
                    file,
                    where,
                    f"fallback cycle {' -> '.join([*chain, cursor.id])}",
                    "remove one fallback so that the chain ends",
                )
            if cursor.currency != plan.currency:
                raise ConfigError(
                    file,
                    where,
                    f"fallback plan {shown(cursor.id)} is in {cursor.currency}, not {plan.currency}",
                    "fall back only on plans with the same currency",
                )
            chain.append(cursor.id)
            cursor = plans.get(cursor.fallback) if cursor.fallback else None


def _parse_max_call_seconds(doc: dict[Any, Any], root: yaml.Node | None, file: str) -> int:
    """The top-level ``max_call_seconds``: a whole number of seconds, default one day."""
    if "max_call_seconds" not in doc:
        return DEFAULT_MAX_CALL_SECONDS
    value = doc["max_call_seconds"]
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole and 1 <= value <= MAX_CALL_SECONDS_LIMIT:
        return int(value)
    raise ConfigError(
        file,
        _key_line(root, "max_call_seconds"),
        f"max_call_seconds {shown(value)} is not a whole number of seconds "
        f"from 1 to {MAX_CALL_SECONDS_LIMIT} (100 years)",
        "write e.g. 'max_call_seconds: 86400' (one day), or remove it for that default",
    )


def _key_line(root: yaml.Node | None, key: str) -> int | None:
    """The 1-based line of the top-level ``key`` in the document ``root``."""
    if not isinstance(root, yaml.MappingNode):
        return None
    for key_node, value_node in root.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return int(value_node.start_mark.line) + 1
    return None


_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})")


def parse_hhmm(text: str, *, allow_end_of_day: bool) -> int | None:
    """Minutes since midnight of "HH:MM"; "24:00" only when ``allow_end_of_day``; else None."""
    match = _HHMM.fullmatch(text.strip())
    if match is None:
        return None
    hours, minutes = int(match[1]), int(match[2])
    if hours == 24 and minutes == 0 and allow_end_of_day:
        return MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        return None
    return hours * 60 + minutes
