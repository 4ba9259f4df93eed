"""Declarations: states, fields, parameters, unknown network terms, models
and observations.

Guarantees: everything here is plain sympy plus light Python classes; this
subpackage never imports jax. A [`Model`][symml.Model] validates on
construction, so a lowered or fitted model is always a well-formed one.
"""

from ._data import Data as Data, PointData as PointData
from ._model import (
    FieldModel as FieldModel,
    Model as Model,
    ODEModel as ODEModel,
    PDEModel as PDEModel,
)
from ._sde import SDE as SDE, ParabolicPDE as ParabolicPDE
from ._symbols import (
    Field as Field,
    FieldFunction as FieldFunction,
    FieldSpec as FieldSpec,
    StateFunction as StateFunction,
    Trainable as Trainable,
    states as states,
    trainable as trainable,
)
from ._unknown import Unknown as Unknown, UnknownOutput as UnknownOutput
