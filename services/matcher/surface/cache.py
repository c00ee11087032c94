"""Trained detectors kept per worker process, bounded in entries and in estimated bytes.

Training is the expensive part (1–2 s for the sample model at the default step, ~30 s at 0.025)
and factories match one model against many scans. Entries are keyed by the model's content and
the training parameters (``detector.model_key``); the least recently used goes first. Sizes are
estimated (``detector.BYTES_PER_PAIR`` per stored pair), not measured.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from services.matcher.surface.detector import Trained

MAX_ENTRIES = 4
# Two workers per 2-core machine hold at most 2 × 512 MiB of detectors between tasks.
MAX_BYTES = 512 * 2**20


class DetectorCache:
    """Least-recently-used trained detectors, at most ``max_entries`` and ``max_bytes`` (estimated)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._entries: OrderedDict[str, Trained] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self._entries.values())

    def get_or_train(self, key: str, train: Callable[[], Trained]) -> tuple[Trained, bool]:
        """The detector for ``key`` and whether it came from the cache; trains and keeps it otherwise."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            return found, True
        trained = train()
        if trained.bytes <= self._max_bytes:
            self._entries[key] = trained
            while len(self._entries) > self._max_entries or self.bytes > self._max_bytes:
                self._entries.popitem(last=False)
        return trained, False

    def clear(self) -> None:
        self._entries.clear()
