"""Shared test settings.

The suite's tensors are tiny (batches of tens to thousands of 4-vectors): one intra-op thread is faster
than two there (thread hand-off costs more than the arithmetic), and it keeps timings steady when other
processes share the two cores. Matplotlib draws off-screen.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)

import pytest  # noqa: E402

import physwm.control.dynamics  # noqa: E402
import physwm.integrators.compiled  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "compiles: the test may compile with torch.compile's C++ backend (inductor)")


def pytest_collection_modifyitems(config, items):
    """The suite runs on every core (pytest-xdist, ``--dist loadgroup``); the tests that read the executed
    notebooks share one worker, so the notebooks run once per session, not once per worker."""
    for item in items:
        if "executed_notebooks" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("notebooks"))


@pytest.fixture(autouse=True)
def _same_global_random_state():
    """Every test starts from the same global random state, so what it draws without a seed of its own does not
    depend on which tests ran before it in its worker (pytest-xdist spreads the tests differently each run)."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _plan_eagerly_unless_marked(request, monkeypatch):
    """Planners compile an ODE model's kernels by default, and a cold compile takes seconds to minutes per new
    batch size, so tests run as on a machine without a C++ compiler (the tested, silent eager fallback), except
    those marked ``compiles``, which check the compiled path itself."""
    if request.node.get_closest_marker("compiles") is None:
        monkeypatch.setattr(physwm.integrators.compiled, "compile_available", lambda device="cpu": False)
        monkeypatch.setattr(physwm.control.dynamics, "compile_available", lambda device="cpu": False)


@pytest.fixture(scope="session")
def executed_notebooks(tmp_path_factory):
    """Every notebook executed once (see notebooks_run.py): the folder of executed copies and the errors."""
    from notebooks_run import run_all, use_this_python

    saved = {k: os.environ.get(k) for k in ("MPLBACKEND", "OMP_NUM_THREADS", "TORCH_COMPILE_DISABLE")}
    # the kernels draw with Jupyter's inline backend (off-screen, figures become PNG outputs, as in a
    # notebook), not Agg: under Agg a figure a cell makes is never shown and the rendered pages have none
    os.environ.update(MPLBACKEND="module://matplotlib_inline.backend_inline", OMP_NUM_THREADS="1")
    # planners compile by default; a cold compile costs the suite minutes and changes no number: the kernels
    # plan eagerly, as on a machine without a compiler (tests marked `compiles` check the compiled path)
    os.environ["TORCH_COMPILE_DISABLE"] = "1"
    jupyter_path = use_this_python(tmp_path_factory.mktemp("jupyter"))
    try:  # the settings hold while the kernels run, not for the rest of the session
        executed = run_all(tmp_path_factory.mktemp("executed"))
    finally:
        if jupyter_path is not None:
            if jupyter_path:
                os.environ["JUPYTER_PATH"] = jupyter_path
            else:
                os.environ.pop("JUPYTER_PATH", None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield executed
