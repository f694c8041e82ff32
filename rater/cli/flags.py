"""Flags over the settings root: every command's settings come from one place."""

from __future__ import annotations

from typing import Any

from rater.settings import Settings, load_settings

__all__ = ["settings_from"]


def settings_from(**given: Any) -> Settings:
    """The settings root (defaults < environment) with the flags given on top.

    A flag left out is None and changes nothing; a group of nested settings is a dict
    of its flags, e.g. ``settings_from(tariff_dir=args.config, kafka={"bootstrap_servers":
    args.bootstrap_servers})``. A bad value is one line and exit status 2 (ConfigError).
    """
    overrides: dict[str, Any] = {}
    for key, value in given.items():
        if isinstance(value, dict):
            flags = {k: v for k, v in value.items() if v is not None}
            if flags:
                overrides[key] = flags
        elif value is not None:
            overrides[key] = value
    return load_settings(**overrides)
