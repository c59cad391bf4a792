"""Run every notebook of notebooks/ once per test session, two kernels at a time (for test_notebooks.py, test_docs.py).

The kernel is "python3" of *this* interpreter (the virtual environment's); figures use the Agg backend.
Executed copies, with their outputs, are written to a folder named ``notebooks`` that the documentation
build renders (so the suite executes each notebook once).
"""

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: kernels run at once: the notebooks run one thread each, so a 2-core machine runs two side by side
KERNELS = max(1, min(2, os.cpu_count() or 1))


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


def run_one(path: Path, work: Path) -> tuple[nbformat.NotebookNode, BaseException | None]:
    """Execute one notebook in its own folder under ``work``; returns it (with its outputs) and its error."""
    nb = nbformat.read(path, as_version=4)
    cwd = work / "cwd" / path.stem
    cwd.mkdir(parents=True)
    try:
        outputs = [c for c in nb.cells if c.cell_type == "code" and c.get("outputs")]
        assert not outputs, f"{path.name} is committed with outputs"
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(cwd)}}).execute()  # fmt: skip
        return nb, None
    except BaseException as err:  # noqa: BLE001 - reported by the notebook's own test
        return nb, err


def run_all(work: Path, workers: int = KERNELS) -> Executed:
    """Execute every notebook, ``workers`` kernels at a time (each kernel is its own one-thread process)."""
    out = Executed(work / "notebooks")
    out.folder.mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = pool.map(lambda path: run_one(path, work), NOTEBOOKS)
        for path, (nb, err) in zip(NOTEBOOKS, done):
            out.errors[path.name] = err
            nbformat.write(nb, out.folder / path.name)
    return out
