"""The benchmark's machine facts: the balloon's free page reporting read from sysfs, the store's size."""

from __future__ import annotations

from pathlib import Path

from bench.machine import free_page_reporting, tree_bytes


def _device(root: Path, name: str, device_id: str, features: str) -> None:
    dev = root / name
    dev.mkdir(parents=True)
    (dev / "device").write_text(device_id + "\n")
    (dev / "features").write_text(features + "\n")


def test_a_balloon_with_the_reporting_bit_reports_free_pages(tmp_path: Path) -> None:
    _device(tmp_path, "virtio0", "0x0002", "1" * 64)  # a block device: its bits mean other things
    _device(tmp_path, "virtio1", "0x0005", "0110010100000000")
    assert free_page_reporting(tmp_path) is True


def test_a_balloon_without_the_bit_does_not(tmp_path: Path) -> None:
    _device(tmp_path, "virtio0", "0x0005", "0110000100000000")
    assert free_page_reporting(tmp_path) is False


def test_no_balloon_and_no_virtio_are_told_apart(tmp_path: Path) -> None:
    _device(tmp_path, "virtio0", "0x0001", "1" * 64)
    assert free_page_reporting(tmp_path) is False
    assert free_page_reporting(tmp_path / "missing") is None


def test_tree_bytes_sums_every_file_below(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one").write_bytes(b"x" * 1000)
    (tmp_path / "a" / "b" / "two").write_bytes(b"y" * 234)
    assert tree_bytes(tmp_path) == 1234
    assert tree_bytes(tmp_path / "missing") == 0
