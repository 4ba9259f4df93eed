"""Sharded fits and ensembles: the same numbers on 1, 2 and 4 devices.

Many devices are forced on the CPU (`--xla_force_host_platform_device_count`)
in one subprocess, since the device count is fixed when JAX starts; it prints
what it measured as JSON. References are the fits on one device, computed
independently in the same subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import load_example

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    r"""
    import json
    import jax
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import numpy as np
    import sympy as sp
    import symml as sm
    from symml.training._shard import Placement, auto, for_mesh

    assert jax.device_count() == 4
    out = {}

    def mesh(n):
        return jax.make_mesh((n,), ("data",), devices=jax.devices()[:n])

    def flat(tree):
        return np.concatenate(
            [np.ravel(np.asarray(a)) for a in jax.tree.leaves(tree)]
        )

    def loss_and_grad(problem, n):
        if n is not None:
            problem = for_mesh(problem, auto(mesh(n)), "test")
        x, x_static = eqx.partition(problem.trainable, eqx.is_array)
        static = problem.static
        if n is not None:
            placement = Placement(auto(mesh(n)), problem.shard)
            static = placement.static(static)
            x = jax.device_put(x, placement.replicated)
        def loss(x, static):
            return problem.loss(eqx.combine(x, x_static), static)[0]
        value, grad = jax.jit(jax.value_and_grad(loss))(x, static)
        return float(value), flat(grad)

    def compare(make, key):
        value, grad = loss_and_grad(make(), None)
        rows = []
        for n in (2, 4):
            v, g = loss_and_grad(make(), n)
            rows.append(
                max(
                    abs(v - value) / abs(value),
                    float(np.max(np.abs(g - grad)) / np.max(np.abs(grad))),
                )
            )
        out[key] = rows

    t, x = sp.symbols("t x")
    u = sm.Field("u", (t, x), hidden=[8])
    burgers = sm.Model(
        [sp.Eq(u.diff(t) + u * u.diff(x), 0.01 / sp.pi * u.diff(x, 2))],
        conditions=[
            sp.Eq(u.subs(t, 0), -sp.sin(sp.pi * x)),
            sp.Eq(u.subs(x, -1), 0),
        ],
        domain={t: (0, 1), x: (-1, 1)},
    )
    rng = np.random.default_rng(0)
    # 10 observations: padded to 12 on 4 devices, with zero weight.
    observed = sm.PointData(
        {t: rng.uniform(0, 1, 10), x: rng.uniform(-1, 1, 10)},
        {u: rng.normal(size=10)},
    )
    pinn = sm.PhysicsInformed(points=64, boundary_points=16, derivatives="forward")
    compare(lambda: pinn.prepare(burgers, observed, seed=1, dtype=jax.numpy.float64,
                                 init=None), "pinn")

    s = sp.Symbol("s")
    a, b = sm.states("a b", s)
    U = sm.Unknown("U", inputs=[a, b], outputs=2, hidden=[8])
    ode = sm.Model(
        [sp.Eq(a.diff(s), 1.3 * a + U[0]), sp.Eq(b.diff(s), -1.8 * b + U[1])]
    )
    ts = np.linspace(0.0, 1.0, 7)
    data = [
        sm.Data(ts, {a: a0 * np.exp(-ts), b: b0 * np.exp(-2 * ts)})
        for a0, b0 in ((2.0, 1.0), (1.0, 2.0))
    ]
    ude = sm.SolveInLoop(shooting=2)
    compare(lambda: ude.prepare(ode, data, seed=1, dtype=jax.numpy.float64,
                                init=None), "ude")

    # Fits without a solve: their rows (9 + 9 times: 18 collocation rows,
    # 12 multistep rows) padded with zero weight to a multiple of 4.
    data9 = [
        sm.Data(np.linspace(0.0, 1.0, 9), {a: a0 * np.exp(-np.linspace(0, 1, 9)),
                                           b: b0 * np.exp(-np.linspace(0, 2, 9))})
        for a0, b0 in ((2.0, 1.0), (1.0, 2.0))
    ]
    for key, m in (
        ("collocation", sm.Collocation(match="derivative")),
        ("collocation_default", sm.Collocation()),
        ("multistep", sm.Multistep(formula="adams-moulton", order=4)),
    ):
        compare(lambda m=m: m.prepare(ode, data9, seed=1, dtype=jax.numpy.float64,
                                      init=None), key)
    kwargs = dict(method=sm.Multistep(formula="adams-bashforth", order=3), steps=5,
                  lbfgs_steps=2)
    out["multistep_fit"] = float(np.max(np.abs(
        flat(sm.fit(ode, data9, mesh=mesh(4), **kwargs).params)
        - flat(sm.fit(ode, data9, **kwargs).params))))

    # A discretised PDE: its grid split along x (domain decomposition). A
    # Dirichlet axis puts boundary values at the outer shards' edges.
    x1 = sp.Symbol("x")
    (rho,) = sm.states("rho", s, x1)
    N = sm.Unknown("N", inputs=[rho], outputs=1, hidden=[4])
    pde = sm.Model(
        [sp.Eq(rho.diff(s), N[0] + 0.1 * rho.diff(x1, 2))],
        conditions=[sp.Eq(rho.subs(x1, 0), 0.5), sp.Eq(rho.subs(x1, 1), 0.2)],
        domain={x1: (0, 1)},
        boundary="dirichlet",
    )
    grid = sm.discretize(pde, {x1: 8})
    xs = grid.grid[x1]
    field = [
        sm.Data(ts, {rho: np.exp(-ts)[:, None] * np.sin(np.pi * xs)[None] + c})
        for c in (0.0, 0.1)
    ]
    compare(lambda: sm.SolveInLoop().prepare(grid, field, seed=1,
            dtype=jax.numpy.float64, init=None), "grid")
    # XLA exchanges the points next to each cut (collective permutes), not
    # whole states.
    params = sm.init_params(pde, key=jax.random.PRNGKey(0))
    y = jax.numpy.asarray(np.cos(xs))
    hlo = jax.jit(lambda y: grid.decompose(mesh(4))(0.0, y, params)).lower(
        y).compile().as_text()
    out["grid_collectives"] = [hlo.count("collective-permute"),
                               hlo.count("all-gather")]
    out["grid_rhs"] = float(np.max(np.abs(
        np.asarray(grid.decompose(mesh(4))(0.0, y, params))
        - np.asarray(grid(0.0, y, params)))))
    # 2-D, periodic: the first axis split, the second whole.
    y1 = sp.Symbol("y")
    (w,) = sm.states("w", s, x1, y1)
    pde2 = sm.Model(
        [sp.Eq(w.diff(s), w * (1 - w) + 0.01 * (w.diff(x1, 2) + w.diff(y1, 2)))],
        domain={x1: (0, 1), y1: (0, 1)},
        boundary="periodic",
    )
    plane = sm.discretize(pde2, {x1: 8, y1: 6}, order=4)
    w0 = plane.initial_state(
        {w: 0.5 + 0.3 * sp.sin(2 * sp.pi * x1) * sp.cos(2 * sp.pi * y1)})
    whole = sm.solve(plane, w0, (0.0, 0.5), saveat=np.linspace(0, 0.5, 3))
    split = sm.solve(plane.decompose(mesh(2)), w0, (0.0, 0.5),
                     saveat=np.linspace(0, 0.5, 3))
    out["grid_solve"] = float(np.max(np.abs(np.asarray(split.ys)
                                            - np.asarray(whole.ys))))
    fitted = sm.fit(grid, field, steps=3, lbfgs_steps=0, mesh=mesh(4))
    reference = sm.fit(grid, field, steps=3, lbfgs_steps=0)
    out["grid_fit"] = float(np.max(np.abs(flat(fitted.params)
                                          - flat(reference.params))))
    out["grid_repr"] = repr(grid.decompose(mesh(4)))

    # Whole fits: on one device and split over four (resampling included).
    t1 = sp.Symbol("t")
    y = sm.Field("y", [t1], hidden=[8])
    decay = sm.Model([sp.Eq(y.diff(t1), -y)], conditions=[sp.Eq(y.subs(t1, 0), 1)],
                     domain={t1: (0, 2)})
    method = sm.PhysicsInformed(points=32, resample_every=5)
    kwargs = dict(method=method, steps=12, lbfgs_steps=3)
    single = sm.fit(decay, seed=2, **kwargs)
    split = sm.fit(decay, seed=2, mesh=True, **kwargs)
    out["fit"] = float(
        np.max(np.abs(flat(split.params) - flat(single.params)))
        / np.max(np.abs(flat(single.params)))
    )
    out["fit_history"] = [len(h) for h in split.history.values()]

    # An ensemble against independent fits, its members split over 2 devices.
    kwargs = dict(method=method, steps=12, lbfgs_steps=0)
    ensemble = sm.fit_ensemble(decay, seeds=[3, 4, 5, 6], mesh=mesh(2), **kwargs)
    out["ensemble"] = [
        float(np.max(np.abs(flat(member.params) - flat(sm.fit(decay, seed=k,
              **kwargs).params))))
        for k, member in zip((3, 4, 5, 6), ensemble)
    ]
    out["ensemble_losses"] = ensemble.final_losses.tolist()
    # UDE members (each an adaptive solve's while loop), one program per
    # device, against independent fits.
    kwargs = dict(steps=3, lbfgs_steps=0, dtype=jax.numpy.float64)
    ensemble = sm.fit_ensemble(ode, data, seeds=[1, 2], mesh=mesh(2), **kwargs)
    out["ensemble_ude"] = [
        float(np.max(np.abs(flat(member.params) - flat(sm.fit(ode, data, seed=k,
              **kwargs).params))))
        for k, member in zip((1, 2), ensemble)
    ]

    def message(call):
        try:
            call()
        except sm.FitError as e:
            return str(e)
        return None

    out["errors"] = {
        "points": message(lambda: sm.fit(
            decay, method=sm.PhysicsInformed(points=30), steps=1, mesh=True)),
        "trajectories": message(lambda: sm.fit(ode, data[:1], steps=1, mesh=mesh(4))),
        "members": message(lambda: sm.fit_ensemble(
            decay, seeds=range(3), steps=1, mesh=mesh(2))),
        "mesh": message(lambda: sm.fit(decay, steps=1, mesh="gpu")),
        "grid": message(lambda: sm.fit(sm.discretize(pde, {x1: 10}),
                                       sm.Data(ts, {rho: np.ones((7, 10))}),
                                       steps=1, mesh=mesh(4))),
    }
    print("RESULT", json.dumps(out))
    """
)


def _forced_devices(n: int) -> dict:
    return dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(ROOT),
    )


@pytest.fixture(scope="module")
def measured():
    done = subprocess.run(
        [sys.executable, "-c", WORKER],
        env=_forced_devices(4),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


# float64 throughout: the sums of a split reduction differ from the unsplit
# ones by rounding only (~1e-16 relative per term).
TOLERANCE = 1e-10


@pytest.mark.slow
def test_pinn_loss_and_gradient_do_not_depend_on_devices(measured):
    assert max(measured["pinn"]) < TOLERANCE


@pytest.mark.slow
def test_ude_loss_and_gradient_do_not_depend_on_devices(measured):
    # Two trajectories × two shooting segments: four solves, batched.
    assert max(measured["ude"]) < TOLERANCE


@pytest.mark.slow
def test_fit_on_four_devices_equals_fit_on_one(measured):
    assert measured["fit"] < 1e-8
    assert measured["fit_history"] == [12, 4]


@pytest.mark.slow
def test_ensemble_members_equal_independent_fits(measured):
    assert max(measured["ensemble"]) < 1e-8
    assert np.all(np.isfinite(measured["ensemble_losses"]))
    assert max(measured["ensemble_ude"]) < 1e-8


@pytest.mark.slow
def test_mesh_that_does_not_divide_is_an_error(measured):
    errors = measured["errors"]
    assert "30 collocation points" in errors["points"]
    assert "such as 32" in errors["points"]
    assert "1 trajectories × 1 segment(s)" in errors["trajectories"]
    assert "3 members" in errors["members"]
    assert "`mesh` of `fit` must be a `jax.sharding.Mesh`" in errors["mesh"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["collocation", "collocation_default", "multistep"])
def test_fits_without_a_solve_do_not_depend_on_devices(measured, method):
    assert max(measured[method]) < TOLERANCE


@pytest.mark.slow
def test_multistep_fit_on_four_devices_equals_fit_on_one(measured):
    assert measured["multistep_fit"] < 1e-8


@pytest.mark.slow
def test_grid_split_over_devices_gives_the_same_loss_and_gradient(measured):
    # Two trajectories on an 8-point Dirichlet grid cut into 2 and 4 pieces.
    assert max(measured["grid"]) < TOLERANCE
    assert measured["grid_rhs"] < 1e-14
    assert measured["grid_fit"] < 1e-8
    assert "split over 4 device(s)" in measured["grid_repr"]


@pytest.mark.slow
def test_grid_split_exchanges_only_the_edges(measured):
    permutes, gathers = measured["grid_collectives"]
    assert permutes > 0 and gathers == 0


@pytest.mark.slow
def test_solve_of_a_decomposed_grid_equals_the_whole(measured):
    assert measured["grid_solve"] < 1e-10


@pytest.mark.slow
def test_grid_that_does_not_split_is_an_error(measured):
    message = measured["errors"]["grid"]
    assert "`x` has 10 points" in message and "4 devices" in message
    assert "`{x: 12}`" in message


def test_two_processes_quick(tmp_path):
    # Two `jax.distributed` processes on 127.0.0.1, each bounded in time by
    # the example's launcher.
    summary = load_example("multiprocess_fit").main(
        ["--quick", "--processes", "2", "--out", str(tmp_path)]
    )
    assert summary["processes"] == 2 and summary["devices"] == 2
    # float32: the split sums round differently, and 70 optimisation steps
    # carry that rounding along.
    assert summary["multiprocess_max_relative_disagreement"] < 1e-3
    assert summary["final_loss_multiprocess"] == pytest.approx(
        summary["final_loss_single"], rel=1e-2
    )
    assert (tmp_path / "summary.json").is_file()


def test_scaling_benchmark_quick(tmp_path):
    script = ROOT / "benchmarks" / "scaling.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--seed", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "overhead_2_devices_pinn",
        "overhead_4_devices_pinn",
        "overhead_2_devices_ensemble",
        "overhead_2_devices_grid",
        "overhead_4_devices_grid",
    ):
        assert summary[key] > 0
    # The grid split over devices: rounding only, and its stencils exchange
    # edges (collective permutes), never the whole state.
    assert summary["max_relative_disagreement_grid"] < 1e-4
    for collectives in summary["grid_collectives"].values():
        assert collectives["collective-permute"] > 0
        assert collectives["all-gather"] == 0
    # float32 sums in another order: rounding only.
    assert summary["max_relative_disagreement"] < 1e-4
    assert summary["multiprocess_max_relative_disagreement"] < 1e-3
    model = summary["scaling_model"]
    assert 0 < model["predicted_efficiency_8_devices_pinn"] <= 1


def _decay():
    import sympy as sp

    import symml as sm

    t = sp.Symbol("t")
    y = sm.Field("y", [t], hidden=[8])
    return sm.Model(
        [sp.Eq(y.diff(t), -y)],
        conditions=[sp.Eq(y.subs(t, 0), 1)],
        domain={t: (0, 2)},
    )


@pytest.mark.slow
def test_interrupted_ensemble_resumes_bit_for_bit(tmp_path):
    import json as _json

    import symml as sm

    model = _decay()
    # Resampled points: the members' random generators are part of the state.
    kwargs = dict(
        method=sm.PhysicsInformed(points=32, resample_every=3),
        seeds=[3, 4],
        steps=10,
        lbfgs_steps=0,
        progress=False,
    )
    whole = sm.fit_ensemble(
        model, checkpoint=tmp_path / "a", checkpoint_every=4, **kwargs
    )
    # Checkpoints at steps 4 and 8 are kept: make step 4 the latest, as if
    # the ensemble had been killed between them.
    pointer = tmp_path / "a" / "latest.json"
    assert _json.loads(pointer.read_text())["checkpoint"] == "phase0-step8"
    pointer.write_text(_json.dumps({"checkpoint": "phase0-step4"}))
    resumed = sm.fit_ensemble(
        model,
        checkpoint=tmp_path / "b",
        checkpoint_every=4,
        resume=tmp_path / "a",
        **kwargs,
    )
    for a, b in zip(whole, resumed, strict=True):
        for x, y in zip(jax_leaves(a.params), jax_leaves(b.params), strict=True):
            assert np.array_equal(x, y)
        assert np.array_equal(a.history["adam"], b.history["adam"])
        # 10 steps and the evaluation of the last update.
        assert len(a.history["adam"]) == 11
    # The resumed ensemble checkpoints as it goes, from where it resumed.
    assert (tmp_path / "b" / "phase0-step8.json").is_file()


def test_ensemble_resume_checks_its_checkpoint(tmp_path):
    import symml as sm

    model = _decay()
    kwargs = dict(
        method=sm.PhysicsInformed(points=32), steps=4, lbfgs_steps=0, progress=False
    )
    sm.fit_ensemble(
        model, seeds=[1, 2], checkpoint=tmp_path, checkpoint_every=2, **kwargs
    )
    with pytest.raises(sm.FitError, match="belongs to another ensemble"):
        sm.fit_ensemble(
            model,
            seeds=[1, 5],
            checkpoint=tmp_path / "c",
            checkpoint_every=2,
            resume=tmp_path,
            **kwargs,
        )
    with pytest.raises(sm.FitError, match="`resume` needs the `checkpoint=`"):
        sm.fit_ensemble(model, seeds=[1, 2], resume=tmp_path, **kwargs)
    with pytest.raises(sm.FitError, match="holds no checkpoint"):
        sm.fit_ensemble(
            model,
            seeds=[1, 2],
            checkpoint=tmp_path / "d",
            checkpoint_every=2,
            resume=tmp_path / "empty",
            **kwargs,
        )


def jax_leaves(tree):
    import equinox as eqx
    import jax

    return [np.asarray(a) for a in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]


def test_collocation_ensemble_bootstraps_its_rows():
    import sympy as sp

    import symml as sm

    s = sp.Symbol("s")
    (a,) = sm.states("a", s)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(a.diff(s), -k * a)], parameters={k: sm.trainable(0.5)})
    ts = np.linspace(0.0, 2.0, 21)
    noise = np.random.default_rng(0).normal(0, 0.02, ts.size)
    data = sm.Data(ts, {a: np.exp(-ts) + noise})
    ensemble = sm.fit_ensemble(
        model,
        data,
        method=sm.Collocation(match="derivative"),
        seeds=[0, 1, 2],
        bootstrap=True,
        steps=200,
        lbfgs_steps=0,
        learning_rate=1e-2,
        progress=False,
    )
    rates = ensemble.parameter_values()[k]
    # Each member fits its own resample of the rows: the rates differ, and
    # all lie near the true rate 1.
    assert len(set(np.round(rates, 12))) == 3
    assert np.all(np.abs(rates - 1.0) < 0.2)
