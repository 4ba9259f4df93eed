"""Dependencies point only backwards along the pipeline.

Every subpackage of `symml` appears in `ALLOWED` with the stages it may import;
a new subpackage fails `test_every_subpackage_is_declared` until it is placed
in the pipeline. `dsl/` is plain sympy (it never imports jax), and
`discovery/` and `export/` never import `training/` nor jax. Checked
statically on every import statement (imports inside functions included), and
by importing `symml.dsl` on its own in a fresh interpreter.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import symml

PACKAGE = Path(symml.__file__).parent
NUMERIC = {"jax", "jaxlib", "equinox", "diffrax", "optax", "jaxtyping", "lineax"}

# stage -> the symml stages it may import (besides `symml._errors` and other
# private top-level modules, which every stage may use).
ALLOWED = {
    "dsl": set(),
    "nets": set(),
    "derivatives": set(),
    "sparsity": set(),
    "lowering": {"dsl", "nets", "derivatives", "sparsity"},
    "discretization": {"dsl", "nets", "derivatives", "lowering", "sparsity"},
    "training": {
        "dsl",
        "nets",
        "derivatives",
        "lowering",
        "sparsity",
        "discretization",
    },
    "steady": {
        "dsl",
        "nets",
        "derivatives",
        "lowering",
        "sparsity",
        "discretization",
        "training",
    },
    "sde": {"dsl", "nets", "lowering", "training"},
    "discovery": {"dsl"},
    "export": {"dsl"},
    "uncertainty": {
        "dsl",
        "sparsity",
        "lowering",
        "discretization",
        "training",
        "export",
    },
    "plot": {
        "dsl",
        "lowering",
        "discretization",
        "training",
        "discovery",
        "export",
    },
    "io": {
        "dsl",
        "nets",
        "derivatives",
        "sparsity",
        "lowering",
        "discretization",
        "training",
        "steady",
        "sde",
        "uncertainty",
        "discovery",
        "export",
    },
}


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
            # `from .. import training` imports the module `symml.training`.
            out.update(f"{prefix}.{alias.name}" for alias in node.names)
    return out


def _subpackages() -> list[str]:
    return sorted(
        p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    )


def _stages_imported(subpackage: str) -> dict[str, list[str]]:
    """`{stage: [files importing it]}` for every other stage `subpackage` uses."""
    out: dict[str, list[str]] = {}
    for path in sorted((PACKAGE / subpackage).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "symml" and len(parts) > 1:
                stage = parts[1]
                if stage != subpackage and stage in ALLOWED:
                    out.setdefault(stage, []).append(str(path.name))
    return out


def _violations(subpackage: str, forbidden) -> list[str]:
    out = []
    for path in sorted((PACKAGE / subpackage).rglob("*.py")):
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return out


def test_import_resolution():
    # The checker itself: relative imports resolve to absolute module names,
    # and it finds imports that are there.
    names = _imports(PACKAGE / "dsl" / "_model.py")
    assert "symml._errors" in names
    assert "sympy" in names
    assert "symml.nets" in _imports(PACKAGE / "lowering" / "_params.py")
    assert _violations("lowering", NUMERIC)
    assert "dsl" in _stages_imported("lowering")


def test_every_subpackage_is_declared():
    assert set(_subpackages()) == set(ALLOWED), (
        "place each subpackage of symml in the pipeline: add it to ALLOWED"
    )


@pytest.mark.parametrize("subpackage", sorted(ALLOWED))
def test_stage_imports_only_earlier_stages(subpackage):
    used = _stages_imported(subpackage)
    extra = {s: files for s, files in used.items() if s not in ALLOWED[subpackage]}
    assert extra == {}, f"symml.{subpackage} imports later stages: {extra}"


def test_allowed_table_has_no_cycles():
    seen: dict[str, int] = {}

    def depth(stage, stack=()):
        assert stage not in stack, f"cycle: {stack + (stage,)}"
        if stage not in seen:
            seen[stage] = 1 + max(
                (depth(s, stack + (stage,)) for s in ALLOWED[stage]), default=0
            )
        return seen[stage]

    for stage in ALLOWED:
        depth(stage)


def test_dsl_imports_no_numerics():
    assert _violations("dsl", NUMERIC) == []


@pytest.mark.parametrize("subpackage", ["discovery", "export"])
def test_discovery_and_export_import_no_jax_and_no_training(subpackage):
    assert _violations(subpackage, ["jax", "jaxlib", "symml.training"]) == []


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
assert "symml.lowering" not in sys.modules
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
