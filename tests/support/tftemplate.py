"""Terraform's ``templatefile()`` for the templates under terraform/, in Python.

Renders a template the way Terraform does, so a test can hand the result to the parser
the cloud uses (YAML, JSON, protobuf): ``$${`` and ``%%{`` are literal ``${`` and ``%{``;
``${ expr }`` is replaced by the expression's value, where ``expr`` is the subset of HCL
the templates use: a variable, ``.attr`` and ``["key"]``/``[0]`` traversals, string and
number literals, and the functions below. As in Terraform, an undefined variable or key
fails the render, and so does a value that is not a string, number or bool (Terraform:
"Cannot include the given value in a string template: string required"). Template
directives (``%{ if }``, ``%{ for }``) and strip markers (``~``) are refused rather than
guessed at: a template that starts using them needs this renderer extended first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["TemplateError", "render_template", "tf_jsonencode"]


class TemplateError(ValueError):
    """The template cannot be rendered (Terraform would refuse it too)."""


def tf_jsonencode(value: Any) -> str:
    """Terraform's jsonencode: compact, object keys sorted, HTML characters escaped (Go)."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "jsonencode": tf_jsonencode,
    "tostring": lambda v: _to_string(v),
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
      | (?P<punct>[.\[\](),])
    )""",
    re.VERBOSE,
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise TemplateError(f"unsupported template expression: {expr!r} at {pos}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, expr: str, variables: dict[str, Any]) -> None:
        self.expr = expr
        self.tokens = _tokens(expr)
        self.pos = 0
        self.variables = variables

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise TemplateError(f"{self.expr!r}: expected {value or 'more'}, got {token}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        value = self.value()
        if self.peek() is not None:
            raise TemplateError(f"{self.expr!r}: unexpected {self.peek()}")
        return value

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            if "${" in text or "%{" in text:
                raise TemplateError(f"{self.expr!r}: nested templates are not supported")
            result: Any = json.loads(text)
        elif kind == "number":
            result = float(text) if "." in text else int(text)
        elif kind == "name" and text in ("true", "false", "null"):
            result = {"true": True, "false": False, "null": None}[text]
        elif kind == "name" and self.peek() == ("punct", "("):
            result = self.call(text)
        elif kind == "name":
            if text not in self.variables:
                raise TemplateError(f"vars map does not contain key {text!r}")
            result = self.variables[text]
        else:
            raise TemplateError(f"{self.expr!r}: unexpected {text!r}")
        return self.traversals(result)

    def call(self, name: str) -> Any:
        function = FUNCTIONS.get(name)
        if function is None:
            raise TemplateError(f"function {name!r} is not supported by this renderer")
        self.take("(")
        args = []
        while self.peek() != ("punct", ")"):
            args.append(self.value())
            if self.peek() == ("punct", ","):
                self.take(",")
        self.take(")")
        return function(*args)

    def traversals(self, value: Any) -> Any:
        while (token := self.peek()) in (("punct", "."), ("punct", "[")):
            self.take()
            if token == ("punct", "."):
                key: Any = self.take()[1]
            else:
                key = self.value()
                self.take("]")
            value = _index(value, key, self.expr)
        return value


def _index(value: Any, key: Any, expr: str) -> Any:
    if isinstance(value, dict) and isinstance(key, str) and key in value:
        return value[key]
    if isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
        return value[key]
    raise TemplateError(f"{expr!r}: the given key {key!r} does not identify an element")


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    if value is None:
        raise TemplateError("the expression result is null")
    raise TemplateError(
        f"cannot include the given value in a string template: string required, "
        f"got {type(value).__name__}"
    )


def _expression_end(text: str, start: int) -> int:
    """Index of the ``}`` closing the expression that starts at ``start``."""
    depth, pos = 0, start
    while pos < len(text):
        char = text[pos]
        if char == '"':
            pos += 1
            while pos < len(text) and text[pos] != '"':
                pos += 2 if text[pos] == "\\" else 1
        elif char in "{[(":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "}":
            if depth == 0:
                return pos
            depth -= 1
        pos += 1
    raise TemplateError(f"unterminated template expression at offset {start - 2}")


def render_template(text: str, variables: dict[str, Any]) -> str:
    """``templatefile(path, variables)`` for a template read from ``path``."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text.startswith(("$${", "%%{"), pos):
            out.append(text[pos + 1 : pos + 3])
            pos += 3
        elif text.startswith("%{", pos):
            raise TemplateError(f"template directives are not supported (offset {pos})")
        elif text.startswith("${", pos):
            end = _expression_end(text, pos + 2)
            expr = text[pos + 2 : end]
            if expr.startswith("~") or expr.endswith("~"):
                raise TemplateError(f"strip markers are not supported (offset {pos})")
            out.append(_to_string(_Parser(expr.strip(), variables).parse()))
            pos = end + 1
        else:
            out.append(text[pos])
            pos += 1
    return "".join(out)
