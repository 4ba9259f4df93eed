"""Every `symml.*` path that the code, its messages and the docs give a user
resolves: a name is either a function or a package, never both."""

import importlib
import re
from pathlib import Path

import pytest

import symml

ROOT = Path(symml.__file__).parents[1]
# `symml.a.b` in backticks, in a mkdocs cross-reference `[..][symml.a.b]`, or
# after `::: ` on an API page; a trailing call `(...)` is allowed. A file name
# such as `symml.json` (a member of a saved file) is not a path.
_PATH = re.compile(r"(?:`|\]\[|::: )(symml(?:\.[A-Za-z_]\w*)+)\b(?<!\.json)(?<!\.npz)")


def _sources():
    files = sorted((ROOT / "symml").rglob("*.py"))
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += [ROOT / "README.md"]
    return [f for f in files if f.exists()]


def _paths() -> dict[str, str]:
    out = {}
    for f in _sources():
        for m in _PATH.finditer(f.read_text()):
            out.setdefault(m.group(1), str(f.relative_to(ROOT)))
    return out


def _resolve(path: str):
    parts = path.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            # A submodule not imported by its package's `__init__`.
            obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


PATHS = _paths()


def test_paths_are_found():
    assert "symml.Model" in PATHS
    assert len(PATHS) > 50


@pytest.mark.parametrize("path", sorted(PATHS))
def test_path_resolves(path):
    try:
        _resolve(path)
    except (AttributeError, ImportError) as e:
        pytest.fail(f"`{path}` (named in {PATHS[path]}) does not resolve: {e}")


@pytest.mark.parametrize(
    "name",
    sorted(
        symml.__all__
        if hasattr(symml, "__all__")
        else [n for n in dir(symml) if not n.startswith("_")]
    ),
)
def test_no_public_name_shadows_a_subpackage(name):
    obj = getattr(symml, name)
    package = Path(symml.__file__).parent / name
    if package.is_dir():
        assert type(obj).__name__ == "module", (
            f"`symml.{name}` is {obj!r} but `symml/{name}/` is a subpackage"
        )
