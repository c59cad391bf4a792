"""Every notebook in notebooks/ runs top to bottom (pysindy's test_notebooks, with nbclient).

Parametrised over notebooks/*.ipynb, so a new notebook is tested as soon as it is added. The kernel is
"python3" of *this* interpreter (the virtual environment's); figures use the Agg backend.
"""

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _same_python(argv0: str) -> bool:
    # jupyter_client replaces a bare "python"/"python3" by sys.executable when it launches the kernel
    if argv0 in ("python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        return True
    return os.path.realpath(argv0) == os.path.realpath(sys.executable)


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Make "python3" resolve to this interpreter: if the installed spec points elsewhere, install one."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
        ok = _same_python(spec.argv[0])
    except NoSuchKernel:
        ok = False
    saved = os.environ.get("JUPYTER_PATH")
    if not ok:
        from ipykernel.kernelspec import install

        prefix = tmp_path_factory.mktemp("jupyter")
        install(prefix=str(prefix), kernel_name="python3")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(prefix / "share" / "jupyter"), saved]))
        spec = KernelSpecManager().get_kernel_spec("python3")
        assert _same_python(spec.argv[0]), spec.argv
    yield
    if not ok:
        if saved is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = saved


def test_notebooks_are_found():
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "hybrid_vs_implicit.ipynb", "extrapolation.ipynb", "phase_portraits.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch, kernel_env):
    nb = nbformat.read(path, as_version=4)
    outputs = [c for c in nb.cells if c.cell_type == "code" and c.get("outputs")]
    assert not outputs, f"{path.name} is committed with outputs"
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the failing cell and traceback, on any error
