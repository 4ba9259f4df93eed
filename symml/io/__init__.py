"""Persistence: fit results, discoveries and models saved to one file and
loaded back.

Guarantees: [`save`][symml.save] writes one file atomically (a reader never
sees half of it); nothing is pickled and nothing is `eval`-ed on loading:
sympy expressions are JSON trees of a fixed table of classes, models are
rebuilt through [`Model`][symml.Model] (which validates them), weights are
read with `equinox.tree_deserialise_leaves` into networks rebuilt from the
model, arrays with `numpy.load(allow_pickle=False)`. A loaded fit result
predicts bit for bit as the one saved, on the same machine. A file that is
missing, corrupted, truncated or from another version of the file format is a
[`PersistenceError`][symml.PersistenceError], never a traceback from inside a
library. How each class is saved is registered
([`register_format`][symml.io.register_format]), so later stages add their
own results.
"""

from . import _formats  # noqa: F401  (registers symml's own classes)
from ._archive import (
    FORMAT as FORMAT,
    Format as Format,
    Reader as Reader,
    Writer as Writer,
    load as load,
    register_format as register_format,
    save as save,
)
