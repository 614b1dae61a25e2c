"""Where and how a run computes: the device it trains on, deterministic kernels (`train.deterministic`), and how the
C allocator treats freed CPU memory (`train.cpu_memory`)."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

import torch

_CUBLAS_VARIABLE = "CUBLAS_WORKSPACE_CONFIG"
_CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")  # the two settings torch accepts as deterministic


@contextlib.contextmanager
def deterministic_kernels(enabled: bool = True) -> Iterator[None]:
    """Deterministic kernels inside the block when `enabled` (`train.deterministic`); on leaving it the process's
    previous settings are restored, so a trial changes nothing for the next trial in the same worker."""
    if not enabled:
        yield
        return
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        os.environ.get(_CUBLAS_VARIABLE),
    )
    # cuBLAS takes its workspace size from this variable when the process first uses it, so it must be set before
    # the first matmul on CUDA: `train` enters this block before anything reaches the device. (In a worker where an
    # earlier trial already ran on CUDA the size stays what it was: still one fixed size, and torch's check of the
    # variable passes; exporting it on the cluster's nodes settles it from the start.)
    if saved[-1] not in _CUBLAS_DETERMINISTIC:
        os.environ[_CUBLAS_VARIABLE] = _CUBLAS_DETERMINISTIC[0]
    # Strict (warn_only=False), so that nothing non-deterministic runs unnoticed: torch then also runs SDPA's
    # attention backward in its deterministic form (with warn_only it only warns and keeps the non-deterministic one).
    # The one op here without a deterministic CUDA kernel, bilinear upsampling's backward, has its own matmul form
    # (blocks.BilinearUp2); any other would raise torch's RuntimeError naming it.
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        algorithms, warn_only, cudnn_deterministic, cudnn_benchmark, cublas = saved
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        torch.backends.cudnn.deterministic = cudnn_deterministic
        torch.backends.cudnn.benchmark = cudnn_benchmark
        if cublas is None:
            os.environ.pop(_CUBLAS_VARIABLE, None)
        else:
            os.environ[_CUBLAS_VARIABLE] = cublas


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was requested but CUDA is not available on this machine")
    return torch.device(name)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_MIB = 1 << 20


def use_cpu_memory(mode: str) -> bool:
    """Set how glibc treats freed memory for the rest of the process (`train.cpu_memory`); False where the C library
    has no `mallopt` (not glibc), and nothing is changed.

    `keep`: no block is mmap'd (M_MMAP_MAX 0) and the heap's free top is trimmed only past 2 GB, so a freed tensor's
    memory serves the next one of its size without new pages. `system`: glibc's steady state under its default
    dynamic threshold: blocks of 32 MB (the threshold's ceiling) and more are mmap'd, and unmapped when freed."""
    libc = _libc()
    if libc is None:
        return False
    if mode == "keep":
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    else:
        libc.mallopt(_M_MMAP_MAX, 65536)  # glibc's default
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * _MIB)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 * _MIB)  # twice the threshold, as glibc's dynamic rule sets it
        libc.malloc_trim(0)
    return True


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc
