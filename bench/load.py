"""A bounded HTTP/1.1 load generator over keep-alive connections to 127.0.0.1.

It runs in its own process (spawned, so it never shares the GIL with the Socket.IO client or
the database poller of the bench process) and drives many connections from one `selectors`
loop: a Python client thread per connection would burn the CPU the server needs on this
2-core machine. Requests are built and signed before the clock starts.

Two modes, both bounded by a request count and a duration:

- closed loop: `concurrency` connections, each sends its next request as soon as the previous
  response arrives (the maximum load `concurrency` clients can offer);
- open loop: request i is due at t0 + i/rate whatever the server does; a due request goes out
  on an idle connection (up to `max_connections`), else waits; latency is also reported from
  the due time, so a slow server cannot hide behind a slowed-down client.

With `ports`, the connections go round-robin over several web processes (each new connection
to the next port): the simple load balancer of the scale-out runs (bench/scaling.py).

Timestamps are `time.perf_counter()` (CLOCK_MONOTONIC on Linux: comparable across processes).
"""

from __future__ import annotations

import json
import multiprocessing
import selectors
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass
class LoadSpec:
    port: int
    path: str
    secret: str
    tag: str                      # makes event and message ids unique to this run
    count: int                    # upper bound on requests
    duration: float               # upper bound on seconds of sending
    mode: str = "closed"          # "closed" or "open"
    concurrency: int = 16         # closed loop: connections
    rate: float = 0.0             # open loop: requests per second
    max_connections: int = 64     # open loop: connection pool bound
    customers: int = 8            # distinct customers the messages come from
    drain_timeout: float = 15.0   # seconds to wait for in-flight responses after the end
    # Requests built by the caller (raw_request), sent instead of generated `api` webhooks.
    prebuilt: list[tuple[str, bytes]] | None = None
    ports: tuple[int, ...] = ()   # more web processes: connections go round-robin over
                                  # (port, *ports), a new connection to the next one


@dataclass
class LoadResult:
    keys: list[str] = field(default_factory=list)       # message text of each sent request
    sched: list[float] = field(default_factory=list)    # due time (open loop) or send time
    sent: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)     # 0.0 when no response
    status: list[int] = field(default_factory=list)     # HTTP status, 0 for a transport error
    started: float = 0.0
    finished: float = 0.0
    connections_opened: int = 0
    unsent: int = 0
    reconnects: int = 0
    cpu_s: float = 0.0            # CPU the load generator itself used


def message_key(tag: str, index: int) -> str:
    return f"bench {tag} {index}"


def external_id(tag: str, index: int) -> str:
    return f"m-{tag}-{index}"


def webhook_body(tag: str, index: int, customers: int) -> bytes:
    """A generic `api` webhook (API.md "Webhooks"): one message from one of a few customers."""
    who = index % max(customers, 1)
    payload = {"event_id": f"evt-{tag}-{index}", "type": "message",
               "customer": {"name": f"Bench Customer {who}",
                            "email": f"bench-customer-{who}@example.com"},
               "message": {"id": external_id(tag, index), "text": message_key(tag, index)}}
    return json.dumps(payload).encode()


def raw_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 POST as it goes on the wire (Host and Content-Length added)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def build_requests(spec: LoadSpec) -> list[tuple[str, bytes]]:
    """Pre-built, signed raw HTTP requests (the signature covers a timestamp valid 5 min);
    the caller's own (`spec.prebuilt`) when it gave them."""
    from helpdesk.connectors.api import sign

    if spec.prebuilt is not None:
        return spec.prebuilt
    timestamp = str(int(time.time()))
    built = []
    for index in range(spec.count):
        body = webhook_body(spec.tag, index, spec.customers)
        head = (f"POST {spec.path} HTTP/1.1\r\nHost: {HOST}:{spec.port}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"X-Helpdesk-Timestamp: {timestamp}\r\n"
                f"X-Helpdesk-Signature: {sign(spec.secret, timestamp, body)}\r\n"
                "\r\n")
        built.append((message_key(spec.tag, index), head.encode() + body))
    return built


