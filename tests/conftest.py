"""Fixtures shared by every test package."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread: on the shared 2-core machine, oversubscribed threads make training crawl."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
