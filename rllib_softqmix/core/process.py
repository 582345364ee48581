"""Settings of every process that runs the networks (learners, env runners)."""

import ctypes
import ctypes.util
import logging
import os
import platform

import torch

logger = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h) and the values set here.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's maximum
TRIM_THRESHOLD_BYTES = 256 << 20


def retain_freed_memory() -> bool:
    """Lets glibc's malloc keep freed blocks of up to 32 MiB (and up to 256 MiB of free heap)
    in the process instead of returning them to the kernel.

    A gradient step allocates and frees a few dozen buffers of ~2 MB; by default glibc serves
    them with fresh mmaps or trims them from the heap, and every page is faulted in again on
    the next step (~2,800 faults per QMIX GRU step, ~5 ms on this 2-core VM). Returns whether the
    settings were applied: not on other C libraries, nor where the user set glibc's
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment variables.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    applied = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
               and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)
    if not applied:
        logger.warning("mallopt refused the thresholds; freed memory goes back to the kernel")
    return applied


def leave_new_tensors_unfilled() -> None:
    """Stops torch from filling every new tensor's memory with NaN, and keeps its
    deterministic-algorithms mode on.

    RLlib's seeding (``config.debugging(seed=...)``) turns on
    ``torch.use_deterministic_algorithms`` on the CPU, which since torch 2.1 also fills every
    ``torch.empty`` with NaN (``torch.utils.deterministic.fill_uninitialized_memory``), a
    debugging aid: ~5% of a QMIX GRU gradient step here. Nothing in this library reads memory
    it has not written, so seeded runs are bitwise the same with or without the fill
    (``tests/test_determinism.py`` checks it).
    """
    torch.utils.deterministic.fill_uninitialized_memory = False


def configure_compute_process(torch_num_threads: int) -> None:
    """torch's intra-op threads (1 on small machines: 2 threads measured 16x slower),
    ``retain_freed_memory`` and ``leave_new_tensors_unfilled``."""
    torch.set_num_threads(torch_num_threads)
    retain_freed_memory()
    leave_new_tensors_unfilled()
