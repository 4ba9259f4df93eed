"""Saving and loading: fit results, discoveries and models come back from a
file exactly (predictions bit for bit, expressions as sympy's own `srepr`),
without pickle or `eval`, and a damaged or foreign file is a
`PersistenceError`."""

import json
import pickle
import subprocess
import sys
import warnings
import zipfile
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import symml as sm
from symml.io import FORMAT, register_format

# The tests share module-scoped fits: `--dist loadgroup` runs them on one
# worker, which computes each fit once.
pytestmark = pytest.mark.xdist_group("io")

t, x_ = sp.symbols("t x")
alpha, delta, k = sp.symbols("alpha delta k")


def _same(a, b) -> bool:
    """Bitwise equality of two arrays (NaNs included)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _srepr(items) -> str:
    return sp.srepr(tuple(items))


@pytest.fixture(scope="module")
def lv():
    x, y = sm.states("x y", t)
    U = sm.Unknown("U", inputs=[x, y], outputs=2, hidden=[8])
    model = sm.Model(
        [sp.Eq(x.diff(t), alpha * x + U[0]), sp.Eq(y.diff(t), -delta * y + U[1])],
        parameters={alpha: sm.trainable(1.2), delta: 1.8},
        conditions=[sp.Eq(x.subs(t, 0), 1.0), sp.Eq(y.subs(t, 0), 0.5)],
        domain={t: (0, 3)},
    )
    ts = np.linspace(0.0, 2.0, 9)
    data = [
        sm.Data(ts, {x: 1 + np.sin(ts), y: np.exp(-0.3 * ts)}),
        sm.Data(ts[:5], {x: 2 - ts[:5] ** 2 / 4}),
    ]
    result = sm.fit(model, data, seed=3, steps=4, lbfgs_steps=0)
    return SimpleNamespace(model=model, x=x, y=y, U=U, data=data, result=result)


@pytest.fixture
def saved(tmp_path, lv):
    path = tmp_path / "lv.symml"
    assert sm.save(path, lv.result) == path
    return path


def test_ude_result_predicts_bit_for_bit(saved, lv):
    loaded = sm.load(saved)
    assert isinstance(loaded, sm.UDEResult)
    ts = np.linspace(0.0, 3.0, 31)
    for trajectory in (0, 1):
        a = lv.result.predict(ts, trajectory=trajectory).ys
        b = loaded.predict(ts, trajectory=trajectory).ys
        assert _same(a, b)
    a = lv.result.predict(ts, y0={"x": 0.3, "y": 2.0}, t0=-1.0).ys
    b = loaded.predict(ts, y0={"x": 0.3, "y": 2.0}, t0=-1.0).ys
    assert _same(a, b)
    # Keyed by the loaded model's own states, as `Data` is.
    assert _same(
        loaded.predict(ts)[loaded.model.states[0]], lv.result.predict(ts)[lv.x]
    )
    for s, s2 in zip(lv.result.initial_states, loaded.initial_states, strict=True):
        assert _same(s, s2)


def test_ude_result_metadata_and_model(saved, lv):
    loaded = sm.load(saved)
    original = lv.result
    assert loaded.seed == 3
    assert loaded.method == original.method
    assert loaded.options == original.options
    assert loaded.wall_time == original.wall_time
    assert list(loaded.history) == list(original.history)
    for name in original.history:
        assert _same(loaded.history[name], original.history[name])
    assert loaded.final_loss == original.final_loss
    assert loaded.parameter_values() == {alpha: original.parameter_values()[alpha]}
    m, m0 = loaded.model, lv.model
    assert loaded.system.model is m  # one model, shared as in the original
    assert _srepr(m.equations) == _srepr(m0.equations)
    assert _srepr(m.conditions) == _srepr(m0.conditions)
    assert _srepr(m.rhs) == _srepr(m0.rhs)
    assert m.parameters == m0.parameters
    assert m.domain == m0.domain and m.initial_values == m0.initial_values
    assert [u.name for u in m.unknowns] == ["U"]
    assert m.unknowns[0].hidden == (8,) and m.unknowns[0].inputs == lv.U.inputs
    assert sm.to_latex(m) == sm.to_latex(m0)
    for d, d0 in zip(loaded.data, lv.data, strict=True):
        assert _same(d.t, d0.t) and d.names == d0.names
        assert all(_same(d.values[n], d0.values[n]) for n in d.names)


# Two discoveries, each simulating its own result (compiled anew); the
# discovery round trip below runs in the fast subset.
@pytest.mark.slow
def test_loaded_result_discovers_as_the_original(saved, lv):
    loaded = sm.load(saved)
    with warnings.catch_warnings():
        # A four-step fit explains nothing sparsely; only equality matters here.
        warnings.simplefilter("ignore", sm.SymmlWarning)
        a, b = sm.discover(lv.result), sm.discover(loaded)
    assert _srepr(a.expressions.values()) == _srepr(b.expressions.values())
    assert sm.to_latex(a.model) == sm.to_latex(b.model)


@pytest.mark.slow
def test_loaded_result_starts_a_new_fit(saved, lv):
    loaded = sm.load(saved)
    again = sm.fit(loaded.model, list(loaded.data), init=loaded, steps=1, lbfgs_steps=0)
    assert np.isfinite(again.final_loss)
    with pytest.raises(sm.FitError, match="another model"):
        sm.fit(lv.model, lv.data, init=loaded, steps=1)


# A fit of a discretised PDE of its own; the UDE round trip above runs in the
# fast subset.
@pytest.mark.slow
def test_discretized_fit_round_trip(tmp_path):
    (rho,) = sm.states("rho", t, x_)
    D = sp.Symbol("D")
    pde = sm.Model(
        [sp.Eq(rho.diff(t), D * rho.diff(x_, 2) + rho * (1 - rho))],
        parameters={D: sm.trainable(0.05)},
        domain={x_: (0, 1)},
        boundary="periodic",
    )
    system = sm.discretize(pde, {x_: 8}, order=4)
    xs = np.asarray(system.grid[x_])
    ts = np.linspace(0, 0.5, 5)
    values = 0.5 + 0.1 * np.sin(2 * np.pi * xs)[None] * np.exp(-ts)[:, None]
    method = sm.SolveInLoop(solver="Tsit5")
    result = sm.fit(
        system, sm.Data(ts, {rho: values}), method=method, steps=1, lbfgs_steps=0
    )
    sm.save(tmp_path / "pde.symml", result)
    loaded = sm.load(tmp_path / "pde.symml")
    assert isinstance(loaded.system, sm.DiscretizedModel)
    assert loaded.system.order == 4 and loaded.system.shape == (8,)
    assert loaded.model.boundary == {x_: "periodic"}
    assert _same(result.predict(ts).ys, loaded.predict(ts).ys)


# A physics-informed fit of its own; the UDE round trip above runs in the fast
# subset.
@pytest.mark.slow
def test_pinn_result_round_trip(tmp_path):
    # An inverse problem: observations of `u` and a trainable rate, so the
    # saved result holds data terms and a parameter optimised in units.
    u = sm.Field("u", [t], hidden=[6])
    model = sm.Model(
        [sp.Eq(u.diff(t), -k * u)],
        conditions=[sp.Eq(u.subs(t, 0), 1)],
        parameters={k: sm.trainable(0.4)},
        domain={t: (0, 2)},
    )
    ts = np.linspace(0, 2, 9)
    data = sm.Data.points({t: ts}, {u: np.exp(-0.7 * ts)})
    method = sm.PhysicsInformed(points=16, boundary_points=2, sampling="uniform")
    result = sm.fit(model, data, method=method, steps=2, lbfgs_steps=0)
    sm.save(tmp_path / "pinn.symml", result)
    loaded = sm.load(tmp_path / "pinn.symml")
    assert isinstance(loaded, sm.PINNResult)
    ts = np.linspace(0, 2, 11)
    assert _same(result.predict(t=ts)["u"], loaded.predict(t=ts)["u"])
    for a, b in zip(result.residuals(t=ts), loaded.residuals(t=ts), strict=True):
        assert _same(a, b)
    assert loaded.weights == result.weights and loaded.method == method
    assert loaded.parameter_values() == result.parameter_values()
    assert [o.labels for o in loaded.data] == [o.labels for o in result.data]
    assert _same(loaded.data[0].targets, result.data[0].targets)


def _lv_discovery():
    x, y = sm.states("x y", t)
    U = sm.Unknown("U", [x, y], outputs=2)
    model = sm.Model(
        [sp.Eq(x.diff(t), alpha * x + U[0]), sp.Eq(y.diff(t), -delta * y + U[1])],
        parameters={alpha: 1.3, delta: sm.trainable(1.0)},
    )
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0.0, 5.0, size=(200, 2))
    xy = inputs[:, 0] * inputs[:, 1]
    samples = {"U": (inputs, np.stack([-0.9 * xy, 0.8 * xy], axis=1))}
    fit_like = SimpleNamespace(
        model=model,
        unknown_samples=lambda: samples,
        parameter_values=lambda: {delta: 1.8},
    )
    return sm.discover(fit_like), x, y


def test_discovery_round_trip(tmp_path):
    found, x, y = _lv_discovery()
    sm.save(tmp_path / "d.symml", found)
    loaded = sm.load(tmp_path / "d.symml")
    assert isinstance(loaded, sm.Discovery)
    assert _srepr(loaded.expressions.items()) == _srepr(found.expressions.items())
    assert _srepr(loaded.terms[k] for k in loaded.terms) == _srepr(
        found.terms[k] for k in found.terms
    )
    assert loaded.parameter_values == found.parameter_values
    assert sm.to_latex(loaded.model) == sm.to_latex(found.model)
    assert _srepr(loaded.model.rhs) == _srepr(found.model.rhs)
    assert str(loaded) == str(found)
    for a, b in zip(loaded.fronts.values(), found.fronts.values(), strict=True):
        assert a.to_dict() == b.to_dict()
    assert _srepr(loaded.coefficient_terms().items()) == _srepr(
        found.coefficient_terms().items()
    )
    assert sm.to_latex(loaded.trainable_model()) == sm.to_latex(found.trainable_model())
    # The recovered model is a model like any other: it lowers and solves.
    f, _ = sm.lower(loaded.model)
    assert _same(
        f(0.0, jnp.array([1.0, 2.0])),
        sm.lower(found.model)[0](0.0, jnp.array([1.0, 2.0])),
    )
    # The two models of a discovery share their states, as in the original.
    assert loaded.model.states == loaded.fitted_model.states


def test_discovery_from_data_round_trip(tmp_path):
    (x,) = sm.states("x", t)
    ts = np.linspace(0, 4, 81)
    found = sm.discover(sm.Data(ts, {x: 3 * np.exp(-0.5 * ts)}))
    sm.save(tmp_path / "d.symml", found)
    loaded = sm.load(tmp_path / "d.symml")
    assert _srepr(loaded.expressions.items()) == _srepr(found.expressions.items())
    assert loaded.details == found.details
    assert sm.to_latex(loaded.trainable_model()) == sm.to_latex(found.trainable_model())


class softclip(sp.Function):
    pass


@pytest.mark.parametrize(
    "make",
    [
        # Assumptions, exact and high-precision numbers, constants, piecewise
        # terms, second order: each must come back exactly as sympy wrote it.
        lambda: _second_order(),
        lambda: _field_model(),
        lambda: _pde_model(),
    ],
)
def test_models_round_trip_exactly(tmp_path, make):
    model = make()
    sm.save(tmp_path / "m.symml", model)
    loaded = sm.load(tmp_path / "m.symml")
    assert type(loaded) is type(model)
    assert _srepr(loaded.equations) == _srepr(model.equations)
    assert _srepr(loaded.conditions) == _srepr(model.conditions)
    assert loaded.parameters == model.parameters
    assert loaded.domain == model.domain and loaded.boundary == model.boundary
    assert sm.to_latex(loaded) == sm.to_latex(model)


def _second_order():
    s = sp.Symbol("s", real=True, positive=True)
    (q,) = sm.states("q", s)
    w = sp.Symbol("w", positive=True)
    return sm.Model(
        [
            sp.Eq(
                q.diff(s, 2),
                -(w**2) * q
                + sp.Rational(1, 3) * sp.Abs(q.diff(s))
                + sp.Float("0.1234567890123456789012345", 30) * sp.pi
                + sp.Piecewise((sp.exp(-s), s < 1), (0, True))
                + sp.sign(q) * sp.E,
            )
        ],
        conditions=[
            sp.Eq(q.subs(s, 0), 1),
            sp.Eq(q.diff(s).subs(s, 0), sp.Rational(1, 2)),
        ],
        parameters={w: sm.trainable(2.0)},
    )


def _field_model():
    u = sm.Field("u", [t, x_], hidden=[4, 4], activation="sin")
    c = sp.Symbol("c")
    return sm.Model(
        [sp.Eq(u.diff(t), c * u.diff(x_, 2) - u**3 + u)],
        conditions=[
            sp.Eq(u.subs(t, 0), x_**2 * sp.cos(sp.pi * x_)),
            sp.Eq(u.subs(x_, -1), u.subs(x_, 1)),
        ],
        parameters={c: 1e-4},
        domain={t: (0, 1), x_: (-1, 1)},
    )


def _pde_model():
    y_ = sp.Symbol("y")
    rho, v = sm.states("rho v", t, x_, y_)
    N = sm.Unknown("N", [rho, rho.diff(x_)], hidden=[3], input_range=((0, -1), (1, 1)))
    return sm.Model(
        [
            sp.Eq(rho.diff(t), rho.diff(x_, 2) + N[0]),
            sp.Eq(v.diff(t), v.diff(y_, 2) - rho * v),
        ],
        domain={x_: (0, 1), y_: (0, 2)},
        boundary={x_: "periodic", y_: "neumann"},
    )


def test_registered_function_round_trips(tmp_path):
    sm.register_function(softclip, lambda z: z / (1 + jnp.abs(z)))
    (x,) = sm.states("x", t)
    model = sm.Model([sp.Eq(x.diff(t), softclip(x))])
    sm.save(tmp_path / "m.symml", model)
    loaded = sm.load(tmp_path / "m.symml")
    assert _srepr(loaded.equations) == _srepr(model.equations)


def test_register_format_for_a_new_class(tmp_path):
    class Box:
        def __init__(self, expr, values):
            self.expr, self.values = expr, values

    register_format(
        Box,
        "test_io.Box",
        lambda b, w: {"expr": w.expr(b.expr), "values": w.array(b.values)},
        lambda d, r: Box(r.expr(d["expr"]), r.array(d["values"])),
    )
    box = Box(sp.sin(t) ** 2, np.arange(3.0))
    sm.save(tmp_path / "b.symml", box)
    loaded = sm.load(tmp_path / "b.symml")
    assert loaded.expr == box.expr and _same(loaded.values, box.values)
    with pytest.raises(sm.PersistenceError, match="already used by another class"):
        register_format(dict, "test_io.Box", lambda b, w: 0, lambda d, r: 0)
    with pytest.raises(sm.PersistenceError, match="`encode` of `register_format`"):
        register_format(Box, "test_io.Box2", None, lambda d, r: 0)


# -- what cannot be saved, and files that cannot be loaded -----------------------------


def test_unsavable_objects(tmp_path):
    with pytest.raises(sm.PersistenceError, match="no saved form for int"):
        sm.save(tmp_path / "x.symml", 3)
    (x,) = sm.states("x", t)
    model = sm.Model([sp.Eq(x.diff(t), -x)])
    with pytest.raises(sm.PersistenceError, match="is a directory"):
        sm.save(tmp_path, model)
    with pytest.raises(sm.PersistenceError, match="does not exist; create it"):
        sm.save(tmp_path / "missing" / "m.symml", model)
    assert not list(tmp_path.iterdir())  # nothing half-written was left


def test_unsavable_option_names_the_option(tmp_path, lv):
    import dataclasses

    import diffrax as dfx

    method = sm.SolveInLoop(solver=dfx.Kvaerno5(root_find_max_steps=3))
    result = dataclasses.replace(lv.result, method=method)
    with pytest.raises(sm.PersistenceError, match="the fit method.solver: the diffrax"):
        sm.save(tmp_path / "r.symml", result)
    assert not list(tmp_path.iterdir())


def test_a_failed_save_leaves_the_old_file(tmp_path, saved, monkeypatch):
    before = saved.read_bytes()

    def broken(self, name, data, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", broken)
    with pytest.raises(OSError):
        sm.save(saved, sm.load(saved))
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def _rewrite(path, edit):
    """Rewrite the `symml.json` of a saved file with `edit(meta)`."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(members["symml.json"])
    edit(meta)
    members["symml.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def test_files_that_cannot_be_loaded(tmp_path, saved):
    with pytest.raises(sm.PersistenceError, match="does not exist"):
        sm.load(tmp_path / "nothing.symml")
    with pytest.raises(sm.PersistenceError, match="is a directory"):
        sm.load(tmp_path)
    with pytest.raises(sm.PersistenceError, match="`path` must be a file name"):
        sm.load(3.5)
    junk = tmp_path / "junk.symml"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(sm.PersistenceError, match="not a symml file"):
        sm.load(junk)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(sm.PersistenceError, match="not a symml file"):
        sm.load(other)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.99])
