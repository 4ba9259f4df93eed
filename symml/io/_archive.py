"""`save` and `load`: one file per object, written atomically, read without
pickle or `eval`.

A saved file is a zip archive holding

- `symml.json`: the file format and its version, the versions of symml, JAX,
  equinox and sympy that wrote it, what was saved, and the object itself as a
  JSON tree: sympy expressions as trees of whitelisted classes (see
  `_expr.py`), models as their equations, conditions, parameters and domain,
  options and metadata (fit method, seed, loss history) as JSON values;
- `arrays.npz`: numeric arrays (observations, initial states), read with
  `allow_pickle=False`;
- `leaves/<k>.eqx`: network weights and parameter values, written with
  `equinox.tree_serialise_leaves` and read back into a structure rebuilt
  from the model.

How each class is saved is a [`Format`] in a registry keyed by class, so a
later stage adds its result types with [`register_format`] and no change
here.
"""

import dataclasses
import io
import json
import math
import os
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from .._errors import PersistenceError, SymmlError
from .._files import atomic_write
from .._registry import Registry
from ..dsl import Model
from ._expr import ExprReader, ExprWriter

FORMAT = 1
"""The version of the file format that this symml writes and reads."""

_MAGIC = "symml-save"
_META = "symml.json"
_ARRAYS = "arrays.npz"


@dataclasses.dataclass(frozen=True)
class Format:
    """How one class of objects is saved and loaded.

    **Arguments:**

    - `name`: the name written in files (stable across versions: a file names
      the format that reads it).
    - `encode`: `encode(obj, writer) -> JSON value`; uses `writer.expr(...)`,
      `writer.model(...)`, `writer.array(...)`, `writer.tree(...)` and
      `writer.value(...)` for what is not plain JSON.
    - `decode`: `decode(data, reader) -> obj`, the inverse, with the reader's
      methods of the same names.
    """

    name: str
    encode: Callable[[Any, "Writer"], Any]
    decode: Callable[[Any, "Reader"], Any]


_FORMATS: Registry[type, Format] = Registry(
    "saved format",
    error=PersistenceError,
    is_key=lambda key: isinstance(key, type),
    key_hint="a class",
    register_name="symml.io.register_format",
    key_name="cls",
    rule_name="format",
    is_rule=lambda rule: isinstance(rule, Format),
)
_BY_NAME: dict[str, Format] = {}


def register_format(
    cls: type,
    name: str,
    encode: Callable[[Any, "Writer"], Any],
    decode: Callable[[Any, "Reader"], Any],
) -> Format:
    """Make objects of class `cls` (and its subclasses) savable with
    [`save`][symml.save].

    **Arguments:**

    - `cls`: the class.
    - `name`: the name written in files; it must stay the same for files to
      load in later versions.
    - `encode`, `decode`: see [`Format`][symml.io.Format].

    **Returns:** the registered `Format`.
    """
    if not isinstance(name, str) or not name:
        raise PersistenceError(
            f"`name` of `register_format` must be a non-empty string; got {name!r}."
        )
    for fn, what in ((encode, "encode"), (decode, "decode")):
        if not callable(fn):
            raise PersistenceError(
                f"`{what}` of `register_format` must be callable; got "
                f"{type(fn).__name__}."
            )
    known = _BY_NAME.get(name)
    if known is not None and _FORMATS.get(cls) is not known:
        raise PersistenceError(
            f"The format name {name!r} is already used by another class; choose "
            "another name."
        )
    fmt = Format(name, encode, decode)
    _FORMATS.register(cls, fmt)
    _BY_NAME[name] = fmt
    return fmt


def format_of(obj: Any) -> Format | None:
    """The format of `obj`'s class, looked up along its MRO."""
    for cls in type(obj).__mro__:
        fmt = _FORMATS.get(cls)
        if fmt is not None:
            return fmt
    return None


# -- option values: what may appear in fit methods, options and metadata ------


