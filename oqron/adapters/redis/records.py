"""How a job record maps onto a Redis hash: id, queue and status raw, capped lists as JSON lines,
every other field as JSON. The Lua scripts rely on the first two rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ... import codec
from ..base import APPEND_CAPS

RAW_FIELDS = frozenset({"id", "queue", "status"})


def encode_value(field: str, value: Any) -> str:
    if field in RAW_FIELDS:
        return str(value)
    if field in APPEND_CAPS:
        return encode_lines(value or [])
    return codec.dumps(value)


def encode_lines(entries: Sequence[Any]) -> str:
    return "\n".join(codec.dumps(entry) for entry in entries)


def encode_fields(changes: Mapping[str, Any]) -> list[str]:
    flat: list[str] = []
    for field, value in changes.items():
        flat.append(field)
        flat.append(encode_value(field, value))
    return flat


def decode_record(flat: Mapping[str, str] | Sequence[str]) -> dict[str, Any]:
    """Decode field by field; a field that is not valid JSON is left out and named in
    ``corrupt`` (the storage contract's answer to damaged records)."""
    if not isinstance(flat, Mapping):
        flat = dict(zip(flat[::2], flat[1::2], strict=True))
    record: dict[str, Any] = {}
    damaged = []
    for field, text in flat.items():
        try:
            record[field] = _decode_field(field, text)
        except ValueError as exc:
            damaged.append(f"field {field!r}: {exc}")
    if damaged:
        record["corrupt"] = "; ".join(damaged)
    return record


def _decode_field(field: str, text: str) -> Any:
    if field in RAW_FIELDS:
        return text
    if field in APPEND_CAPS:
        return [codec.loads(line) for line in text.split("\n")] if text else []
    return codec.loads(text)
