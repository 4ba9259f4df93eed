import os

# Test workers run side by side (pytest-xdist): on a GPU, each allocates what
# it needs instead of JAX's default of 75 % of the device's memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.random as jr
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def getkey():
    """A fresh, deterministic PRNG key on each call."""
    counter = iter(range(1_000_000))

    def _getkey():
        return jr.PRNGKey(next(counter))

    return _getkey


def pytest_collection_modifyitems(config, items):
    # A test named `test_..._quick` runs an example's or a benchmark's
    # `--quick` mode end to end: slow by nature. `pytest -m "not slow"` skips
    # them (and the tests marked `slow` by hand).
    for item in items:
        if item.originalname.endswith("_quick"):
            item.add_marker(pytest.mark.slow)


def _memory_maps() -> int | None:
    """The number of memory maps of this process (Linux), else None."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return None


def _map_limit() -> int:
    """The kernel's limit on a process's memory maps (Linux; 65530 by
    default), else that default."""
    try:
        with open("/proc/sys/vm/max_map_count", "rb") as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return 65_530


_MAP_LIMIT = _map_limit()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    # JAX keeps the compiled code of every jitted function it has run (each
    # executable holds about four memory maps); a test worker that runs the
    # whole suite would otherwise approach the kernel's limit (65530 maps by
    # default), where LLVM fails with "Cannot allocate memory". The compiled
    # code is released after a module once half the limit is reached (always where
    # the maps cannot be counted), not after every module: modules share the
    # compiled code of jax.numpy's own functions, and a module's tests split
    # between workers revisit it, so clearing each time recompiles both.
    yield
    maps = _memory_maps()
    if maps is None or maps > _MAP_LIMIT // 2:
        jax.clear_caches()
