"""The node registry: each master publishes who it is and how it is doing; dead ones drop out."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ..adapters.base import Storage

NAMESPACE = "nodes"
#: A node whose heartbeat is older than this is shown as gone.
ALIVE_WITHIN = 10.0
#: Records of nodes silent for this long are deleted by the leader.
FORGET_AFTER = 300.0


class NodeRegistry:
    def __init__(self, storage: Storage, node_id: str, region: str) -> None:
        self.storage = storage
        self.node_id = node_id
        self.static = {
            "node_id": node_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "region": region,
            "started_at": time.time(),
        }

    def heartbeat(self, workers: int, busy: int, leading: list[int]) -> None:
        doc: dict[str, Any] = {**self.static, "workers": workers, "busy": busy,
                               "leader_shards": leading, "heartbeat": time.time()}
        self.storage.put_doc(NAMESPACE, self.node_id, doc)

    def remove(self) -> None:
        self.storage.delete_doc(NAMESPACE, self.node_id)


def live_nodes(storage: Storage, now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    nodes = [d for d in storage.list_docs(NAMESPACE).values() if now - d.get("heartbeat", 0) <= ALIVE_WITHIN]
    return sorted(nodes, key=lambda d: d["node_id"])


def forget_dead(storage: Storage, now: float | None = None) -> int:
    now = time.time() if now is None else now
    dead = [k for k, d in storage.list_docs(NAMESPACE).items() if now - d.get("heartbeat", 0) > FORGET_AFTER]
    for key in dead:
        storage.delete_doc(NAMESPACE, key)
    return len(dead)
