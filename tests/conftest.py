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


@pytest.fixture(autouse=True)
def _plan_eagerly_unless_marked(request, monkeypatch):
    """Planners compile an ODE model's kernels by default, and a cold compile takes seconds to minutes per new
    batch size, so tests run as on a machine without a C++ compiler (the tested, silent eager fallback), except
    those marked ``compiles``, which check the compiled path itself."""
    if request.node.get_closest_marker("compiles") is None:
        monkeypatch.setattr(physwm.integrators.compiled, "compile_available", lambda device="cpu": False)
        monkeypatch.setattr(physwm.control.dynamics, "compile_available", lambda device="cpu": False)
