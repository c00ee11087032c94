"""Facts about the machine and the system's disk use that explain the figures (Linux).

The service keeps what it is given and what it makes (uploads and result images, ~0.9 MB per
small task); the limit keeps nothing. Where fresh memory is expensive that difference is a cost of
its own: on a VM whose balloon device reports free pages to the host, memory the guest freed is
handed back, and a page the page cache takes anew may have to be faulted in by the host again.
On the machine of bench/README.md, writing 350 KB of new file data cost 0.10 ms of CPU while it
fitted in memory the guest still held, and past that 0.6-0.9 ms one day, 0.27 ms another.
"""

from __future__ import annotations

import os
from pathlib import Path

_VIRTIO = Path("/sys/bus/virtio/devices")
_BALLOON_DEVICE_ID = 0x0005
_F_REPORTING = 5  # VIRTIO_BALLOON_F_REPORTING, a bit of the device's feature string


def free_page_reporting(devices: Path = _VIRTIO) -> bool | None:
    """True when a virtio balloon reports freed guest memory to the host; None when unknown."""
    if not devices.is_dir():
        return None
    try:
        for dev in sorted(devices.iterdir()):
            if int((dev / "device").read_text().strip(), 16) != _BALLOON_DEVICE_ID:
                continue
            features = (dev / "features").read_text().strip()
            return len(features) > _F_REPORTING and features[_F_REPORTING] == "1"
    except (OSError, ValueError):
        return None
    return False


def tree_bytes(root: Path) -> int:
    """The bytes of every file under ``root`` (the store's size; files that vanish are skipped)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total
