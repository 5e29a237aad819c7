"""How a settings field reads its environment variable (``EnvVar``) and the helpers that
declare one (``env_field``, ``choice_field``): the parsing half of ``shared.config``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, NoReturn, get_args

__all__ = ["ConfigError", "EnvVar", "choice_field", "env_field"]


class ConfigError(ValueError):
    """A configuration problem; the message names the offending variable."""


ConfigError.__module__ = "shared.config"  # where callers import it from (and tracebacks say)

_INT_RE = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0*)?")


@dataclass(frozen=True, slots=True)
class EnvVar:
    """How one field reads its environment variable, and the rules its value obeys.

    The messages are pydantic's (the settings were a pydantic model); a stdlib dataclass
    keeps pydantic off a cold start's path to its first refused request (issue 17).
    """

    name: str
    kind: Literal["str", "int", "decimal", "csv", "choice"] = "str"
    ge: int | None = None
    le: int | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None

    def parse(self, raw: str) -> Any:
        """The typed value of ``raw`` (lax, as an environment is all strings), checked."""
        value: Any = raw
        if self.kind == "int":
            text = raw.strip()
            if not _INT_RE.fullmatch(text):
                self._fail("Input should be a valid integer, unable to parse string as an integer")
            value = int(text.partition(".")[0])
        elif self.kind == "decimal":
            try:
                value = Decimal(raw.strip())
            except InvalidOperation:
                self._fail("Input should be a valid decimal")
        elif self.kind == "csv":
            value = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """Raise ``ConfigError`` naming the variable when ``value`` breaks a rule."""
        if value is None:  # an optional variable left unset
            return
        if self.choices and value not in self.choices:
            quoted = [repr(c) for c in self.choices]
            self._fail(f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            self._fail(f"String should match pattern {self.pattern!r}")
        if isinstance(value, Decimal) and not value.is_finite():
            self._fail("Input should be a finite number")
        if self.ge is not None and value < self.ge:
            self._fail(f"Input should be greater than or equal to {self.ge}")
        if self.le is not None and value > self.le:
            self._fail(f"Input should be less than or equal to {self.le}")

    def _fail(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.name}: {message}")


def env_field(name: str, default: Any, **rules: Any) -> Any:
    """A settings field read from the environment variable ``name``."""
    return field(default=default, metadata={"env": EnvVar(name, **rules)})


def choice_field(name: str, default: str | None, choices: Any) -> Any:
    return env_field(name, default, kind="choice", choices=get_args(choices))
