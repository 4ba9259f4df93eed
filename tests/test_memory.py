"""`use_heap_allocator`: large scratch buffers reused rather than re-faulted."""

import subprocess
import sys

import pytest

_SCRIPT = """
import resource, sys
import jax, jax.numpy as jnp, jax.random as jr
import symml as sm
if sys.argv[1] == "heap":
    assert sm.use_heap_allocator()
ws = [jr.normal(jr.PRNGKey(i), (64, 64)) / 8 for i in range(4)]
x = jr.normal(jr.PRNGKey(9), (40_000, 64))

def loss(ws, x):
    for w in ws:
        x = jnp.tanh(x @ w)
    return jnp.mean(x**2)

step = jax.jit(jax.grad(loss)).lower(ws, x).compile()
# Above glibc's largest mmap threshold (32 MB): the case this is for.
assert step.memory_analysis().temp_size_in_bytes > 40e6
faults = []
for _ in range(20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(step(ws, x))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sorted(faults)[len(faults) // 2])
"""


def _median_faults(mode: str) -> int:
    """Median page faults per call of a step with 50 MB of scratch."""
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.slow
def test_heap_allocator_reuses_scratch():
    default, heap = _median_faults("default"), _median_faults("heap")
    # > 40 MB / 4 KiB > 10,000 faults when a call maps fresh pages (12,500
    # measured). With one heap, the first few calls may grow it; after that a
    # call faults none.
    assert default > 5_000
    assert heap < 100
