"""JSON as the only wire format: strict validation with a path, and one encoder for every adapter.

oqron never pickles. Job data and return values must be plain JSON so that any process, in any
language, can read a job record; ``check_json`` rejects everything else before it is stored
and names where the offending value sits (``data["user"]["created"]: datetime is not JSON``).
Encoding uses orjson: the job path encodes and decodes every record, and it is several times
faster than the standard library there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import orjson

_SCALARS = (str, bool, type(None))
INT_RANGE = (-(2**63), 2**64 - 1)


def dumps(value: Any) -> str:
    """Encode a value already checked with ``check_json`` (compact UTF-8 JSON)."""
    return orjson.dumps(value).decode()


#: Like ``dumps``, as bytes (what sockets and Redis want anyway): orjson's own function, not a
#: wrapper, since the add and finish paths call it for every field they write.
dumpb: Callable[[Any], bytes] = orjson.dumps


def loads(text: str | bytes) -> Any:
    """Decode JSON; raises ``ValueError`` on invalid input."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None


def check_json(value: Any, path: str = "data", max_depth: int = 100) -> None:
    """Raise ``TypeError`` naming the path of the first value that is not plain JSON.

    Allowed: dict with str keys, list, str, int, float (finite), bool, None. Tuples, sets,
    datetimes, bytes, custom objects and NaN/inf are refused rather than silently changed.
    """
    if not _plain(value, max_depth):
        _check(value, path, max_depth)  # again, slowly, to say where


def _plain(value: Any, depth: int) -> bool:
    """The check without paths: building them for every key would cost more than the test."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is int:
        return bool(INT_RANGE[0] <= value <= INT_RANGE[1])
    if kind is float:
        return math.isfinite(value)
    if depth <= 0:
        return False
    # Loops rather than all() over a generator, and strings, booleans and None passed without a
    # call: job data is mostly those, and an add often runs on a cold cache.
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) not in _SCALARS and not _plain(item, depth - 1):
                return False
        return True
    if kind is list:
        for item in value:
            if type(item) not in _SCALARS and not _plain(item, depth - 1):
                return False
        return True
    return False


def _check(value: Any, path: str, depth: int) -> None:
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is int:
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise TypeError(f"{path}: integer {value} is outside the 64-bit range JSON readers agree on")
        return
    if kind is float:
        if not math.isfinite(value):
            raise TypeError(f"{path}: {value!r} is not JSON (NaN and infinity are not allowed)")
        return
    if depth <= 0:
        raise TypeError(f"{path}: nested too deeply to be stored as JSON")
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(
                    f"{path}: key {key!r} is {type(key).__name__}, JSON object keys must be str"
                )
            _check(item, f"{path}[{json.dumps(key, ensure_ascii=False)}]", depth - 1)
        return
    if kind is list:
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth - 1)
        return
    hint = " (use a list)" if isinstance(value, (tuple, set, frozenset)) else ""
    raise TypeError(f"{path}: {kind.__name__} is not JSON{hint}")
