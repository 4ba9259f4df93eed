"""The docs: every public name has an API entry, and every Python code block
of every page runs (the blocks of a page run in order, in one fresh
interpreter, as a reader would paste them)."""

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import symml

PAGES = Path(__file__).parents[1] / "docs" / "pages"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _pages_with_code() -> list[Path]:
    return sorted(p for p in PAGES.rglob("*.md") if _BLOCK.search(p.read_text()))


def test_every_public_name_has_an_api_entry():
    documented = set()
    for page in PAGES.rglob("*.md"):
        documented |= set(re.findall(r"^::: (symml\.[\w.]+)", page.read_text(), re.M))
    public = [
        f"symml.{n}"
        for n in dir(symml)
        if not n.startswith("_") and not isinstance(getattr(symml, n), types.ModuleType)
    ]
    missing = sorted(n for n in public if n not in documented)
    assert missing == [], f"add `::: name` entries to docs/pages/api/: {missing}"


def test_pages_have_code():
    assert len(_pages_with_code()) >= 6


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", _pages_with_code(), ids=lambda p: str(p.relative_to(PAGES))
)
def test_code_blocks_run(page, tmp_path):
    code = "\n\n".join(m.group(1) for m in _BLOCK.finditer(page.read_text()))
    script = tmp_path / "page.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
    )
    assert out.returncode == 0, f"{page.name}:\n{out.stderr[-4000:]}"