def _instance_roots() -> tuple[type, ...]:
    """The classes whose (dataclass) instances are saved field by field, with
    their subclasses: fit methods, derivative schemes, penalties, solve
    options, Pareto fronts and network architectures."""
    from .. import nets
    from .._diffrax import SolveOptions
    from ..derivatives import AbstractScheme
    from ..discovery import ParetoFront
    from ..training import AbstractFitMethod, Penalty
    from ..training._pinn_data import Observations

    roots = [
        AbstractFitMethod,
        AbstractScheme,
        Penalty,
        SolveOptions,
        ParetoFront,
        Observations,
    ]
    # Architectures of networks, where the networks stage has them.
    for name in ("AbstractArchitecture", "FourierFeatures"):
        cls = getattr(nets, name, None)
        if isinstance(cls, type):
            roots.append(cls)
    return tuple(roots)


def _instance_classes() -> dict[str, type]:
    out: dict[str, type] = {}
    stack = list(_instance_roots())
    while stack:
        cls = stack.pop()
        if dataclasses.is_dataclass(cls) and not getattr(
            cls, "__abstractmethods__", None
        ):
            out.setdefault(_class_name(cls), cls)
        stack.extend(cls.__subclasses__())
    return out


def _class_name(cls: type) -> str:
    """`symml.SolveInLoop` for a class re-exported by a public namespace (so
    files survive moves between private modules), else `module:qualname`."""
    module = cls.__module__
    public = module.split("._")[0]
    namespace = sys.modules.get(public)
    if namespace is not None and getattr(namespace, cls.__name__, None) is cls:
        return f"{public}:{cls.__name__}"
    return f"{module}:{cls.__qualname__}"


def _diffrax_class(name: str) -> type | None:
    cls = getattr(dfx, name, None) if name.isidentifier() else None
    if isinstance(cls, type) and issubclass(
        cls, (dfx.AbstractSolver, dfx.AbstractAdjoint)
    ):
        return cls
    return None


def _finite_or_tag(x: float):
    return x if math.isfinite(x) else {"$": "float", "value": repr(x)}


