"""How messages are framed by the settings, and a registry that cannot be reached."""

from __future__ import annotations

import os
import socket

import pytest

from rater.errors import TransientError
from rater.settings import Settings, load_settings
from rater.stream import registry


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in list(os.environ):
        if name.startswith("RATER_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_plain_fixed_ids_or_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _settings(monkeypatch)
    assert registry.framing(plain, "rated") == (False, None)
    assert registry.registry_for(plain) is None
    fixed = _settings(monkeypatch, RATER_KAFKA__CONFLUENT_FRAMING="true")
    assert registry.framing(fixed, "rated") == (True, 2)
    assert registry.framing(fixed, "cdr") == (True, 1)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens on it any more


def test_an_unreachable_registry_is_transient_never_a_dead_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    settings = _settings(monkeypatch, RATER_KAFKA__SCHEMA_REGISTRY_URL=url)
    with pytest.raises(TransientError):
        registry.prepare(settings)
    with pytest.raises(TransientError):
        registry.registry_for(settings).writer(1)  # type: ignore[union-attr]
    values = [b"\x00\x00\x00\x00\x01" + b"body"]
    with pytest.raises(TransientError):
        registry.decode_cdr_values(settings, values)
