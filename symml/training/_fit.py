from .._errors import FitError
from ..discretization import DiscretizedModel
from ..dsl import Model
from ._pinn import fit_pinn
from ._ude import fit_ude


def fit(model: Model, data=None, **options):
    """Train a model's unknown terms and trainable parameters.

    **Arguments:**

    - `model`: a [`Model`][symml.Model] with states (an ODE: fitted as a
      universal differential equation, with an ODE solve inside the loss), a
      [`DiscretizedModel`][symml.DiscretizedModel] (a PDE by the method of
      lines, fitted the same way), or a model with fields (a physics-informed
      network, trained on its residuals: see below).
    - `data`: a [`Data`][symml.Data] or a list of them (one per trajectory).
    - `seed`: seeds the networks' initial weights; the same seed gives the same
      result on the same machine.
    - `steps`, `learning_rate`: the Adam phase; `lbfgs_steps`: the L-BFGS phase
      that follows. `phases=[symml.adam(...), symml.lbfgs(...)]` replaces both.
    - `solver` (a diffrax solver or its name, Tsit5 by default), `rtol`,
      `atol`, `adjoint` (`"recursive"`, `"backsolve"`, `"direct"` or a diffrax
      adjoint), `max_steps`: the ODE solve inside the loss.
    - `initial`: `{state: value}` initial guesses of unobserved states.
    - `shooting`: split each trajectory into this many segments (multiple
      shooting): each segment starts from a trainable state, initialised from
      the data, and `continuity` (default 10) weighs the mismatch between a
      segment's end and the next one's start. It makes long or oscillatory
      trajectories easier to fit; `None` (the default) solves each trajectory
      in one piece.
    - `penalties`: a list of [`Penalty`][symml.Penalty] terms added to the
      loss, e.g. `Penalty(U[0].diff(x)**2, over={x: (0, 5), y: (0, 5)},
      weight=1e-3)`: symbolic, derivatives of unknowns included, and
      differentiated with respect to the weights like the rest of the loss.
    - `progress`: show a progress line (default: only on a terminal).

    Physics-informed fits (models with fields) take instead: `derivatives`
    (`"taylor"` by default, `"forward"`, `"reverse"`, `"fd"`, or a dict per
    derivative), `points` and `boundary_points` (collocation points per
    equation and per condition), `sampling` (`"sobol"`, `"halton"`,
    `"uniform"`, `"grid"`), `resample_every`, `weights` (`{term or equation:
    weight}`), `adaptive` (`"grad_norm"`: weights balanced by gradient size),
    `steps`, `learning_rate`, `lbfgs_steps`.

    **Returns:** a [`FitResult`][symml.FitResult].
    """
    if isinstance(model, DiscretizedModel):
        if data is None:
            raise FitError(
                "Fitting a discretised PDE needs observations on its grid: pass "
                "`data=symml.Data(t, {field: values of shape (T, *grid)})`."
            )
        return fit_ude(model, data, **options)
    if not isinstance(model, Model):
        raise FitError(
            f"`fit` needs a symml `Model` or a `DiscretizedModel`; got "
            f"{type(model).__name__}."
        )
    if model.kind == "ode":
        if data is None:
            raise FitError(
                "Fitting an ODE model needs observations: pass `data=symml.Data(t, "
                "{state: values})`."
            )
        return fit_ude(model, data, **options)
    if model.kind == "pinn":
        if data is not None:
            raise FitError(
                "Physics-informed fits train on the model's residuals and "
                "conditions; observations of fields are not supported yet. Leave "
                "out `data`."
            )
        return fit_pinn(model, **options)
    raise FitError(
        f"`fit` does not yet handle {model.kind.upper()} models; discretise a PDE "
        "with `symml.discretize` first."
    )
