"""Every notebook in notebooks/ runs top to bottom (pysindy's test_notebooks, with nbclient).

Parametrised over notebooks/*.ipynb, so a new notebook is tested as soon as it is added. The notebooks are
executed once per session (``executed_notebooks`` in conftest.py); the documentation build renders the
executed copies.
"""

import pytest
from notebooks_run import NOTEBOOKS


def test_notebooks_are_found():
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "hybrid_vs_implicit.ipynb", "extrapolation.ipynb", "phase_portraits.ipynb",
            "policy_learning.ipynb", "structure_preserving.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, executed_notebooks):
    err = executed_notebooks.errors[path.name]
    if err is not None:
        raise err  # CellExecutionError names the failing cell, with its traceback
