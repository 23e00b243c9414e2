"""A real TCP proxy in front of the test Redis that can hold back Redis's replies: a reply
to a blocking pop that is in flight when a signal arrives, as on a loaded network."""

from __future__ import annotations

import socket
import threading
import time

import redis


class SlowRedisProxy:
    """Forwards 127.0.0.1:<port> to the Redis of `upstream_url`; while `reply_delay` is set,
    each chunk Redis sends is passed on that many seconds late (in order)."""

    def __init__(self, upstream_url: str) -> None:
        kwargs = redis.Redis.from_url(upstream_url).connection_pool.connection_kwargs
        self._path = kwargs.get("path")
        self._address = (kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379))
        self.db = kwargs.get("db", 0)
        self.reply_delay = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._listener.getsockname()[1]}/{self.db}"

    def _upstream(self) -> socket.socket:
        if self._path:
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self._path)
            return upstream
        return socket.create_connection(self._address)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = self._upstream()
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, replies: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if replies and self.reply_delay:
                    time.sleep(self.reply_delay)
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
