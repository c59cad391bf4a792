"""Shared test settings.

The suite's tensors are tiny (batches of tens to thousands of 4-vectors): one intra-op thread is faster
than two there (thread hand-off costs more than the arithmetic), and it keeps timings steady when other
processes share the two cores. Matplotlib draws off-screen.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
