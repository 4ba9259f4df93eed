"""Dependencies point only backwards along the pipeline.

`dsl/` is plain sympy (it never imports jax, nor any later stage), and
`discover/` and `export/` never import `fit/`. Checked statically on every
import statement (including imports inside functions), and by importing
`symml.dsl` on its own in a fresh interpreter.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import symml

PACKAGE = Path(symml.__file__).parent
NUMERIC = {"jax", "jaxlib", "equinox", "diffrax", "optax", "jaxtyping", "pysindy"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            out.add(prefix)
            # `from .. import fit` imports the module `symml.fit`.
            out.update(f"{prefix}.{alias.name}" for alias in node.names)
    return out


def _files(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def _violations(subpackage: str, forbidden) -> list[str]:
    out = []
    for path in _files(subpackage):
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return out


def test_import_resolution():
    # The checker itself: relative imports resolve to absolute module names,
    # and it finds imports that are there.
    names = _imports(PACKAGE / "dsl" / "_model.py")
    assert "symml._errors" in names
    assert "symml.dsl._symbols" in names
    assert "sympy" in names
    assert "symml.nets" in _imports(PACKAGE / "lower" / "_lower.py")
    assert _violations("lower", NUMERIC)


@pytest.mark.parametrize("subpackage", ["dsl", "lower", "discover", "export", "fit"])
def test_subpackage_exists(subpackage):
    assert _files(subpackage), f"symml/{subpackage}/ has no Python files"


def test_dsl_imports_no_numerics():
    assert _violations("dsl", NUMERIC) == []


def test_dsl_imports_no_later_stage():
    later = [
        f"symml.{p.name}"
        for p in PACKAGE.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name != "dsl"
    ]
    assert "symml.lower" in later
    assert _violations("dsl", later) == []


@pytest.mark.parametrize("subpackage", ["discover", "export"])
def test_discover_and_export_never_import_fit(subpackage):
    assert _violations(subpackage, ["symml.fit"]) == []


@pytest.mark.parametrize("subpackage", ["discover", "export"])
def test_discover_and_export_import_no_jax(subpackage):
    assert _violations(subpackage, ["jax", "jaxlib"]) == []


def test_dsl_alone_does_not_load_jax():
    # `import symml.dsl` would run `symml/__init__.py`, which imports the
    # lowering stage; register a bare parent package so only `dsl` is loaded.
    code = f"""
import sys, types
pkg = types.ModuleType("symml")
pkg.__path__ = [{str(PACKAGE)!r}]
sys.modules["symml"] = pkg
import symml.dsl
t = symml.dsl.states  # the DSL is usable
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {sorted(NUMERIC)!r})
assert not loaded, loaded
assert "symml.lower" not in sys.modules
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
