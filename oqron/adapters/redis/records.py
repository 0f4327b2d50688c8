"""How a job record maps onto a Redis hash: id, queue and status raw, capped lists as JSON lines,
every other field as JSON. The Lua scripts rely on the first two rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ... import codec
from ...job import OPTIONAL_FIELDS
from ..base import APPEND_CAPS

RAW_FIELDS = frozenset({"id", "queue", "status"})
_SCALAR_DEFAULTS = {k: v for k, v in OPTIONAL_FIELDS.items() if v != []}
_LIST_DEFAULTS = tuple(k for k, v in OPTIONAL_FIELDS.items() if v == [])
_dumpb = codec.dumpb
_REQUIRED = object()  # OPTIONAL_FIELDS' answer for a field every record stores


def encode_value(field: str, value: Any) -> str | bytes:
    """A field's stored text: raw for id/queue/status, JSON lines for the capped lists, JSON
    (the encoder's bytes) for the rest."""
    if field in RAW_FIELDS:
        return str(value)
    return encoder_of(field)(value)


def encoder_of(field: str) -> Callable[[Any], bytes]:
    """How a JSON field (not id/queue/status) is encoded: chosen once by a caller that encodes
    the field often."""
    if field in RAW_FIELDS:
        raise ValueError(f"{field} is stored raw, not as JSON")
    return _encode_list if field in APPEND_CAPS else _dumpb


def encode_lines(entries: Sequence[Any]) -> bytes:
    return b"\n".join([_dumpb(entry) for entry in entries])


def _encode_list(value: Sequence[Any] | None) -> bytes:
    return encode_lines(value or ())


def encode_fields(changes: Mapping[str, Any]) -> list[str | bytes]:
    flat: list[str | bytes] = []
    for field, value in changes.items():
        flat.append(field)
        flat.append(encode_value(field, value))
    return flat


def encode_new(record: Mapping[str, Any], skip: frozenset[str] = RAW_FIELDS) -> list[str | bytes]:
    """A new record's fields but ``skip`` (id/queue/status by default) and the optional fields
    that hold their default (fewer fields to write on every add; reading fills them back).
    One pass, no intermediate dict: an add often runs on a cold cache."""
    flat: list[str | bytes] = []
    for field, value in record.items():
        if field in skip:
            continue
        default = OPTIONAL_FIELDS.get(field, _REQUIRED)
        if default is not _REQUIRED and value == default:
            continue
        flat.append(field)
        flat.append(encode_value(field, value))
    return flat


def decode_record(flat: Mapping[str, str] | Sequence[str]) -> dict[str, Any]:
    """Decode a record; a field that is not valid JSON is left out and named in ``corrupt``
    (the storage contract's answer to damaged records)."""
    if not isinstance(flat, Mapping):
        flat = dict(zip(flat[::2], flat[1::2], strict=True))
    try:
        record = _decode_whole(flat)
    except ValueError:
        record = _decode_fields(flat)
    return _filled(record)


def _filled(record: dict[str, Any]) -> dict[str, Any]:
    """The record with the optional fields it omits (see ``encode_new``) at their defaults."""
    filled = dict(_SCALAR_DEFAULTS)
    filled.update(record)
    for field in _LIST_DEFAULTS:
        if field not in filled:
            filled[field] = []  # a list of its own: records are mutable
    return filled


def _decode_whole(flat: Mapping[str, str]) -> dict[str, Any]:
    """Every JSON field spliced into one document and parsed by one call: a record is read
    for every job, and one parse of the whole costs a fraction of a parse per field."""
    parts = []
    record: dict[str, Any] = {}
    for field, text in flat.items():
        if field in RAW_FIELDS:
            record[field] = text
            continue
        if field in APPEND_CAPS:
            text = "[" + text.replace("\n", ",") + "]"
        elif not text or '"' in field or "\\" in field:
            raise ValueError(field)  # let the per-field path judge it
        parts.append(f'"{field}":{text}')
    whole = codec.loads("{" + ",".join(parts) + "}")
    if len(whole) != len(parts):  # a damaged value swallowed or added keys: judge field by field
        raise ValueError("fields")
    record.update(whole)
    return record


def _decode_fields(flat: Mapping[str, str]) -> dict[str, Any]:
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
