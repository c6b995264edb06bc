"""rtdet.engine.memory: /proc readers and the heap release call."""

import os
import sys

import pytest

from rtdet.engine.memory import child_pids, pss_mb, release_memory, rss_mb


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_readers_on_this_process():
    release_memory()
    assert rss_mb(os.getpid()) > 10 and pss_mb(os.getpid()) >= 0
    assert os.getpid() not in child_pids(os.getpid())
    assert rss_mb(-1) == 0
