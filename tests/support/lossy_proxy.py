"""A TCP proxy on loopback in front of a Redis server that can lose a reply: the network failing
after the server ran a command and before its answer came back, which no client-side fault
injection can stage faithfully.

``cut_after(marker)``: the next request containing ``marker`` is passed on; when the server's
reply to it arrives, the proxy drops it and closes both sides of that connection. Later
connections pass through untouched.
"""

from __future__ import annotations

import socket
import threading

from .ports import free_port


class LossyProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.cuts = 0  # replies dropped so far
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, name="lossy-proxy", daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def cut_after(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            link = _Link(client, server)
            threading.Thread(target=self._upstream, args=(link,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(link,), daemon=True).start()

    def _upstream(self, link: _Link) -> None:
        while (data := _recv(link.client)) is not None:
            with self._lock:
                if self._marker is not None and self._marker in data:
                    self._marker, link.cutting = None, True
            try:
                link.server.sendall(data)
            except OSError:
                break
        link.close()

    def _downstream(self, link: _Link) -> None:
        while (data := _recv(link.server)) is not None:
            if link.cutting:  # the command ran: its reply is lost with the connection
                with self._lock:
                    self.cuts += 1
                break
            try:
                link.client.sendall(data)
            except OSError:
                break
        link.close()


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.cutting = False

    def close(self) -> None:
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def _recv(sock: socket.socket) -> bytes | None:
    try:
        data = sock.recv(65536)
    except OSError:
        return None
    return data or None
