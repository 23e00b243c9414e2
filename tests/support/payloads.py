"""Garbage for connector tests: junk bodies and every one-value corruption of a sample payload."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROVIDER_SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "providers"

WRONG_VALUES: tuple[Any, ...] = (None, True, 0, -1, 2.5, 10**30, "", "x", [], {}, [[]],
                                 {"a": {}}, [1, "x"])


def sample(provider: str, name: str) -> bytes:
    return (PROVIDER_SAMPLES / provider / name).read_bytes()


def junk_bodies() -> list[bytes]:
    """Bodies no provider sends: empty, wrong JSON types, binary, truncated, absurdly nested."""
    rng = random.Random(7)
    return [b"", b" ", b"null", b"[]", b"{}", b'"text"', b"42", b"true", b"\xff\xfe\x00\x01",
            bytes(rng.getrandbits(8) for _ in range(512)), b'{"update_id": ', b"{" * 3,
            b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            "{\"é\": \"\ud800\"}".encode("utf-8", "surrogatepass"), b"a=1&b=2", b"<xml/>"]


def _paths(data: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, prefix + (index,))


def _replaced(data: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    result = copy.deepcopy(data)
    target = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return result


def _removed(data: Any, path: tuple) -> Any:
    result = copy.deepcopy(data)
    target = result
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return result


def corruptions(body: bytes) -> Iterator[bytes]:
    """The JSON body with each value, at every depth, swapped for wrong types or removed."""
    data = json.loads(body)
    for path in _paths(data):
        for value in WRONG_VALUES:
            yield json.dumps(_replaced(data, path, value)).encode()
        if path:
            yield json.dumps(_removed(data, path)).encode()