class _Conn:
    __slots__ = ("sock", "buf", "index", "request", "header_end", "length", "status",
                 "close_after", "served")

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.index = -1   # record of the request in flight, -1 when idle
        self.request = -1
        self.served = 0
        self.header_end = -1
        self.length = 0
        self.status = 0
        self.close_after = False

    def reset(self) -> None:
        self.buf, self.index, self.header_end, self.length = b"", -1, -1, 0
        self.status, self.close_after = 0, False

    def feed(self, data: bytes) -> bool:
        """Add received bytes; True once the whole response is in."""
        self.buf += data
        if self.header_end < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            self.header_end = end + 4
            head = self.buf[:end].decode("latin-1").lower()
            lines = head.split("\r\n")
            self.status = int(lines[0].split(" ", 2)[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name == "content-length":
                    self.length = int(value.strip())
                elif name == "connection" and "close" in value:
                    self.close_after = True
                elif name == "transfer-encoding" and "chunked" in value:
                    raise RuntimeError("chunked responses are not supported by the bench client")
        return len(self.buf) >= self.header_end + self.length


def run(spec: LoadSpec, requests: list[tuple[str, bytes]] | None = None) -> LoadResult:
    """Drive the load in this process; every loop is bounded by count and time."""
    requests = requests if requests is not None else build_requests(spec)
    total = min(spec.count, len(requests))
    result = LoadResult()
    cpu_started = time.process_time()
    sel = selectors.DefaultSelector()
    idle: list[_Conn] = []
    conns: set[_Conn] = set()

    targets = (spec.port, *spec.ports)

    def open_conn() -> _Conn:
        conn = _Conn(targets[result.connections_opened % len(targets)])
        conns.add(conn)
        sel.register(conn.sock, selectors.EVENT_READ, conn)
        result.connections_opened += 1
        return conn

    def drop(conn: _Conn) -> None:
        if conn in conns:
            conns.discard(conn)
            sel.unregister(conn.sock)
            conn.sock.close()
        if conn in idle:
            idle.remove(conn)

    def send(conn: _Conn, index: int, due: float) -> None:
        """Send request `index`; `due` is its scheduled time (0: now, closed loop)."""
        conn.reset()
        conn.request = index
        conn.index = len(result.keys)
        now = time.perf_counter()
        result.keys.append(requests[index][0])
        result.sched.append(due if due > 0 else now)
        result.sent.append(now)
        result.done.append(0.0)
        result.status.append(0)
        transmit(conn)

    def transmit(conn: _Conn) -> None:
        try:
            conn.sock.sendall(requests[conn.request][1])
            conn.served += 1
        except OSError:
            replace(conn)

    def replace(conn: _Conn) -> None:
        """Drop a connection; the closed loop keeps its width while it is sending."""
        drop(conn)
        if closed and sending:
            idle.append(open_conn())

    closed = spec.mode == "closed"
    width = spec.concurrency if closed else min(spec.max_connections, 8)
    for _ in range(max(width, 1)):
        idle.append(open_conn())
    backlog: deque[tuple[int, float]] = deque()
    next_index = 0
    start = time.perf_counter() + 0.01
    result.started = start
    deadline = start + spec.duration
    interval = 1.0 / spec.rate if not closed and spec.rate > 0 else 0.0
    hard_stop = deadline + spec.drain_timeout
    sending = True

    while True:
        now = time.perf_counter()
        if sending and (now >= deadline or next_index >= total):
            sending = False
            result.unsent = len(backlog)
            backlog.clear()
        if sending:
            if closed:
                while idle and next_index < total and now < deadline:
                    send(idle.pop(), next_index, 0.0)
                    next_index += 1
            else:
                while next_index < total and start + next_index * interval <= now:
                    backlog.append((next_index, start + next_index * interval))
                    next_index += 1
                while backlog and (idle or len(conns) < spec.max_connections):
                    conn = idle.pop() if idle else open_conn()
                    index, due = backlog.popleft()
                    send(conn, index, due)
        in_flight = len(conns) - len(idle)
        if not sending and in_flight == 0:
            break
        if now >= hard_stop:
            break
        if sending and not closed and next_index < total:
            timeout = max(start + next_index * interval - now, 0.0)
        else:
            timeout = 0.05
        for key, _ in sel.select(min(timeout, 0.05)):
            conn: _Conn = key.data
            try:
                data = conn.sock.recv(65536)
            except OSError:
                data = b""
            if not data:  # closed by the server (keep-alive timeout, or mid-request)
                drop(conn)
                if conn.index >= 0 and not conn.buf and conn.served > 1:
                    # An idle keep-alive connection the server closed as we reused it: the
                    # request never reached it; send it again on a fresh connection.
                    fresh = open_conn()
                    fresh.index, fresh.request = conn.index, conn.request
                    result.sent[conn.index] = time.perf_counter()
                    result.reconnects += 1
                    transmit(fresh)
                else:
                    replace(conn)
                continue
            if conn.index < 0:
                continue  # unexpected bytes on an idle connection: ignore
            try:
                complete = conn.feed(data)
            except (ValueError, IndexError, RuntimeError):
                replace(conn)
                continue
            if not complete:
                continue
            result.done[conn.index] = time.perf_counter()
            result.status[conn.index] = conn.status
            if conn.close_after:
                replace(conn)
            else:
                conn.reset()
                idle.append(conn)
    result.finished = time.perf_counter()
    if result.sent:
        result.started = min(result.started, result.sent[0])
    result.cpu_s = time.process_time() - cpu_started
    for conn in list(conns):
        drop(conn)
    sel.close()
    return result


def _child(spec: LoadSpec, pipe) -> None:
    # Ctrl-C reaches the whole foreground process group: the parent stops this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        requests = build_requests(spec)
        pipe.send(("ready", None))
        pipe.recv()  # "go"
        pipe.send(("result", run(spec, requests)))
    except BaseException as exc:  # report, never hang the parent
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


class LoadProcess:
    """`run(spec)` in a spawned process: prepare() builds requests, go() starts, result()."""

    def __init__(self, spec: LoadSpec):
        context = multiprocessing.get_context("spawn")
        self.spec = spec
        self.pipe, child_pipe = context.Pipe()
        self.process = context.Process(target=_child, args=(spec, child_pipe), daemon=True)

    def prepare(self, timeout: float = 60.0) -> LoadProcess:
        self.process.start()
        kind, payload = self._receive(timeout)
        if kind != "ready":
            raise RuntimeError(f"load generator failed to start: {payload}")
        return self

    def go(self) -> None:
        self.pipe.send("go")

    def done(self) -> bool:
        return self.pipe.poll()

    def result(self) -> LoadResult:
        timeout = self.spec.duration + self.spec.drain_timeout + 30
        kind, payload = self._receive(timeout)
        self.process.join(10)
        if kind != "result":
            raise RuntimeError(f"load generator failed: {payload}")
        return payload

    def _receive(self, timeout: float):
        if not self.pipe.poll(timeout):
            self.stop()
            raise RuntimeError(f"load generator silent for {timeout:.0f}s")
        return self.pipe.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
