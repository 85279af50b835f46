"""How a setting is declared: once, as a field of a section dataclass in :mod:`concner.config`.

:func:`setting` returns the :func:`dataclasses.field` of one setting, with a :class:`Spec`
in its metadata: the help text, the allowed range (``ge``/``gt``/``le``/``lt``) or
``choices``, and the setting's label in the app's Training form (``form``; None = not in
the form). Everything else reads that metadata: :func:`check_section` makes the range and
choice checks of :func:`concner.config.validate`, :func:`form_fields` the Training form's
fields, :meth:`Spec.allowed` the wording of the allowed values (errors, command-line help).
:func:`build_section` turns TOML or environment values into a section (each value is
coerced to the type of the setting's default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from concner.errors import ConfigError

#: key of a setting's :class:`Spec` in its dataclass field's metadata
SPEC_KEY = "concner.setting"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Spec:
    """What a setting means and which values it takes (bounds are inclusive for ``ge``/``le``,
    exclusive for ``gt``/``lt``; no bound and no choices = any value of its type)."""

    help: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()
    #: the label of the setting's widget in the app's Training form (None = not shown)
    form: str | None = None

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``"in [0, 1)"``, ``">= 1"``, ``"one of kl, mse"``
        (empty when anything of the setting's type goes)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        low = (f"[{_number(self.ge)}" if self.ge is not None
               else f"({_number(self.gt)}" if self.gt is not None else None)
        high = (f"{_number(self.le)}]" if self.le is not None
                else f"{_number(self.lt)})" if self.lt is not None else None)
        if low and high:
            return f"in {low}, {high}"
        if low:
            return (">= " if low[0] == "[" else "> ") + low[1:]
        if high:
            return ("<= " if high[-1] == "]" else "< ") + high[:-1]
        return ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (``"must be ..., got ..."``), or None when it is."""
        if self.choices:
            ok = value in self.choices
        else:
            ok = ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                  and (self.le is None or value <= self.le)
                  and (self.lt is None or value < self.lt))
        if ok:
            return None
        return f"must be {self.allowed()}, got {value!r}" + (f" ({self.help})" if self.help
                                                              else "")


def setting(default: Any, *, help: str = "", ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None,
            choices: Iterable[str] = (), form: str | None = None) -> Any:
    """The dataclass field of one setting (see :class:`Spec` for the arguments)."""
    spec = Spec(help=help, ge=ge, gt=gt, le=le, lt=lt, choices=tuple(choices), form=form)
    return field(default=default, metadata={SPEC_KEY: spec})


def spec_of(f: dataclasses.Field) -> Spec:
    """The :class:`Spec` of a dataclass field (an empty one for a field declared without
    :func:`setting`)."""
    return f.metadata.get(SPEC_KEY) or Spec()


def setting_spec(cls: type, name: str) -> Spec:
    """The :class:`Spec` of setting ``name`` of section dataclass ``cls``."""
    return spec_of(next(f for f in fields(cls) if f.name == name))


def check_setting(cls: type, section: str, name: str, value: Any) -> None:
    """The declared range or choice check of one setting, for a value that reaches code
    without passing through a config (raises :class:`ConfigError` as :func:`check_section`)."""
    problem = setting_spec(cls, name).problem(value)
    if problem is not None:
        raise ConfigError(f"{section}.{name} {problem}")


def check_section(section: str, values: Any) -> None:
    """Range and choice checks of one section (an instance of its dataclass); raises
    :class:`ConfigError` naming the key, the allowed values and the value given."""
    for f in fields(values):
        problem = spec_of(f).problem(getattr(values, f.name))
        if problem is not None:
            raise ConfigError(f"{section}.{f.name} {problem}")


def form_fields(sections: Mapping[str, type]) -> tuple[tuple[str, str, str], ...]:
    """``(section, field, label)`` of every setting with a form label, in declaration order."""
    return tuple((section, f.name, spec_of(f).form) for section, cls in sections.items()
                 for f in fields(cls) if spec_of(f).form)


def coerce_value(section: str, name: str, current: Any, value: Any) -> Any:
    """``value`` (from TOML or the environment) as the type of ``current`` (the default)."""
    key = f"{section}.{name}"
    if isinstance(current, bool):
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if isinstance(current, int):
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a whole number, got {value!r}") from None
    if isinstance(current, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if isinstance(current, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    return value


def build_section(cls: type, section: str, values: Mapping[str, Any]) -> Any:
    """An instance of section dataclass ``cls`` with ``values`` over its defaults; raises
    :class:`ConfigError` on an unknown key or a value of the wrong type."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) in [{section}]: {', '.join(unknown)}; known: {', '.join(known)}"
        )
    default = cls()
    kwargs = {n: coerce_value(section, n, getattr(default, n), v) for n, v in values.items()}
    return cls(**kwargs)
