"""Allocator settings for XLA's CPU scratch memory."""

import ctypes
import sys

# `mallopt` parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def use_heap_allocator() -> bool:
    """Serve large blocks from one C heap, so that freed ones are reused.

    A compiled JAX function on the CPU allocates its scratch memory afresh on
    every call. glibc's `malloc` hands out blocks larger than 32 MB (its
    largest mmap threshold) as newly mapped pages and unmaps them when they
    are freed; and JAX's worker threads allocate from per-thread arenas,
    which give freed memory back to the system too. Each call then pays one
    page fault, and the kernel zeroing a page, for every 4 KiB of scratch.
    This turns that off (`mallopt` with `M_MMAP_MAX = 0`, no trimming of the
    heap's top, and `M_ARENA_MAX = 1`, one arena for all threads): freed
    blocks stay in the heap and the next call reuses them.

    Measured on a 2-core CPU: loss and weight gradient of the collapsed
    Laplacian of a 16-input 4×64 tanh network on 1024 points, float64,
    57 ms → 29 ms (27,600 page faults per call → 0); 300 Adam steps of
    `examples/burgers.py` with a 4×64 network, 27 s → 14 s, system time
    24.5 s → 1.5 s.

    The cost: memory the process frees is kept for reuse rather than given
    back to the operating system, so its resident size stays at its peak;
    and threads share one allocator lock, which slows steps that make many
    small allocations: the Lotka–Volterra UDE example runs 53 s → 67 s with
    it. Since fits run their steps in compiled chunks (one call per 50
    steps), the per-call cost it removes is paid once per chunk: on the
    Burgers PINN step of `benchmarks/pinn_step.py` it now makes the step 5–17 %
    *slower*, so the examples no longer call it. It remains for scripts that
    call one compiled function many times with large scratch memory.
    Call this once, at the top of a script that trains or benchmarks on the
    CPU, **before the first JAX computation**: threads that have already
    allocated keep their own arenas. It affects the whole process.

    **Returns:**

    `True` if the settings were applied; `False` where the C library has no
    glibc `mallopt` (macOS, Windows, musl), and nothing was changed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    no_trim = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    no_mmap = mallopt(_M_MMAP_MAX, 0)
    one_arena = mallopt(_M_ARENA_MAX, 1)
    return bool(no_trim and no_mmap and one_arena)
