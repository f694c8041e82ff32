"""The settings table of docs/configuration.md is generated from the model and kept in sync."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel, Field, SecretStr

from rater.settings import Settings
from rater.settings_doc import END_MARKER, START_MARKER, main, render_table, rows, splice

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("RATER_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_configuration_md_matches_the_model() -> None:
    current = DOC.read_text(encoding="utf-8")
    assert splice(current, render_table(rows())) == current, (
        "docs/configuration.md is stale. Fix: python -m rater.settings_doc "
        "--write docs/configuration.md"
    )


def test_table_names_the_real_variables_only() -> None:
    names = {row.variable for row in rows()}
    assert {
        "RATER_OUTPUT__DATASET_DIR",
        "RATER_STREAM__INSTANCE_ID",
        "RATER_KAFKA__SCHEMA_IDS",
        "RATER_METRICS_ENABLED",
        "RATER_LOG_FORMAT",
    } <= names
    assert "RATER_OUTPUT__PARQUET_DIR" not in names
    assert len(names) == len(rows())


def _field_annotation(path: tuple[str, ...]) -> Any:
    model: type[BaseModel] = Settings
    for name in path[:-1]:
        model = model.model_fields[name].annotation  # type: ignore[assignment]
    return model.model_fields[path[-1]].annotation


def _get(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for name in path:
        value = getattr(value, name)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


# Settings whose values follow a pattern: a valid value to set them to.
_PATTERNED = {("invoice", "period"): "2026-04"}


def _sample(path: tuple[str, ...], default: Any) -> tuple[str, Any]:
    """An environment value differing from the default, and the value it must give."""
    if path in _PATTERNED:
        return _PATTERNED[path], _PATTERNED[path]
    annotation = _field_annotation(path)
    if get_origin(annotation) is Literal:
        other = next(v for v in get_args(annotation) if v != default)
        return str(other), other
    if default is None:
        kinds = get_args(annotation)
        if Path in kinds:
            return "elsewhere/p", Path("elsewhere/p")
        if int in kinds:
            return "7", 7
        return "x", "x"
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int | float):
        return str(default + 1), default + 1
    if isinstance(default, dict):
        new: dict[str, str] = {} if default else {"a": "b"}
        return json.dumps(new), new
    if isinstance(default, Path):
        return "elsewhere/p", Path("elsewhere/p")
    return f"{default}-x", f"{default}-x"


def test_every_documented_variable_sets_its_setting(clean_env: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    for row in rows():
        text, expected = _sample(row.path, _get(defaults, row.path))
        with pytest.MonkeyPatch.context() as env:
            env.setenv(row.variable, text)
            assert _get(Settings(), row.path) == expected, row.variable


class _Secretive(BaseModel):
    token: SecretStr = Field(default=SecretStr("hunter2"), description="An API token.")
    mode: Literal["a", "b"] = Field(default="a", description="A | B mode.")
    port: int = Field(default=1, ge=0, le=9, description="A port.")


def test_secrets_show_no_default_and_pipes_are_escaped() -> None:
    table = render_table(rows(_Secretive))
    assert "hunter2" not in table
    assert "| `TOKEN` | string (secret) | — | An API token. |" in table
    assert "A \\| B mode." in table
    assert "| integer 0..9 |" in table


def test_the_rated_secret_of_settings_has_no_default_shown() -> None:
    (row,) = [r for r in rows() if r.variable == "RATER_KAFKA__SASL_PASSWORD"]
    assert row.default == "—"


def test_a_setting_without_description_is_refused() -> None:
    class Undocumented(BaseModel):
        x: int = 1

    with pytest.raises(ValueError, match="no description"):
        rows(Undocumented)


def test_an_unknown_type_is_refused() -> None:
    class Odd(BaseModel):
        x: list[int] = Field(default_factory=list, description="odd")

    with pytest.raises(TypeError, match="no documentation rule"):
        rows(Odd)


def test_splice_needs_both_markers() -> None:
    with pytest.raises(ValueError):
        splice("no markers", "table")
    with pytest.raises(ValueError):
        splice(f"{END_MARKER}\n{START_MARKER}", "table")
    doc = f"head\n{START_MARKER}\nold\n{END_MARKER}\ntail\n"
    assert splice(doc, "new") == f"head\n{START_MARKER}\nnew\n{END_MARKER}\ntail\n"


def test_write_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "configuration.md"
    doc.write_text(f"# Settings\n\n{START_MARKER}\nold\n{END_MARKER}\n\nnote\n", encoding="utf-8")
    assert main(["--check", str(doc)]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["--write", str(doc)]) == 0
    assert main(["--check", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert "RATER_STREAM__INSTANCE_ID" in text and text.endswith(f"{END_MARKER}\n\nnote\n")
