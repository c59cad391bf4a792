"""Run every notebook of notebooks/ once per test session (shared by test_notebooks.py and test_docs.py).

The kernel is "python3" of *this* interpreter (the virtual environment's); figures use the Agg backend.
Executed copies, with their outputs, are written to a folder named ``notebooks`` that the documentation
build renders (so the suite executes each notebook once).
"""

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def same_python(argv0: str) -> bool:
    # jupyter_client replaces a bare "python"/"python3" by sys.executable when it launches the kernel
    if argv0 in ("python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        return True
    return os.path.realpath(argv0) == os.path.realpath(sys.executable)


def use_this_python(prefix: Path) -> str | None:
    """Make the "python3" kernel this interpreter (installing a spec under ``prefix`` if needed); returns the
    JUPYTER_PATH to restore, or None if nothing was changed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        ok = same_python(KernelSpecManager().get_kernel_spec("python3").argv[0])
    except NoSuchKernel:
        ok = False
    if ok:
        return None
    from ipykernel.kernelspec import install

    saved = os.environ.get("JUPYTER_PATH", "")
    install(prefix=str(prefix), kernel_name="python3")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(prefix / "share" / "jupyter"), saved]))
    assert same_python(KernelSpecManager().get_kernel_spec("python3").argv[0])
    return saved


@dataclass
class Executed:
    """Where the executed copies are, and each notebook's error (None: it ran top to bottom)."""

    folder: Path
    errors: dict[str, BaseException | None] = field(default_factory=dict)


def run_all(work: Path) -> Executed:
    out = Executed(work / "notebooks")
    out.folder.mkdir(parents=True)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        cwd = work / "cwd" / path.stem
        cwd.mkdir(parents=True)
        try:
            outputs = [c for c in nb.cells if c.cell_type == "code" and c.get("outputs")]
            assert not outputs, f"{path.name} is committed with outputs"
            NotebookClient(nb, timeout=300, kernel_name="python3",
                           resources={"metadata": {"path": str(cwd)}}).execute()  # fmt: skip
            out.errors[path.name] = None
        except BaseException as err:  # noqa: BLE001 - reported by the notebook's own test
            out.errors[path.name] = err
        nbformat.write(nb, out.folder / path.name)
    return out
