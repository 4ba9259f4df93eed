"""`symml.plot`: each function returns a figure with the artists it promises,
on quick fits; bad arguments raise `ExportError`."""

import subprocess
import sys

import numpy as np
import pytest
import sympy as sp
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

import symml as sm

# The tests share module-scoped fits: `--dist loadgroup` runs them on one
# worker, which computes each fit once.
pytestmark = pytest.mark.xdist_group("plot")


@pytest.fixture(scope="module")
def ude():
    """x' = -x + U(x), y' = V(x, y): an unknown of one input and one of two."""
    t = sp.Symbol("t")
    x, y = sm.states("x y", t)
    U = sm.Unknown("U", inputs=[x], hidden=[4], input_range=((0,), (2,)))
    V = sm.Unknown("V", inputs=[x, y], hidden=[4])
    model = sm.Model([sp.Eq(x.diff(t), -x + U[0]), sp.Eq(y.diff(t), V[0])])
    ts = np.linspace(0.0, 1.0, 6)
    data = sm.Data(ts, {x: 2 * np.exp(-ts), y: 1 + ts})
    result = sm.fit(model, data, steps=3, lbfgs_steps=0)
    return result, data, x, y, U, V


@pytest.fixture(scope="module")
def pinn():
    """u_t = u_xx on a square, observed at a few points."""
    t, x = sp.symbols("t x")
    u = sm.Field("u", [t, x], hidden=[4])
    model = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2))],
        conditions=[sp.Eq(u.subs(t, 0), sp.sin(sp.pi * x))],
        domain={t: (0, 1), x: (0, 1)},
    )
    ts, xs = np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.5, 0.8])
    data = sm.Data.points({t: ts, x: xs}, {u: np.exp(-ts) * np.sin(np.pi * xs)})
    method = sm.PhysicsInformed(points=16, boundary_points=8)
    return sm.fit(model, data, method=method, steps=3, lbfgs_steps=0), t, x


def _images(fig):
    return [a for ax in fig.axes for a in ax.get_images()]


def _labels(ax):
    # Lines with a legend entry (matplotlib names the others `_child<n>`).
    return [
        line.get_label()
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    ]


def test_fit_draws_data_and_simulation(ude):
    result, data, *_ = ude
    fig = sm.plot.fit(result, data)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert _labels(ax) == ["x, data", "x, fit", "y, data", "y, fit"]
    data_x, fit_x = ax.get_lines()[:2]
    np.testing.assert_allclose(data_x.get_xdata(), data.t)
    assert len(fit_x.get_xdata()) == 200  # a smooth curve over the data's span


def test_fit_overlays_into_an_axes_with_truth(ude):
    result, data, x, *_ = ude
    ts = np.linspace(0.0, 2.0, 50)  # past the data: an extrapolation
    fig = sm.plot.fit(result, data, t=ts, states=[x], truth={x: 2 * np.exp(-ts)})
    ax = fig.axes[0]
    assert _labels(ax) == ["x, truth", "x, data", "x, fit"]
    sm.plot.fit(result, t=ts, y0={"x": 1.0, "y": 0.0}, ax=ax, label="from y0")
    assert _labels(ax)[-2:] == ["x, from y0", "y, from y0"]


def test_fit_errors(ude):
    result, data, *_ = ude
    with pytest.raises(sm.ExportError, match="`states` names `z`"):
        sm.plot.fit(result, data, states=["z"])
    with pytest.raises(sm.ExportError, match="With `y0` and no data, give the times"):
        sm.plot.fit(result, y0={"x": 1.0, "y": 0.0})
    with pytest.raises(sm.ExportError, match="`trajectory=3` is out of range"):
        sm.plot.fit(result, trajectory=3)
    with pytest.raises(sm.ExportError, match="`ax` must be a matplotlib `Axes`"):
        sm.plot.fit(result, ax="left")
    with pytest.raises(sm.ExportError, match="`truth` has 2 entries for 1"):
        sm.plot.fit(result, truth=[{}, {}])
    with pytest.raises(sm.ExportError, match="draws fits of ODE systems"):
        sm.plot.fit(object())


def test_unknowns_draws_curves_and_clouds(ude):
    result, _, x, y, U, V = ude
    fig = sm.plot.unknowns(result, {U[0]: x / 2, "V_0": lambda a, b: a * b})
    assert isinstance(fig, Figure)
    curve, cloud, error, blank = fig.axes[:4]
    # One input: the network over the declared input range, the truth, the
    # samples, and the difference from the truth below.
    assert _labels(curve) == ["truth", "network", "along the fit"]
    np.testing.assert_allclose(curve.get_lines()[1].get_xdata()[[0, -1]], [0, 2])
    assert _labels(error) == ["network − truth"]
    # Two inputs with a truth: learned against true values.
    assert _labels(cloud) == ["equal", "network"]
    assert not blank.axison
    fig = sm.plot.unknowns(result)
    assert any(isinstance(c, PathCollection) for c in fig.axes[1].collections)


