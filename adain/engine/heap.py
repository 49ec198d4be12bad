"""glibc's allocator, scoped to the engine's own work.

By default glibc serves each allocation above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and unmaps it on free, so every large activation of a forward pass page-faults its
memory back in: on 2 CPU cores that was ~45 % of the wall time of a 512 px stylisation
(REFERENCE.md section 7). While :func:`heap_reuse` is active, large blocks come from the heap
(``M_MMAP_MAX = 0``) and freed memory stays there (``M_TRIM_THRESHOLD`` 1 GiB), so the strips of
one call reuse the same pages. On leaving, the settings go back to the process's own and
``malloc_trim`` returns the freed memory to the system: a library may not keep a process's
memory, or change its allocator, beyond the call that needed it.

``mallopt`` works at run time, so neither the ``MALLOC_*_`` variables (read at process start)
nor a re-exec are needed. One lasting effect: once ``M_TRIM_THRESHOLD`` has been set, glibc
stops adapting its mmap threshold to the program (``mallopt(3)``), keeping its current value.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Iterator

# glibc mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc's defaults, unless the process started with MALLOC_*_ set.
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
# Keep up to this much freed memory at the top of the heap while the engine runs.
_TRIM_THRESHOLD = 1 << 30

_lock = threading.Lock()
_depth = 0  # nested or concurrent heap_reuse() regions active now


class _Glibc:
    def __init__(self, libc: ctypes.CDLL):
        self.mallopt = libc.mallopt
        self.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        self.malloc_trim = libc.malloc_trim
        self.malloc_trim.argtypes = [ctypes.c_size_t]


def _load() -> _Glibc | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return _Glibc(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"))
    except (OSError, AttributeError):  # musl and other libcs have no mallopt/malloc_trim
        return None


_glibc = _load()


def _initial(variable: str, default: int) -> int:
    try:
        return int(os.environ.get(variable, default))
    except ValueError:
        return default


@contextlib.contextmanager
def heap_reuse() -> Iterator[None]:
    """Keep freed memory in the heap while the block runs; give it back after (glibc only).

    Thread-safe and re-entrant: the settings change when the first region starts and go back
    when the last one ends.
    """
    global _depth
    glibc = _glibc
    if glibc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            glibc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
            glibc.mallopt(_M_MMAP_MAX, 0)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                glibc.mallopt(_M_MMAP_MAX, _initial("MALLOC_MMAP_MAX_", _DEFAULT_MMAP_MAX))
                threshold = _initial("MALLOC_TRIM_THRESHOLD_", _DEFAULT_TRIM_THRESHOLD)
                glibc.mallopt(_M_TRIM_THRESHOLD, threshold)
                glibc.malloc_trim(0)


@contextlib.contextmanager
def long_lived_allocations() -> Iterator[None]:
    """Serve the large allocations made inside from ``mmap`` again, as glibc does by default.

    For buffers that outlive many strips (the output, the kept features): on the heap they
    would sit between the activations of successive strips and fragment it. Peak RSS growth of
    a 2048 px run in 1 GiB tiles went from 1320 to 1169 MiB with these two buffers outside the
    heap. A no-op outside :func:`heap_reuse`.
    """
    glibc = _glibc
    if glibc is None or _depth == 0:
        yield
        return
    glibc.mallopt(_M_MMAP_MAX, _initial("MALLOC_MMAP_MAX_", _DEFAULT_MMAP_MAX))
    try:
        yield
    finally:
        if _depth > 0:
            glibc.mallopt(_M_MMAP_MAX, 0)