def test_truncated_files(tmp_path, saved, cut):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(sm.PersistenceError, match="truncated or corrupted"):
        sm.load(saved)


def test_corrupted_bytes(tmp_path, saved):
    # Flip bytes inside each member: the archive's checksums catch it.
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        offsets = [
            info.header_offset + 30 + len(info.filename) + 5 for info in z.infolist()
        ]
    for offset in offsets:
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        saved.write_bytes(bytes(damaged))
        with pytest.raises(sm.PersistenceError, match="corrupted"):
            sm.load(saved)


def test_another_format_version(saved):
    _rewrite(saved, lambda m: m.update(version=FORMAT + 1, versions={"symml": "9.0"}))
    with pytest.raises(sm.PersistenceError, match=r"format 2 \(written by symml 9.0\)"):
        sm.load(saved)


def test_a_tampered_tree_builds_nothing_unlisted(saved):
    def edit(meta):
        eq = meta["models"][0]["equations"][0]
        eq[0] = "os.system"

    _rewrite(saved, edit)
    with pytest.raises(sm.PersistenceError, match="`os.system`, which is not among"):
        sm.load(saved)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["models"][0].update(kind="PDEModel"),
        lambda m: m["models"][0]["parameters"].clear(),
        lambda m: m["declarations"]["unknowns"]["U"].update(hidden=[9]),
        lambda m: m["root"]["data"].pop("seed"),
        lambda m: m["root"].update(format="Nothing"),
        lambda m: m["models"][0]["equations"][0].append(["Integer", "x"]),
    ],
)
def test_inconsistent_files(saved, edit):
    _rewrite(saved, edit)
    with pytest.raises(sm.PersistenceError, match=f"Cannot load `{saved}`"):
        sm.load(saved)


