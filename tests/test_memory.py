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
jax.block_until_ready(step(ws, x))
jax.block_until_ready(step(ws, x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    jax.block_until_ready(step(ws, x))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_heap_allocator_reuses_scratch():
    default, heap = _faults("default"), _faults("heap")
    # 10 calls × > 40 MB / 4 KiB > 100,000 faults when each maps fresh pages.
    assert default > 50_000
    assert heap < default / 5
