"""Redis storage: one hash per job, sorted-set indexes per (queue, status), documents in hashes."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from ... import codec
from ..base import APPEND_CAPS, Storage
from .connection import RedisAdapter, translate_errors
from .records import decode_record, encode_fields, encode_lines, encode_new, encode_value

PRUNE_BATCH = 1000


class RedisStorage(RedisAdapter, Storage):
    scripts_used = ("job_create", "job_update", "job_delete", "job_prune", "job_list", "doc_put")

    def _job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def _index(self, queue: str, status: str | None) -> str:
        return f"{self.prefix}jobs:{queue}:{status or 'all'}"

    @translate_errors
    def create_jobs(self, records: Sequence[Mapping[str, Any]]) -> list[bool]:
        if not records:
            return []
        args: list[Any] = [self.prefix]
        for record in records:
            fields = encode_new(record)
            args += [record["id"], record["queue"], record["status"], len(fields) // 2, *fields]
        flags = self.scripts["job_create"](args=args)
        return [bool(flag) for flag in flags]

    @translate_errors
    def get_job(self, job_id: str) -> dict[str, Any] | None:
        flat = self.client.hgetall(self._job_key(job_id))
        return decode_record(flat) if flat else None

    @translate_errors
    def get_jobs(self, job_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self._job_key(job_id))
        return [decode_record(flat) if flat else None for flat in pipe.execute()]

    @translate_errors
    def update_job(
        self,
        job_id: str,
        changes: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        expect_status: Sequence[str] | None = None,
        append: Mapping[str, Sequence[Any]] | None = None,
    ) -> bool:
        args: list[Any] = [self.prefix, job_id, len(changes), *encode_fields(changes)]
        expect = expect or {}
        args.append(len(expect))
        for field, value in expect.items():
            args += [field, encode_value(field, value) if value is not None else "null"]
        statuses = list(expect_status or ())
        if expect_status is not None and not statuses:
            return False  # no status allowed
        args += [len(statuses), *statuses]
        append = {k: v for k, v in (append or {}).items() if v}
        args.append(len(append))
        for field, entries in append.items():
            args += [field, APPEND_CAPS.get(field, 1000), encode_lines(entries)]
        return bool(self.scripts["job_update"](args=args))

    def _page(
        self, index: str, offset: int, limit: int, oldest_first: bool
    ) -> list[tuple[float, dict[str, Any]]]:
        order = "asc" if oldest_first else "desc"
        rows = self.scripts["job_list"](keys=[index], args=[self.prefix, offset, limit, order])
        return [(float(score), decode_record(flat)) for score, flat in rows]

    @translate_errors
    def list_jobs(
        self,
        queue: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        queues = [queue] if queue is not None else self.queue_names()
        if len(queues) == 1:
            page = self._page(self._index(queues[0], status), offset, limit, oldest_first)
            return [record for _, record in page]
        pages = [self._page(self._index(q, status), 0, offset + limit, oldest_first) for q in queues]
        merged = heapq.merge(
            *pages, key=lambda row: (row[0], row[1]["id"]), reverse=not oldest_first
        )
        return [record for _, record in list(merged)[offset : offset + limit]]

    @translate_errors
    def count_jobs(self, queue: str | None = None, status: str | None = None) -> int:
        queues = [queue] if queue is not None else self.queue_names()
        pipe = self.client.pipeline(transaction=False)
        for name in queues:
            pipe.zcard(self._index(name, status))
        return sum(pipe.execute())

    @translate_errors
    def queue_names(self) -> list[str]:
        return sorted(self.client.smembers(f"{self.prefix}queues"))

    @translate_errors
    def delete_jobs(self, job_ids: Sequence[str]) -> int:
        if not job_ids:
            return 0
        return int(self.scripts["job_delete"](args=[self.prefix, *job_ids]))

    @translate_errors
    def prune_jobs(
        self, queue: str, status: str, *, keep: int | None = None, older_than: float | None = None
    ) -> int:
        if keep is None and older_than is None:
            return 0
        keys = [self._index(queue, status), self._index(queue, None)]
        age_ms = -1 if older_than is None else int(older_than * 1000)
        args = [self.prefix, -1 if keep is None else keep, age_ms, PRUNE_BATCH]
        total = 0
        while True:
            deleted = int(self.scripts["job_prune"](keys=keys, args=args))
            total += deleted
            if deleted < PRUNE_BATCH:
                return total

    def _docs_key(self, namespace: str) -> str:
        return f"{self.prefix}docs:{namespace}"

    @translate_errors
    def put_doc(
        self,
        namespace: str,
        key: str,
        doc: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        fence: int | None = None,
    ) -> bool:
        payload = dict(doc)
        if fence is not None:
            payload["_fence"] = fence
        if expect is None and fence is None:
            self.client.hset(self._docs_key(namespace), key, codec.dumps(payload))
            return True
        if expect is not None:
            _check_scalars(expect)
        args = [key, codec.dumps(payload), "" if expect is None else codec.dumps(dict(expect)),
                "" if fence is None else fence]
        return bool(self.scripts["doc_put"](keys=[self._docs_key(namespace)], args=args))

    @translate_errors
    def get_doc(self, namespace: str, key: str) -> dict[str, Any] | None:
        text = self.client.hget(self._docs_key(namespace), key)
        return codec.loads(text) if text is not None else None

    @translate_errors
    def delete_doc(self, namespace: str, key: str) -> bool:
        return bool(self.client.hdel(self._docs_key(namespace), key))

    @translate_errors
    def list_docs(self, namespace: str) -> dict[str, dict[str, Any]]:
        raw = self.client.hgetall(self._docs_key(namespace))
        return {key: codec.loads(text) for key, text in raw.items()}


def _check_scalars(expect: Mapping[str, Any]) -> None:
    for field, value in expect.items():
        if isinstance(value, (dict, list)):
            raise ValueError(f"expect[{field!r}]: only scalar values can be compared, got {value!r}")
