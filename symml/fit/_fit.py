from .._errors import FitError
from ..dsl import Model
from ._ude import fit_ude


def fit(model: Model, data=None, **options):
    """Train a model's unknown terms and trainable parameters.

    **Arguments:**

    - `model`: a [`Model`][symml.Model] with states (an ODE: fitted as a
      universal differential equation, with an ODE solve inside the loss).
    - `data`: a [`Data`][symml.Data] or a list of them (one per trajectory).
    - `seed`: seeds the networks' initial weights; the same seed gives the same
      result on the same machine.
    - `steps`, `learning_rate`: the Adam phase; `lbfgs_steps`: the L-BFGS phase
      that follows. `phases=[symml.adam(...), symml.lbfgs(...)]` replaces both.
    - `solver` (a diffrax solver or its name, Tsit5 by default), `rtol`,
      `atol`, `adjoint` (`"recursive"`, `"backsolve"`, `"direct"` or a diffrax
      adjoint), `max_steps`: the ODE solve inside the loss.
    - `initial`: `{state: value}` initial guesses of unobserved states.
    - `progress`: show a progress line (default: only on a terminal).

    **Returns:** a [`FitResult`][symml.FitResult].
    """
    if not isinstance(model, Model):
        raise FitError(f"`fit` needs a symml `Model`; got {type(model).__name__}.")
    if model.kind == "ode":
        if data is None:
            raise FitError(
                "Fitting an ODE model needs observations: pass `data=symml.Data(t, "
                "{state: values})`."
            )
        return fit_ude(model, data, **options)
    raise FitError(
        f"`fit` does not yet handle {model.kind.upper()} models; discretise a PDE "
        "with `symml.discretize` first."
    )
