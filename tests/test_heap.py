"""glibc's allocator settings: scoped to the engine's work, nested, restored even on errors."""

from __future__ import annotations

import platform
import sys

import pytest

from adain.engine import heap


class _FakeGlibc:
    """Records ``mallopt`` and ``malloc_trim`` calls instead of changing the process."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def glibc(monkeypatch) -> _FakeGlibc:
    fake = _FakeGlibc()
    monkeypatch.setattr(heap, "_glibc", fake)
    # The process's own settings are glibc's defaults here.
    monkeypatch.delenv("MALLOC_MMAP_MAX_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert heap._depth == 0
    return fake


ENTER = [
    ("mallopt", heap._M_TRIM_THRESHOLD, heap._TRIM_THRESHOLD),
    ("mallopt", heap._M_MMAP_MAX, 0),
]
LEAVE = [
    ("mallopt", heap._M_MMAP_MAX, heap._DEFAULT_MMAP_MAX),
    ("mallopt", heap._M_TRIM_THRESHOLD, heap._DEFAULT_TRIM_THRESHOLD),
    ("malloc_trim", 0),
]


def test_settings_apply_at_the_first_entry_and_go_back_at_the_last_exit(glibc):
    with heap.heap_reuse():
        assert glibc.calls == ENTER
        with heap.heap_reuse():
            with heap.heap_reuse():
                assert heap._depth == 3
            assert glibc.calls == ENTER  # inner regions change nothing
        assert glibc.calls == ENTER
    assert glibc.calls == ENTER + LEAVE
    assert heap._depth == 0


def test_settings_go_back_when_the_body_raises(glibc):
    with pytest.raises(RuntimeError, match="inner"), heap.heap_reuse():
        with heap.heap_reuse():
            raise RuntimeError("inner")
    assert glibc.calls == ENTER + LEAVE
    assert heap._depth == 0
    # And the next region starts afresh.
    with heap.heap_reuse():
        pass
    assert glibc.calls == 2 * (ENTER + LEAVE)


def test_the_process_settings_are_restored(glibc, monkeypatch):
    # Set at process start (MALLOC_*_), they are what a region goes back to.
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "7")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4096")
    with heap.heap_reuse():
        pass
    assert glibc.calls[len(ENTER) :] == [
        ("mallopt", heap._M_MMAP_MAX, 7),
        ("mallopt", heap._M_TRIM_THRESHOLD, 4096),
        ("malloc_trim", 0),
    ]


def test_long_lived_allocations_are_a_no_op_outside_heap_reuse(glibc):
    with heap.long_lived_allocations():
        pass
    assert glibc.calls == []


def test_long_lived_allocations_use_mmap_again_inside_heap_reuse(glibc):
    mmap_again = ("mallopt", heap._M_MMAP_MAX, heap._DEFAULT_MMAP_MAX)
    heap_again = ("mallopt", heap._M_MMAP_MAX, 0)
    with heap.heap_reuse():
        with pytest.raises(RuntimeError), heap.long_lived_allocations():
            assert glibc.calls == [*ENTER, mmap_again]
            raise RuntimeError("allocation failed")
        # mmap for large blocks inside, back to the heap afterwards, even on errors.
        assert glibc.calls == [*ENTER, mmap_again, heap_again]
    assert glibc.calls == [*ENTER, mmap_again, heap_again, *LEAVE]


def test_without_glibc_nothing_is_tuned(monkeypatch):
    monkeypatch.setattr(heap, "_glibc", None)
    with heap.heap_reuse(), heap.long_lived_allocations():
        assert heap._depth == 0


def test_glibc_is_found_on_linux():
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert (heap._glibc is not None) == glibc
    if glibc:  # the real calls: settings changed and restored around the block
        with heap.heap_reuse():
            data = bytearray(64 << 20)  # above the default mmap threshold
            del data
        assert heap._depth == 0
