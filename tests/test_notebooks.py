"""The tutorial notebooks of the docs run, top to bottom, in a fresh kernel, on
their quick settings: they never rot. The docs render them with the outputs
they were saved with; refresh those with
`jupyter nbconvert --execute --inplace docs/pages/notebooks/NAME.ipynb`."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "docs/pages/notebooks").glob("*.ipynb"))


def test_the_docs_have_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"lotka_volterra", "pinn"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=1200,
        kernel_name="python3",
        # The notebook's files (a report) go to a scratch directory.
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
