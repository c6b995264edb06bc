"""Process memory: give freed heap back to the OS, and read resident memory from /proc.

Python and PyTorch free tensors to the C allocator, which keeps the pages for
reuse; after an epoch of variable-size batches the resident size then creeps up
although nothing leaks. :func:`release_memory` runs the garbage collector and
asks glibc to return free pages (``malloc_trim``), so resident memory per epoch
shows real growth only. The readers below are Linux-only (they return 0 elsewhere).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_memory() -> None:
    """Collect garbage and return the C heap's free pages to the OS (glibc only)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _status_kb(pid: int, key: str, file: str) -> int:
    try:
        with open(f"/proc/{pid}/{file}") as f:
            return next((int(ln.split()[1]) for ln in f if ln.startswith(key)), 0)
    except OSError:
        return 0


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (0 when /proc is unavailable)."""
    return _status_kb(pid, "VmRSS:", "status") / 1024


def pss_mb(pid: int) -> float:
    """Proportional set size in MiB: shared pages divided among the processes sharing them."""
    return _status_kb(pid, "Pss:", "smaps_rollup") / 1024


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (e.g. DataLoader workers), from /proc/<pid>/task/*/children."""
    kids: set[int] = set()
    tasks = Path(f"/proc/{pid}/task")
    for task in tasks.iterdir() if tasks.is_dir() else []:
        try:
            kids.update(int(k) for k in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(kids)
