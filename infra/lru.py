"""A small least-recently-remembered cache: an ``OrderedDict`` that keeps its newest entries."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(OrderedDict[K, V]):
    """At most ``capacity`` entries; ``remember`` adds one and drops the oldest beyond that.

    Reading does not make an entry newer (``move_to_end`` does, for a cache that wants it)."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def remember(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)
