"""Configuration parsing whose errors point at the offending field.

`parse(text, spec)` reads a JSON configuration against a small spec and stops at the
first structural problem (a wrong type, a missing field, an unknown key), with the JSON
Pointer of the field it is about and the words the Rust SDK uses, so that an operator
reads the same message whichever language a plugin is written in. `Problems` then
collects the plugin's own checks, so that an operator sees them all at once.

A spec is:
- `str`, `int`, `float` or `bool`;
- a list of one spec, `[str]`: a JSON array of such values;
- `optional(spec)`: the field may be missing or null (it then reads as None);
- `one_of("a", "b")`: one of these strings;
- a dict of field names to specs: a JSON object with exactly those fields (an unknown
  key is an error, so that a typo is not a silent default).
"""

import json
from dataclasses import dataclass
from typing import Any, List


@dataclass
class ConfigError:
    """A problem at `path`, a JSON Pointer (RFC 6901) such as `/countries/2`; "" for
    the whole document."""

    path: str
    message: str


class ConfigErrors(Exception):
    """Every problem of a configuration. Raise it from `prepare`."""

    def __init__(self, errors: List[ConfigError]):
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = errors


class Problems:
    """Collects every problem of a configuration."""

    def __init__(self):
        self.errors: List[ConfigError] = []

    def push(self, path: str, message: str) -> None:
        self.errors.append(ConfigError(path, message))

    def names(self, path: str, names: List[str]) -> None:
        """Check that a list of names is not empty and holds no blank name."""
        if not names:
            self.push(path, "name at least one value")
        for i, name in enumerate(names):
            if not name.strip():
                self.push(f"{path}/{i}", "must not be blank")

    def finish(self, value: Any = None) -> Any:
        """`value` if no problem was pushed; raises `ConfigErrors` with every problem
        otherwise."""
        if self.errors:
            raise ConfigErrors(list(self.errors))
        return value


class optional:
    """A field that may be missing or null."""

    def __init__(self, spec: Any):
        self.spec = spec


class one_of:
    """One of a fixed set of strings, such as an operator's name."""

    def __init__(self, *names: str):
        self.names = names


def pointer(path: str, key: Any) -> str:
    """`path` extended by one key or index, escaped as RFC 6901 asks (`~` first)."""
    return f"{path}/" + str(key).replace("~", "~0").replace("/", "~1")


def parse(text: str, spec: dict) -> dict:
    """The configuration `text` read against `spec` (a dict of fields): a dict with
    every field of the spec, optional ones missing as None. Raises `ConfigErrors` with
    the first problem found."""
    try:
        document = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as e:
        raise ConfigErrors([ConfigError("", f"not JSON: {e.msg}")]) from None
    return _read(document, spec, "")


class _Pairs(list):
    """An object's members in document order, repeats kept, so that a key given twice
    is an error rather than the later one silently winning."""


def _fail(path: str, message: str):
    raise ConfigErrors([ConfigError(path, message)])


def _unexpected(value: Any) -> str:
    """How serde names a JSON value it did not expect."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, _Pairs):
        return "map"
    return "sequence"


def _expected(spec: Any) -> str:
    if isinstance(spec, optional):
        return _expected(spec.spec)
    if isinstance(spec, list):
        return "a sequence"
    if isinstance(spec, dict):
        return "an object"
    if isinstance(spec, one_of):
        return "one of " + ", ".join(f"`{n}`" for n in spec.names)
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}[spec]


def _wrong_type(value: Any, spec: Any, path: str):
    _fail(path, f"invalid type: {_unexpected(value)}, expected {_expected(spec)}")


def _read(value: Any, spec: Any, path: str) -> Any:
    if isinstance(spec, optional):
        return None if value is None else _read(value, spec.spec, path)
    if isinstance(spec, dict):
        if not isinstance(value, _Pairs):
            _wrong_type(value, spec, path)
        return _object(value, spec, path)
    if isinstance(spec, list):
        if not isinstance(value, list) or isinstance(value, _Pairs):
            _wrong_type(value, spec, path)
        return [_read(item, spec[0], pointer(path, i)) for i, item in enumerate(value)]
    if isinstance(spec, one_of):
        if not isinstance(value, str):
            _wrong_type(value, spec, path)
        if value not in spec.names:
            _fail(path, f"unknown variant `{value}`, expected {_expected(spec)}")
        return value
    # bool is a subclass of int in Python, and JSON's 1 is not a float's 1.0 in serde:
    # match the type exactly, but let an integer stand for a float.
    if type(value) is spec or (spec is float and type(value) is int):
        return value
    _wrong_type(value, spec, path)


def _object(pairs: "_Pairs", spec: dict, path: str) -> dict:
    out = {}
    for key, value in pairs:
        if key not in spec:
            fields = list(spec)
            if not fields:
                expected = "there are no fields"
            elif len(fields) == 1:
                expected = f"expected `{fields[0]}`"
            else:
                expected = "expected one of " + ", ".join(f"`{f}`" for f in fields)
            _fail(pointer(path, key), f"unknown field `{key}`, {expected}")
        if key in out:
            _fail(path, f"duplicate field `{key}`")
        out[key] = _read(value, spec[key], pointer(path, key))
    for key, field in spec.items():
        if key not in out:
            if not isinstance(field, optional):
                _fail(path, f"missing field `{key}`")
            out[key] = None
    return out
