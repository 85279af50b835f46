"""The training-config editor: a project's overrides of ``[model]``, ``[loss]``,
``[training]`` and ``[active]``, validated by :func:`concner.config.config_from_dict` before
they are saved."""

from __future__ import annotations

import tomllib
from typing import Any

from concner.config import SECTIONS, Config, config_from_dict
from concner.errors import ConfigError
from concner.settings import form_fields

#: sections a project may override (services and data stay machine/project level)
EDITABLE_SECTIONS = ("model", "loss", "training", "active")

#: the fields shown as widgets: (section, field, label), from the settings' declarations
#: (``setting(..., form=label)`` in concner/config.py)
FORM_FIELDS: tuple[tuple[str, str, str], ...] = form_fields(
    {section: SECTIONS[section] for section in EDITABLE_SECTIONS})


def effective_config(overrides: dict[str, Any] | None) -> Config:
    """Defaults + the project's overrides (no environment: what the project asks for)."""
    return config_from_dict(dict(overrides or {}), env={})


def validate_overrides(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Check a project's overrides; returns them cleaned (only editable sections).

    Raises :class:`ConfigError` naming the key on an unknown section or field, a wrong
    type or a value out of range.
    """
    unknown = sorted(set(overrides) - set(EDITABLE_SECTIONS))
    if unknown:
        raise ConfigError(f"a project's training config may set {', '.join(EDITABLE_SECTIONS)};"
                          f" not {', '.join(unknown)}")
    for section, values in overrides.items():
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of settings")
    config_from_dict(overrides, env={})  # raises ConfigError naming the key
    return {k: dict(v) for k, v in overrides.items() if v}


def parse_toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None


def to_toml(overrides: dict[str, Any]) -> str:
    """Minimal TOML for flat sections of scalars (what the editor holds)."""
    lines = []
    for section in EDITABLE_SECTIONS:
        values = overrides.get(section)
        if not values:
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


#: Which value wins, as the Training page states it (one precedence for every key)
PRECEDENCE = ("Which value wins: (1) this project's settings on this page: a key is set "
              "either by its form field or in the TOML box, and setting both to different "
              "values is an error; (2) the worker's config file (`CONCNER_CONFIG`) and its "
              "`CONCNER_*` environment; (3) the defaults in `concner/config.py`.")


def form_labels() -> dict[tuple[str, str], str]:
    return {(section, name): label for section, name, label in FORM_FIELDS}


def merge_form(overrides: dict[str, Any], values: dict[tuple[str, str], Any]
               ) -> dict[str, dict[str, Any]]:
    """The project's overrides with the form's values applied: a value equal to the default
    removes the override, any other value sets it; fields not in the form are kept.

    ``overrides`` is what the TOML box holds; it must not set a form field to another value
    than the form does (that value would be dropped without a word): raises
    :class:`ConfigError` naming the key, both values and which one wins.
    """
    labels = form_labels()
    for (section, name), value in values.items():
        boxed = (overrides or {}).get(section, {})
        if name in boxed and boxed[name] != value:
            raise ConfigError(
                f"{section}.{name} is set twice: the form field '{labels[(section, name)]}' "
                f"says {value!r}, the TOML box says {boxed[name]!r}. The form field wins; "
                f"delete `{name}` from the TOML box's [{section}] table, or set the form "
                "field to the value you want.")
    defaults = Config()
    out = {k: dict(v) for k, v in (overrides or {}).items()}
    for (section, name), value in values.items():
        if getattr(getattr(defaults, section), name) == value:
            out.get(section, {}).pop(name, None)
        else:
            out.setdefault(section, {})[name] = value
    return {k: v for k, v in out.items() if v}
