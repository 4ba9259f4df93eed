"""The result of a UDE fit: the trained model and the means to use it."""

from dataclasses import dataclass, field

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from ..dsl import Model
from ..lowering import CompiledRHS, Params
from ..dsl import Data


@dataclass(frozen=True)
class SolverOptions:
    """How the ODE is solved inside the loss and in predictions."""

    solver: dfx.AbstractSolver
    rtol: float
    atol: float
    adjoint: dfx.AbstractAdjoint
    max_steps: int

    @eqx.filter_jit
    def solve(self, rhs, params, y0, ts, *, throw: bool = False) -> dfx.Solution:
        controller = (
            dfx.PIDController(rtol=self.rtol, atol=self.atol)
            if isinstance(self.solver, dfx.AbstractAdaptiveSolver)
            else dfx.ConstantStepSize()
        )
        dt0 = None if isinstance(controller, dfx.PIDController) else (ts[1] - ts[0])
        return dfx.diffeqsolve(
            dfx.ODETerm(rhs),
            self.solver,
            t0=ts[0],
            t1=ts[-1],
            dt0=dt0,
            y0=y0,
            args=params,
            saveat=dfx.SaveAt(ts=ts),
            stepsize_controller=controller,
            adjoint=self.adjoint,
            max_steps=self.max_steps,
            throw=throw,
        )


class TrainedMixin:
    """What every fit result offers from its `model`, `params` and `history`."""

    @property
    def final_loss(self) -> float:
        """The loss at the last step of the last phase."""
        last = [h for h in self.history.values() if len(h)]
        return float(last[-1][-1]) if last else float("nan")

    def parameter_values(self) -> dict[sp.Symbol, float]:
        """`{symbol: trained value}` of the model's trainable parameters."""
        return {
            p: float(self.params.values[str(p)])
            for p in self.model.trainable_parameters
        }


@dataclass(frozen=True)
class FitResult(TrainedMixin):
    """A trained model.

    **Attributes:**

    - `model`: the fitted [`Model`][symml.Model].
    - `rhs`: its compiled right-hand side `f(t, u, params)` (for a discretised
      PDE, the `DiscretizedModel`, whose `unflatten` splits `u` into fields).
    - `params`: the trained [`Params`][symml.Params] (network weights and
      trainable parameter values).
    - `initial_states`: the initial state of each trajectory, trained entries
      included, shape `(n_states,)` each.
    - `data`: the [`Data`][symml.Data] fitted, one per trajectory.
    - `history`: `{phase: losses per step}`, e.g. `{"adam": ..., "lbfgs": ...}`.
    - `wall_time`: seconds spent fitting.
    """

    model: Model
    rhs: CompiledRHS  # or a DiscretizedModel
    params: Params
    initial_states: tuple[jax.Array, ...]
    data: tuple[Data, ...]
    history: dict[str, np.ndarray]
    wall_time: float
    options: SolverOptions = field(repr=False)

    def predict(self, t, *, y0=None, trajectory: int = 0) -> np.ndarray:
        """Simulate the fitted model at times `t` (shape `(T,)`), from `y0` or
        from trajectory `trajectory`'s fitted initial state at `t[0]`.

        **Returns:** an array of shape `(T, n_states)`, in the order of
        `model.state_names`.
        """
        ts = jnp.asarray(t, dtype=self.initial_states[0].dtype)
        y0 = self.initial_states[trajectory] if y0 is None else jnp.asarray(y0)
        sol = self.options.solve(self.rhs, self.params, y0, ts, throw=True)
        return np.asarray(sol.ys)

    def unknown_samples(self, n: int = 200) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The unknown terms along the fitted trajectories: `{name: (X, Y)}` with
        the network inputs `X` (shape `(n_samples, n_inputs)`) and outputs `Y`
        at `n` evenly spaced times per trajectory over the data's time span."""
        samples: dict[str, list] = {u.name: ([], []) for u in self.model.unknowns}
        evaluate = jax.jit(jax.vmap(self.rhs.unknown_values, in_axes=(0, 0, None)))
        for j, d in enumerate(self.data):
            ts = np.linspace(d.t[0], d.t[-1], n)
            ys = self.predict(ts, trajectory=j)
            values = evaluate(jnp.asarray(ts, ys.dtype), jnp.asarray(ys), self.params)
            for name, (x, y) in values.items():
                # One row per time (ODE) or per time and grid point (PDE).
                samples[name][0].append(np.asarray(x).reshape(-1, x.shape[-1]))
                samples[name][1].append(np.asarray(y).reshape(-1, y.shape[-1]))
        return {
            name: (np.concatenate(xs), np.concatenate(ys))
            for name, (xs, ys) in samples.items()
        }