class Writer:
    """Collects what one file holds: the JSON tree, arrays, serialised leaves,
    models (each written once, so objects that share a model still share it
    when loaded) and the declarations of states, fields and unknowns."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.leaves: dict[str, bytes] = {}
        self.models: list = []
        self._model_refs: dict[int, int] = {}
        self._keep: list = []  # keeps encoded models alive, so ids stay unique
        self.expr = ExprWriter(value_writer=self.value)
        self._instances = _instance_classes()
        # Whether anything saved is float64, which loads exactly only with x64.
        self.float64 = False

    # -- pieces ------------------------------------------------------------------

    def array(self, a) -> dict:
        """A numeric array, stored in `arrays.npz`."""
        is_jax = isinstance(a, jax.Array)
        array = np.asarray(a)
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool
        ):
            raise PersistenceError(
                f"Cannot save an array of dtype {array.dtype}; only numeric arrays "
                "are saved."
            )
        # A numpy array loads back as numpy whatever JAX's precision; only a
        # JAX array needs 64-bit JAX to come back as float64.
        self.float64 |= is_jax and array.dtype == np.float64
        name = f"a{len(self.arrays)}"
        self.arrays[name] = array
        return {"$": "array", "ref": name, "jax": is_jax}

    def tree(self, pytree) -> str:
        """A pytree's array leaves, with `equinox.tree_serialise_leaves`; read
        back with `Reader.tree(ref, like)`."""
        self.float64 |= any(
            getattr(leaf, "dtype", None) == np.float64
            for leaf in jax.tree.leaves(pytree)
        )
        buffer = io.BytesIO()
        eqx.tree_serialise_leaves(buffer, pytree)
        name = f"leaves/{len(self.leaves)}.eqx"
        self.leaves[name] = buffer.getvalue()
        return name

    def model(self, model: Model) -> dict:
        """A model, written once per file however often it is referred to."""
        ref = self._model_refs.get(id(model))
        if ref is None:
            ref = len(self.models)
            self._model_refs[id(model)] = ref
            self._keep.append(model)
            self.models.append(None)  # reserve the slot
            self.models[ref] = _encode_model(model, self)
        return {"$": "model", "ref": ref}

    def floats(self, values) -> list:
        """A sequence of floats as JSON (non-finite ones tagged)."""
        return [_finite_or_tag(float(v)) for v in np.asarray(values).ravel()]

    def value(self, v, where: str = "a value") -> Any:
        """Any value that may appear in options and metadata: JSON values,
        tuples, dicts, arrays, sympy expressions, models, objects with a
        registered format, diffrax solvers and adjoints by name, and instances
        of symml's option classes field by field."""
        if v is None or isinstance(v, bool | str):
            return v
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, int | np.integer):
            return int(v)
        if isinstance(v, float | np.floating):
            return _finite_or_tag(float(v))
        if isinstance(v, sp.Basic):
            return {"$": "expr", "tree": self.expr(v)}
        if isinstance(v, Model):
            return self.model(v)
        if isinstance(v, np.ndarray | jax.Array):
            return self.array(v)
        if isinstance(v, list):
            return [self.value(x, where) for x in v]
        if isinstance(v, tuple) and not hasattr(v, "_fields"):
            return {"$": "tuple", "items": [self.value(x, where) for x in v]}
        if isinstance(v, dict):
            return {
                "$": "dict",
                "items": [
                    [self.value(k, where), self.value(x, where)] for k, x in v.items()
                ],
            }
        fmt = format_of(v)
        if fmt is not None:
            return {"$": "object", "format": fmt.name, "data": fmt.encode(v, self)}
        if isinstance(v, dfx.AbstractSolver | dfx.AbstractAdjoint):
            cls = _diffrax_class(type(v).__name__)
            if cls is type(v) and _default_equal(v):
                return {"$": "diffrax", "class": type(v).__name__}
            raise PersistenceError(
                f"Cannot save {where}: the diffrax object {v!r} has options of its "
                "own; give it by name (e.g. `solver='Kvaerno5'`) to save the fit."
            )
        name = _class_name(type(v))
        if self._instances.get(name) is type(v):
            fields = {
                f.name: self.value(getattr(v, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(v)
                if f.init
            }
            return {"$": "instance", "class": name, "fields": fields}
        raise PersistenceError(
            f"Cannot save {where}: {v!r} of type {type(v).__name__} has no saved "
            "form. Use a name or a plain value for it (numbers, strings, lists, "
            "sympy expressions), or register a format with "
            "`symml.io.register_format`."
        )

    def object(self, obj, where: str = "the object") -> dict:
        fmt = format_of(obj)
        if fmt is None:
            raise PersistenceError(
                f"Cannot save {where}: symml has no saved form for "
                f"{type(obj).__name__}. Saved are fit results, discoveries, models, "
                "discretised models and data; register others with "
                "`symml.io.register_format`."
            )
        return {"$": "object", "format": fmt.name, "data": fmt.encode(obj, self)}


def _default_equal(obj) -> bool:
    try:
        return bool(type(obj)() == obj)
    except Exception:  # a class without a default: not savable by name
        return False


class Reader:
    """Reads what a `Writer` wrote; see there."""

    def __init__(self, meta: dict, archive: zipfile.ZipFile):
        self.meta = meta
        self._archive = archive
        self._arrays = None
        self._models: dict[int, Model] = {}
        self.expr = ExprReader(meta["declarations"], value_reader=self.value)
        self._instances = _instance_classes()

    def array(self, ref: dict):
        if self._arrays is None:
            with self._archive.open(_ARRAYS) as f:
                data = np.load(io.BytesIO(f.read()), allow_pickle=False)
                self._arrays = {k: data[k] for k in data.files}
        array = self._arrays[ref["ref"]]
        return jnp.asarray(array) if ref.get("jax") else array

    def tree(self, ref: str, like):
        """The pytree `like` with its array leaves read from `ref`; each leaf
        must have the shape and dtype of `like`'s."""
        with self._archive.open(ref) as f:
            tree = eqx.tree_deserialise_leaves(io.BytesIO(f.read()), like)
        for new, old in zip(jax.tree.leaves(tree), jax.tree.leaves(like), strict=True):
            if eqx.is_array(old) and (
                np.shape(new) != np.shape(old) or new.dtype != old.dtype
            ):
                raise ValueError(
                    f"a saved array has shape {np.shape(new)} and dtype {new.dtype}; "
                    f"the model's has {np.shape(old)} and {old.dtype}"
                )
        return tree

    def model(self, ref: dict) -> Model:
        index = int(ref["ref"])
        if index not in self._models:
            self._models[index] = _decode_model(self.meta["models"][index], self)
        return self._models[index]

    def floats(self, values) -> np.ndarray:
        return np.array(
            [float(v["value"]) if isinstance(v, dict) else float(v) for v in values],
            dtype=float,
        )

    def value(self, v) -> Any:
        if v is None or isinstance(v, bool | str | int | float):
            return v
        if isinstance(v, list):
            return [self.value(x) for x in v]
        tag = v["$"]
        if tag == "float":
            return float(v["value"])
        if tag == "expr":
            return self.expr(v["tree"])
        if tag == "model":
            return self.model(v)
        if tag == "array":
            return self.array(v)
        if tag == "tuple":
            return tuple(self.value(x) for x in v["items"])
        if tag == "dict":
            return {self.value(k): self.value(x) for k, x in v["items"]}
        if tag == "object":
            return self.object(v)
        if tag == "diffrax":
            cls = _diffrax_class(v["class"])
            if cls is None:
                raise ValueError(f"`{v['class']}` is not a diffrax solver or adjoint")
            return cls()
        if tag == "instance":
            cls = self._instances.get(v["class"])
            if cls is None:
                raise PersistenceError(
                    f"The file holds an instance of `{v['class']}`, which this "
                    "program does not define; import the module that defines it "
                    "before loading."
                )
            return cls(**{k: self.value(x) for k, x in v["fields"].items()})
        raise ValueError(f"unknown value tag {tag!r}")

    def object(self, v: dict):
        fmt = _BY_NAME.get(v["format"])
        if fmt is None:
            raise PersistenceError(
                f"The file holds a `{v['format']}`, which this program cannot load: "
                "its format is not registered (import the stage that defines it "
                "before loading)."
            )
        return fmt.decode(v["data"], self)


# -- models -------------------------------------------------------------------


def _encode_model(m: Model, w: Writer) -> dict:
    from ..dsl import Trainable

    parameters = []
    for p, value in m.parameters.items():
        entry = (
            {"trainable": float(value.initial)}
            if isinstance(value, Trainable)
            else {"value": float(value)}
        )
        parameters.append([w.expr(p), entry])
    return {
        "kind": type(m).__name__,
        "equations": [w.expr(e) for e in m.equations],
        "conditions": [w.expr(c) for c in m.conditions],
        "parameters": parameters,
        "domain": [
            [w.expr(v), float(lo), float(hi)] for v, (lo, hi) in m.domain.items()
        ],
        "boundary": None
        if m.boundary is None
        else [[w.expr(v), kind] for v, kind in m.boundary.items()],
    }


def _decode_model(data: dict, r: Reader) -> Model:
    from ..dsl import trainable

    parameters = {}
    for p, entry in data["parameters"]:
        value = entry.get("value")
        parameters[r.expr(p)] = (
            trainable(entry["trainable"]) if value is None else float(value)
        )
    boundary = data["boundary"]
    model = Model(
        [r.expr(e) for e in data["equations"]],
        conditions=[r.expr(c) for c in data["conditions"]],
        parameters=parameters,
        domain={r.expr(v): (float(lo), float(hi)) for v, lo, hi in data["domain"]},
        boundary=None if boundary is None else {r.expr(v): k for v, k in boundary},
    )
    if type(model).__name__ != data["kind"]:
        raise ValueError(
            f"the saved equations build {type(model).__name__}, not {data['kind']}"
        )
    return model


# -- save and load --------------------------------------------------------------


def _versions() -> dict[str, str]:
    from .. import __version__

    return {
        "symml": __version__,
        "jax": jax.__version__,
        "equinox": eqx.__version__,
        "sympy": sp.__version__,
        "numpy": np.__version__,
    }


def save(path: str | os.PathLike, obj: Any) -> Path:
    """Save a fit result, a discovery or a model to one file.

    The file holds the model as sympy expression trees (read back without
    `eval` or pickle), network weights (`equinox.tree_serialise_leaves`),
    arrays (`.npz`) and metadata (the versions that wrote it, the fit method
    and its options, the seed, the loss history) as JSON. It is written
    atomically: a reader never sees a half-written file, and a failed save
    leaves an existing file as it was.

    **Arguments:**

    - `path`: the file to write (its directory must exist), e.g.
      `"lotka_volterra.symml"`.
    - `obj`: a [`UDEResult`][symml.UDEResult], a
      [`PINNResult`][symml.PINNResult], a [`Discovery`][symml.Discovery], a
      [`Model`][symml.Model], a [`DiscretizedModel`][symml.DiscretizedModel],
      a [`Data`][symml.Data], or an object whose class has a format registered
      with [`register_format`][symml.io.register_format].

    **Returns:** the path written.

    **Raises:** [`PersistenceError`][symml.PersistenceError] if `obj` has no
    saved form or the file cannot be written.
    """
    writer = Writer()
    root = writer.object(obj, where=f"a {type(obj).__name__}")
    meta = {
        "format": _MAGIC,
        "version": FORMAT,
        "versions": _versions(),
        "float64": bool(writer.float64),
        "kind": root["format"],
        "root": root,
        "models": writer.models,
        "declarations": writer.expr.declarations(),
    }
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as e:  # a format returned a non-JSON value
        raise PersistenceError(
            f"Cannot save a {type(obj).__name__}: its saved form is not JSON ({e})."
        ) from None
    arrays = io.BytesIO()
    np.savez(arrays, **writer.arrays)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
                z.writestr(_META, text)
                z.writestr(_ARRAYS, arrays.getvalue())
                for name, data in writer.leaves.items():
                    z.writestr(name, data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write, error=PersistenceError)


def load(path: str | os.PathLike) -> Any:
    """Load what [`save`][symml.save] wrote.

    The model is rebuilt from its equations through [`Model`][symml.Model]
    (which validates it), states, fields and unknowns through their
    declarations; a loaded fit result predicts, discovers and exports exactly
    as the one saved (bit-identical predictions on the same machine).

    **Arguments:**

    - `path`: a file written by `save`.

    **Returns:** the object saved.

    **Raises:** [`PersistenceError`][symml.PersistenceError] if the file does
    not exist, is not a symml file, is corrupted or truncated, or was written
    in another version of the file format.
    """
    try:
        path = Path(path)
    except TypeError:
        raise PersistenceError(
            f"`path` must be a file name or a `pathlib.Path`; got {path!r}."
        ) from None
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise PersistenceError(
            f"Cannot load `{path}`: it {what}; give the file written by `symml.save`."
        )
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise PersistenceError(
            f"Cannot load `{path}`: it is not a symml file, or it is truncated or "
            "corrupted (not a readable zip archive). Save the object again."
        ) from None
    with archive:
        meta = _read_meta(path, archive)
        reader = Reader(meta, archive)
        try:
            return reader.object(meta["root"])
        except PersistenceError as e:
            raise PersistenceError(f"Cannot load `{path}`: {e}") from None
        except SymmlError as e:
            raise PersistenceError(
                f"Cannot load `{path}`: what it holds no longer builds ({e}). The "
                "file may be corrupted, or from a version of symml whose models "
                "validate differently."
            ) from None
        except (
            KeyError,
            IndexError,
            TypeError,
            ValueError,
            AttributeError,
            RecursionError,
            RuntimeError,  # equinox: a leaf of another shape than the model's
            zlib.error,
            zipfile.BadZipFile,
            OSError,
            EOFError,
            sp.SympifyError,
        ) as e:
            raise PersistenceError(
                f"Cannot load `{path}`: the file is corrupted ({type(e).__name__}: "
                f"{e}). Save the object again."
            ) from None


def _read_meta(path: Path, archive: zipfile.ZipFile) -> dict:
    try:
        meta = json.loads(archive.read(_META).decode("utf-8"))
    except KeyError:
        raise PersistenceError(
            f"Cannot load `{path}`: it is a zip archive but not a symml file (no "
            f"`{_META}`)."
        ) from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError):
        raise PersistenceError(
            f"Cannot load `{path}`: its metadata are corrupted or truncated. Save the "
            "object again."
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != _MAGIC:
        raise PersistenceError(
            f"Cannot load `{path}`: it is not a file written by `symml.save`."
        )
    version = meta.get("version")
    if version != FORMAT:
        written = (meta.get("versions") or {}).get("symml", "an unknown version")
        raise PersistenceError(
            f"Cannot load `{path}`: it is in symml file format {version!r} (written "
            f"by symml {written}); this symml reads format {FORMAT}. Load it with "
            "the symml version that wrote it, or save the object again."
        )
    if meta.get("float64") and not jax.config.jax_enable_x64:
        raise PersistenceError(
            f"Cannot load `{path}` exactly: it was saved in float64. Enable float64 "
            "with `jax.config.update('jax_enable_x64', True)` at the start of the "
            "program, before loading."
        )
    return meta
