"""CPU arithmetic on denormal floats, which is slow by orders of magnitude, turned off while rtdet computes.

Values below ~1.2e-38 (float32) are "denormal": x86 CPUs compute them in
microcode, 10-100x slower than normal floats. Training drives some of them there
(weight decay shrinking unused weights, BatchNorm statistics of dead channels, the
EMA's products), and then every kernel that touches them slows down. Measured on
rtdet-cls-n (sklearn digits, batch 32, AdamW with weight decay 0.05, idle 2-core
machine), seconds per training epoch: 1.17, 1.21, 1.24, 8.42, 17.53 with
denormals; 1.24, 1.22, 1.24, 1.26, 1.24 flushed to zero; the classify demo's
accuracy after 2 epochs is the same either way (0.6212). GPUs flush them in most
kernels; the values are far below anything a model uses.

:func:`flush_denormal` sets PyTorch's process-wide flag for the duration of a
``with`` block and clears it afterwards (PyTorch's default is off), so importing
rtdet changes nothing.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def flush_denormal() -> Iterator[bool]:
    """Flush denormal floats to zero on the CPU inside the block; yields whether the CPU supports it."""
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(False)
