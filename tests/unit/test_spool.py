"""The local spool: atomic copies, lookups by object path, a bounded folder."""

from __future__ import annotations

import os
import time

from infra.spool import LocalSpool


def test_a_written_file_reads_back_by_its_object_path(tmp_path):
    spool = LocalSpool(tmp_path, max_bytes=10_000)
    spool.write("uploads/1f/image.png", b"png bytes")
    assert spool.read("uploads/1f/image.png") == b"png bytes"
    assert spool.read("uploads/1f/template.png") is None
    # Object paths become flat names inside the folder: nothing can climb out of it.
    assert [p.parent for p in tmp_path.iterdir()] == [tmp_path]
    spool.write("../../etc/passwd", b"x")
    assert spool.read("../../etc/passwd") == b"x"
    assert all(p.parent == tmp_path for p in tmp_path.iterdir())


def test_rewriting_replaces_the_copy_whole(tmp_path):
    spool = LocalSpool(tmp_path, max_bytes=10_000)
    spool.write("results/a/matches.png", b"first attempt")
    spool.write("results/a/matches.png", b"second")
    assert spool.read("results/a/matches.png") == b"second"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_the_folder_stays_under_its_budget_dropping_the_oldest(tmp_path):
    spool = LocalSpool(tmp_path, max_bytes=10_000, sweep_every=0)
    for i in range(30):
        spool.write(f"uploads/{i}/image.png", bytes(1000))
        os.utime(spool._file(f"uploads/{i}/image.png"), (time.time() - 100 + i,) * 2)
    spool.sweep()
    kept = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert kept <= 10_000
    assert spool.read("uploads/29/image.png") is not None  # the newest stay
    assert spool.read("uploads/0/image.png") is None


def test_a_spool_that_cannot_be_written_is_only_a_missed_copy(tmp_path):
    spool = LocalSpool(tmp_path / "spool", max_bytes=10_000)
    (tmp_path / "spool").rmdir()
    (tmp_path / "spool").write_bytes(b"a file where the folder was")  # even root cannot write here
    spool.write("uploads/x/image.png", b"data")  # logged, not raised: the store has the file
    assert spool.read("uploads/x/image.png") is None
    assert spool.sweep() == 0


def test_no_folder_configured_means_no_spool(tmp_path):
    assert LocalSpool.optional("", 1000) is None
    assert isinstance(LocalSpool.optional(str(tmp_path / "s"), 1000), LocalSpool)
