"""Fit methods: objects that carry their own options and turn a model and data
into a [`Problem`] for the shared loop."""

import abc
import dataclasses
from typing import Any, ClassVar

from .._errors import FitError
from ._checks import (
    non_negative_number as non_negative_number,
    positive_integer as positive_integer,
    positive_number as positive_number,
)
from ._loop import Phase, Problem, adam, lbfgs


class AbstractFitMethod(abc.ABC):
    """How a model is fitted: the loss, what it trains, and the options of
    both. Each method is a frozen dataclass whose fields are its options,
    validated on construction; `fit(model, data, method=...)` runs it.

    Subclasses set `name` (for messages) and the default optimisation
    (`default_steps`, `default_learning_rate`, `default_lbfgs_steps`,
    `clip`), and implement `prepare`.
    """

    name: ClassVar[str]
    default_steps: ClassVar[int] = 1000
    default_learning_rate: ClassVar[float] = 3e-3
    default_lbfgs_steps: ClassVar[int] = 500
    clip: ClassVar[float | None] = 10.0

    @abc.abstractmethod
    def prepare(
        self, target: Any, data: Any, *, seed: int, dtype, init: Any
    ) -> Problem:
        """The loss, the initial trainable pytree and the result builder for
        fitting `target` (a model or a lowered system) to `data`."""

    def phases(
        self,
        steps: int | None,
        learning_rate: float | None,
        lbfgs_steps: int | None,
    ) -> list[Phase]:
        """Adam, then L-BFGS, with this method's defaults where not given."""
        return [
            adam(
                self.default_steps if steps is None else steps,
                self.default_learning_rate if learning_rate is None else learning_rate,
                clip=self.clip,
            ),
            lbfgs(self.default_lbfgs_steps if lbfgs_steps is None else lbfgs_steps),
        ]

    @classmethod
    def options(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


# -- validation helpers used by the methods' __post_init__ ------------------------


def one_of(value, name: str, owner: str, allowed) -> Any:
    if value not in allowed:
        raise FitError(
            f"`{name}={value!r}` of `{owner}` is not known; use one of "
            f"{', '.join(map(repr, allowed))}."
        )
    return value


def set_field(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)
