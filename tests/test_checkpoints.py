"""Checkpoints and resuming: a fit killed with SIGKILL and resumed gives the
result of a fit never interrupted, bit for bit; failed fits keep their last
good state; `init=` starts from a previous result."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import symml as sm

# The tests share module-scoped fits: `--dist loadgroup` runs them on one
# worker, which computes each fit once.
pytestmark = pytest.mark.xdist_group("checkpoints")

t = sp.Symbol("t")

# A small UDE, fitted for 90 steps with checkpoints every 20: Adam then L-BFGS.
_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx, numpy as np, sympy as sp
    import symml as sm
    from symml.training import _checkpoint

    mode, directory, out = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "kill":
        # SIGKILL in the middle of writing the third checkpoint's arrays.
        calls = []
        write_bytes = _checkpoint.write_bytes

        def dying_write(path, data, **kw):
            calls.append(path)
            if len(calls) == 3:
                with open(str(path) + ".partial", "wb") as f:
                    f.write(data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return write_bytes(path, data, **kw)

        _checkpoint.write_bytes = dying_write
    t = sp.Symbol("t")
    x, y = sm.states("x y", t)
    U = sm.Unknown("U", inputs=[x, y], outputs=2, hidden=[8])
    model = sm.Model([sp.Eq(x.diff(t), U[0]), sp.Eq(y.diff(t), -y + U[1])])
    ts = np.linspace(0.0, 2.0, 9)
    data = sm.Data(ts, {x: np.exp(-ts), y: 1 + 0.5 * ts})
    result = sm.fit(
        model, data, seed=7, steps=60, lbfgs_steps=30, learning_rate=1e-2,
        checkpoint=directory, checkpoint_every=20,
        resume=directory if mode == "resume" else None,
    )
    eqx.tree_serialise_leaves(out, (result.params, result.initial_states))
    with open(out + ".json", "w") as f:
        import json
        json.dump({k: list(map(float, v)) for k, v in result.history.items()}, f)
    """
)


def _run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(_SCRIPT)
    whole = _run(script, "plain", str(tmp_path / "plain"), str(tmp_path / "plain.eqx"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = _run(script, "kill", str(tmp_path / "ckpt"), str(tmp_path / "x.eqx"))
    assert killed.returncode == -signal.SIGKILL
    # The third checkpoint never landed: the pointer names the second one.
    latest = json.loads((tmp_path / "ckpt" / "latest.json").read_text())
    assert latest == {"checkpoint": "phase0-step40"}
    resumed = _run(script, "resume", str(tmp_path / "ckpt"), str(tmp_path / "r.eqx"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (tmp_path / "plain.eqx").read_bytes() == (tmp_path / "r.eqx").read_bytes()
    assert (tmp_path / "plain.eqx.json").read_text() == (
        tmp_path / "r.eqx.json"
    ).read_text()


def _decay(k0=0.2):
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(x.diff(t), -k * x)], parameters={k: sm.trainable(k0)})
    ts = np.linspace(0.0, 3.0, 16)
    return model, sm.Data(ts, {x: 2.0 * np.exp(-0.7 * ts)}), k


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """One fit of the decay model, 45 Adam steps with a checkpoint every 10,
    shared by the tests that only read it (each fit compiles its own loop)."""
    model, data, k = _decay()
    directory = tmp_path_factory.mktemp("checkpoints")
    result = sm.fit(
        model,
        data,
        steps=45,
        learning_rate=0.05,
        lbfgs_steps=0,
        checkpoint=directory,
        checkpoint_every=10,
    )
    return model, data, k, directory, result


def test_resume_refuses_another_fit(tmp_path, checkpointed):
    model, data, _, directory, _ = checkpointed
    shutil.copytree(directory, tmp_path, dirs_exist_ok=True)
    with pytest.raises(sm.FitError, match="belongs to another fit"):
        sm.fit(
            model,
            data,
            seed=1,
            steps=45,
            learning_rate=0.05,
            lbfgs_steps=0,
            checkpoint=tmp_path,
            checkpoint_every=10,
            resume=tmp_path,
        )
    (tmp_path / "latest.json").write_text("{not json")
    with pytest.raises(sm.FitError, match="unreadable"):
        sm.fit(
            model,
            data,
            steps=45,
            learning_rate=0.05,
            lbfgs_steps=0,
            checkpoint=tmp_path,
            checkpoint_every=10,
            resume=tmp_path,
        )
    with pytest.raises(sm.FitError, match="holds no checkpoint"):
        sm.fit(
            model,
            data,
            steps=20,
            checkpoint=tmp_path / "new",
            checkpoint_every=10,
            resume=tmp_path / "new",
        )
    with pytest.raises(sm.FitError, match="`checkpoint_every` needs `checkpoint="):
        sm.fit(model, data, checkpoint_every=10)


# A failing fit of its own; tests/test_training.py checks, in the fast subset,
# that a failed fit hands back finite last-good parameters.
@pytest.mark.slow
def test_failed_fit_keeps_the_last_good_parameters():
    # x' = k x^2 from k = -0.05 towards the data 2 / (1 - 0.19 t): with a large
    # learning rate Adam overshoots to a k whose solution blows up inside the
    # data window. The result handed back is the last one with a finite loss,
    # and that loss is the one reported.
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(x.diff(t), k * x**2)], parameters={k: sm.trainable(-0.05)})
    ts = np.linspace(0.0, 5.0, 21)
    data = sm.Data(ts, {x: 2 / (1 - 0.19 * ts)})
    with pytest.raises(sm.FitError, match=r"non-finite at step \d+ of the `adam`") as e:
        sm.fit(model, data, steps=60, lbfgs_steps=0, learning_rate=0.5)
    good = e.value.result
    reported = good.history["adam"][-1]
    assert math.isfinite(reported) and reported == good.final_loss
    # The loss at the returned parameters, computed anew, is the reported one.
    problem = sm.SolveInLoop().prepare(
        model, data, seed=0, dtype=jnp.float64, init=good
    )
    # Compiled: an eager ODE solve dispatches every operation on its own.
    value = float(eqx.filter_jit(problem.loss)(problem.trainable, problem.static)[0])
    assert value == pytest.approx(reported, rel=1e-12)
    assert str(float(reported))[:5] in str(e.value)


def test_init_starts_from_a_previous_result(checkpointed):
    model, data, k, _, first = checkpointed
    again = sm.fit(model, data, init=first, steps=1, lbfgs_steps=0)
    # The first loss of the new fit is the last of the old one.
    assert again.history["adam"][0] == pytest.approx(first.final_loss, rel=1e-12)
    other, _, _ = _decay(0.3)
    with pytest.raises(sm.FitError, match="`init` is a fit of another model"):
        sm.fit(other, data, init=first)


def test_checkpoints_are_written_atomically_and_pruned(checkpointed):
    model, data, _, directory, _ = checkpointed
    names = sorted(p.name for p in directory.iterdir())
    # The last two checkpoints and the pointer; no temporary files left.
    assert names == [
        "latest.json",
        "phase0-step30.eqx",
        "phase0-step30.json",
        "phase0-step40.eqx",
        "phase0-step40.json",
    ]
    meta = json.loads((directory / "phase0-step40.json").read_text())
    assert meta["step"] == 40 and len(meta["history"]["adam"]) == 40
    template = sm.SolveInLoop().prepare(
        model, data, seed=0, dtype=jnp.float64, init=None
    )
    assert template.fingerprint == meta["fingerprint"]