def test_unknowns_with_a_discovery(ude):
    result, *_ = ude
    found = sm.discover(result, library=sm.PolynomialLibrary(degree=1))
    fig = sm.plot.unknowns(result, recovered=found)
    assert "recovered" in _labels(fig.axes[0])
    assert _labels(fig.axes[2]) == ["recovered − network"]


def test_unknowns_errors(ude):
    result, _, x, *_ = ude
    t = sp.Symbol("t")
    with pytest.raises(sm.ExportError, match="contains q, which are not inputs"):
        sm.plot.unknowns(result, {"U_0": sp.Symbol("q") * x})
    with pytest.raises(sm.ExportError, match="`span` must have low < high"):
        sm.plot.unknowns(result, span=(1, 0))
    with pytest.raises(sm.ExportError, match="`truth` must be a dict"):
        sm.plot.unknowns(result, [t])
    with pytest.raises(sm.ExportError, match="draws the unknowns of a fit result"):
        sm.plot.unknowns(None)


def test_discovery_draws_fronts_and_coefficients(ude):
    result, *_ = ude
    found = sm.discover(result, library=sm.PolynomialLibrary(degree=1))
    fig = sm.plot.discovery(found)
    assert isinstance(fig, Figure)
    fronts, bars = fig.axes[:2], fig.axes[2:]
    for ax, key in zip(fronts, found.fronts, strict=True):
        front = found.fronts[key]
        labels = _labels(ax)
        assert labels[0] == "error" and "chosen" in labels
        np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), front.n_terms)
    for ax, key in zip(bars, found.terms, strict=True):
        assert len(ax.patches) == len(found.terms[key])
    with pytest.raises(sm.ExportError, match="draws a `symml.Discovery`"):
        sm.plot.discovery(result)


def test_field_draws_space_time_images(pinn):
    result, t, x = pinn
    fig = sm.plot.field(result, resolution=20)
    images = _images(fig)
    assert len(images) == 1 and images[0].get_array().shape == (20, 20)

    def reference(t, x):
        return np.exp(-(np.pi**2) * t) * np.sin(np.pi * x)

    fig = sm.plot.field(result, reference=reference, resolution=21, slices=[0, 0.5])
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles == ["u, network", "u, reference", "network − reference"]
    slice_axes = [ax for ax in fig.axes if ax.get_title().startswith("t = ")]
    assert [ax.get_title() for ax in slice_axes] == ["t = 0", "t = 0.5"]
    assert _labels(slice_axes[0]) == ["u, reference", "u, network"]
    with pytest.raises(sm.ExportError, match="`reference` of `u` has shape"):
        sm.plot.field(result, reference={"u": np.zeros(3)}, resolution=20)
    with pytest.raises(sm.ExportError, match="physics-informed fit"):
        sm.plot.field(object())


def test_fit_of_a_pinn_is_observed_against_network(pinn):
    result, *_ = pinn
    fig = sm.plot.fit(result)
    (ax,) = fig.axes
    assert _labels(ax) == ["equal", "u"]
    assert len(ax.get_lines()[1].get_xdata()) == 3


# A fit of a discretised PDE of its own (compiled for this test only).
@pytest.mark.slow
def test_fit_of_a_discretised_pde_draws_images():
    t, x = sp.symbols("t x")
    (rho,) = sm.states("rho", t, x)
    N = sm.Unknown("N", inputs=[rho], hidden=[4])
    model = sm.Model(
        [sp.Eq(rho.diff(t), N[0] + sp.Rational(1, 100) * rho.diff(x, 2))],
        domain={x: (0, 1)},
        boundary="periodic",
    )
    system = sm.discretize(model, {x: 8})
    ts = np.linspace(0.0, 0.2, 4)
    values = 0.5 + 0.1 * np.sin(2 * np.pi * system.grid[x])[None, :] * np.ones((4, 1))
    result = sm.fit(system, sm.Data(ts, {rho: values}), steps=2, lbfgs_steps=0)
    fig = sm.plot.fit(result)
    images = _images(fig)
    assert len(images) == 3 and all(isinstance(i, AxesImage) for i in images)
    assert [ax.get_title() for ax in fig.axes if ax.get_images()] == [
        "data",
        "fit (rho)",
        "fit − data",
    ]


@pytest.mark.slow
def test_import_symml_does_not_import_matplotlib():
    code = "import sys, symml; print('matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
