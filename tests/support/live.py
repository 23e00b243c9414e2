"""Clients that talk to the live server over real HTTP and a real Socket.IO connection."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import socketio

from helpdesk.connectors.api import sign


class ApiClient:
    """requests against the live server; `as_(agent)` sets the bearer token."""

    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url
        self.token = token
        self.session = requests.Session()

    def as_(self, who) -> ApiClient:
        return ApiClient(self.base_url, who.token if who is not None else None)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.session.request(method, self.base_url + path, headers=headers, timeout=30,
                                    **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def post_api_webhook(self, channel, payload: dict | bytes, secret: str = "s3cret",
                         timestamp: int | None = None) -> requests.Response:
        """A webhook in the generic `api` format, signed like an integrator would."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return self.session.post(
            f"{self.base_url}/webhooks/api/{channel.key}", data=body, timeout=30,
            headers={"Content-Type": "application/json", "X-Helpdesk-Timestamp": ts,
                     "X-Helpdesk-Signature": sign(secret, ts, body)})


def api_message(event_id: str = "evt-1", message_id: str = "m-1", text: str = "Hello",
                email: str | None = "ana@example.com", **extra: Any) -> dict:
    customer = {"name": extra.pop("name", "Ana"), "email": email}
    customer.update(extra.pop("customer", {}))
    message = {"id": message_id, "text": text}
    message.update(extra)
    return {"event_id": event_id, "type": "message", "customer": customer, "message": message}


class SocketClient:
    """A real Socket.IO client that records every event it receives."""

    def __init__(self, base_url: str, namespace: str):
        self.base_url = base_url
        self.namespace = namespace
        self.client = socketio.Client(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._changed = threading.Condition()
        self.client.on("*", self._record, namespace=namespace)

    def _record(self, event: str, data: Any = None) -> None:
        with self._changed:
            self.events.append((event, data))
            self._changed.notify_all()

    def connect(self, token: str | None) -> None:
        self.client.connect(self.base_url, namespaces=[self.namespace],
                            auth={"token": token} if token else None,
                            transports=["websocket"], wait_timeout=10)

    def call(self, event: str, data: Any) -> Any:
        return self.client.call(event, data, namespace=self.namespace, timeout=10)

    def wait_for(self, event: str, where: Callable[[Any], bool] = lambda data: True,
                 timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for name, data in self.events:
                    if name == event and where(data):
                        return data
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [name for name, _ in self.events]
                    raise AssertionError(f"no {event} within {timeout}s; saw {seen}")
                self._changed.wait(remaining)

    def names(self) -> list[str]:
        with self._changed:
            return [name for name, _ in self.events]

    def disconnect(self) -> None:
        if self.client.connected:
            ws = getattr(self.client.eio, "ws", None)
            if ws is not None:
                # websocket-client waits 3 s for the server's close frame by default; the
                # server has already seen the engine.io CLOSE packet by then.
                ws.close = functools.partial(ws.close, timeout=0.2)
            self.client.disconnect()
