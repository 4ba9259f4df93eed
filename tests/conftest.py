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
