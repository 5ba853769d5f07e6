"""The one YAML loader for landing-zone files: rules, budgets, anomaly settings, policies, alerts (no Dagster here).

``load(data, path)`` reads one YAML document with PyYAML's safe constructors (mappings, lists and
scalars, never Python objects) and three changes every reader relies on:

- a key written twice in one mapping is refused, naming both lines (plain YAML keeps the last silently);
- decimals load as ``Decimal`` from their text, never through a float; float-like text with no decimal
  value (``.inf``, ``.nan``, sexagesimal ``1:30.5``) and int-like text without digits (``0x_``) stay
  their text, refused by a reader where it reads a number;
- dates and timestamps stay their text: each reader parses the dates it expects and names the entry
  when one is impossible (``2026-13-01``).

``load(data, path, text=True)`` resolves no types at all: every scalar is its text (``0.1``, ``yes``,
``~`` stay text), for a reader that types every value itself (budgets).

Bytes must be UTF-8 (a leading BOM is allowed). Every problem is one ``YamlError`` line,
``<path>: line L, column C: not valid YAML: <problem>``, which each reader re-raises as its own error
class with the same text.

Two helpers give every reader the same words for its own errors: ``describe(value)`` says what a loaded
value is (``must be a list, not a mapping``), ``did_you_mean(name, choices)`` suggests the closest allowed
name for a misspelt one.
"""

from __future__ import annotations

import codecs
import difflib
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """A YAML file that cannot be read: one line naming the file, the line and column, and the problem."""


def load(data: bytes | str, path: str, *, text: bool = False) -> object:
    """Safe YAML (no Python objects): a key written twice in one mapping is refused (both lines named);
    decimals load as Decimal, never float (.inf/.nan as their text, refused where a number is read);
    dates and timestamps as their text (each reader parses the dates it expects and names the entry when
    one is impossible). text=True: every scalar is its text (no types resolved at all)."""
    document = _utf8(data, path) if isinstance(data, bytes) else data
    try:
        return yaml.load(document, Loader=_TextLoader if text else _Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(", ".join(part for part in (e.context, e.problem) if part).split())
        if mark is None:
            raise YamlError(f"{path}: not valid YAML: {problem}") from None
        raise _error(path, mark.line + 1, mark.column + 1, problem) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (control characters)
        line, column = _line_and_column(document[:e.position])
        raise _error(path, line, column, f"character U+{e.character:04X} is not allowed ({e.reason})") from None


def describe(value: object) -> str:
    """What a loaded value is, for an error that names what was expected instead: ``empty (null)``,
    ``a boolean (true)``, ``a number (3)``, ``the text 'x'``, ``a mapping``, ``a list``, else the type's name."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | Decimal):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'closest'?)`` for the allowed name closest to a misspelt ``name`` (difflib), or ``""``
    when none is close; written straight after the name in an error."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def fields_problem(node: object, allowed: tuple[str, ...], required: tuple[str, ...] = (), *,
                   described: Callable[[object], str] = describe) -> str | None:
    """What is wrong with a mapping of named fields, for the reader to raise with its own error class and place:
    not a mapping (``described`` says what it is), an unknown field (with ``did_you_mean`` and the allowed
    ones), a missing required field; None when nothing is."""
    if not isinstance(node, dict):
        return f"must be a mapping of {', '.join(allowed)}, not {described(node)}"
    for key in node:
        if key not in allowed:
            return f"unknown field {key!r}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}"
    for key in required:
        if key not in node:
            return f"missing required field {key!r}"
    return None


def _utf8(data: bytes, path: str) -> str:
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = _line_and_column(data[:e.start].decode("utf-8"))
        raise _error(path, line, column, f"byte 0x{data[e.start]:02x} is not UTF-8 ({e.reason}); "
                                         "a YAML file is UTF-8 text") from None


def _line_and_column(before: str) -> tuple[int, int]:
    """The line and column (from 1) of the character that follows the text ``before``."""
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def _error(path: str, line: int, column: int, problem: str) -> YamlError:
    return YamlError(f"{path}: line {line}, column {column}: not valid YAML: {problem}")


class _RefuseDuplicateKeys:
    """A constructor mix-in: a key written twice in one mapping is an error naming both lines."""

    def construct_mapping(self, node, deep=False):
        lines: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue  # `<<: *anchor`: the keys written beside it take precedence over the merged ones
            key = self.construct_object(key_node, deep=True)
            if not _hashable(key):
                continue  # refused by the constructor itself ("found unhashable key")
            line = key_node.start_mark.line + 1
            if key in lines:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (lines {lines[key]} and {line})",
                    key_node.start_mark)
            lines[key] = line
        return super().construct_mapping(node, deep)


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class _Loader(_RefuseDuplicateKeys, yaml.SafeLoader):
    """Safe YAML with decimals as ``Decimal`` and dates and timestamps as their text."""


class _TextLoader(_RefuseDuplicateKeys, yaml.BaseLoader):
    """YAML that resolves no types: every scalar is its text."""


def _decimal_or_text(loader: _Loader, node: yaml.ScalarNode) -> Decimal | str:
    """A YAML float as the Decimal of its text (``1_000.5``: 1000.5); ``.inf``, ``.nan`` and sexagesimal
    ``1:30.5`` have no decimal value and stay text."""
    text = loader.construct_scalar(node)
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        return text


def _int_or_text(loader: _Loader, node: yaml.ScalarNode) -> int | str:
    """A YAML int; ``0x_`` or ``0b_`` (YAML 1.1's int patterns, no digit) stay text."""
    try:
        return loader.construct_yaml_int(node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal_or_text)
_Loader.add_constructor("tag:yaml.org,2002:int", _int_or_text)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_scalar)