def test_pickled_arrays_are_refused(saved):
    with zipfile.ZipFile(saved) as z:
        members = {n: z.read(n) for n in z.namelist()}
    import io

    buffer = io.BytesIO()
    np.savez(buffer, a0=np.array([{"evil": 1}], dtype=object))
    members["arrays.npz"] = buffer.getvalue()
    with zipfile.ZipFile(saved, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(sm.PersistenceError, match="corrupted"):
        sm.load(saved)


def test_pickling_points_to_save():
    (x,) = sm.states("x", t)
    U = sm.Unknown("U", [x])
    model = sm.Model([sp.Eq(x.diff(t), U[0])])
    for obj in (model, U):
        with pytest.raises(sm.ModelError, match=r"symml\.save"):
            pickle.dumps(obj)


@pytest.mark.slow
def test_float64_file_needs_x64(tmp_path):
    (x,) = sm.states("x", t)
    model = sm.Model([sp.Eq(x.diff(t), -k * x)], parameters={k: sm.trainable(0.3)})
    data = sm.Data(np.linspace(0, 1, 5), {x: np.exp(-np.linspace(0, 1, 5))})
    sm.save(tmp_path / "r.symml", sm.fit(model, data, steps=1, lbfgs_steps=0))
    code = (
        "import symml as sm\n"
        "try:\n"
        f"    sm.load({str(tmp_path / 'r.symml')!r})\n"
        "except sm.PersistenceError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert "jax.config.update('jax_enable_x64', True)" in out.stdout, out.stderr


@pytest.mark.slow
def test_float32_fit_round_trips_without_x64(tmp_path):
    """In JAX's default float32, a fit's numpy parts (times, data, losses) are
    float64 but load as numpy: the file loads, and predicts bit for bit."""
    code = f"""
import numpy as np, sympy as sp, symml as sm
t, k = sp.symbols("t k")
(x,) = sm.states("x", t)
model = sm.Model([sp.Eq(x.diff(t), -k * x)], parameters={{k: sm.trainable(0.3)}})
ts = np.linspace(0, 1, 5)
result = sm.fit(model, sm.Data(ts, {{x: np.exp(-ts)}}), steps=3, lbfgs_steps=0)
sm.save({str(tmp_path / "r.symml")!r}, result)
loaded = sm.load({str(tmp_path / "r.symml")!r})
a, b = np.asarray(result.predict(ts).ys), np.asarray(loaded.predict(ts).ys)
print(a.dtype, a.tobytes() == b.tobytes())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.stdout.split() == ["float32", "True"], out.stderr
