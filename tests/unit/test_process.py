"""Process settings through the C library: the allocator applies where it is glibc, harmlessly elsewhere."""

from __future__ import annotations

import platform

import pytest

from infra.process import tune_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_settings():
    assert tune_allocator() is True


def test_it_can_be_applied_again():
    first = tune_allocator()
    assert tune_allocator() == first
