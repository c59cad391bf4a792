"""Trajectory data: the :class:`Trajectories` container, data-collection policies, and :func:`collect`.

* :mod:`.trajectories`: :class:`Trajectories` (episodes padded to a common length, windows, splits, .npz
  files with a schema version) and :class:`EpisodeData` (what fit and evaluate accept);
* :mod:`.policies`: :func:`make_policy` builds ``"random"``, ``"uniform"`` and ``"lqr"``;
* :mod:`.collect`: :func:`collect` runs a policy in an environment and records exact states and controls;
* :mod:`.noise`: :class:`ObservationNoise` and :class:`ProcessNoise`, what noisy data adds to them.
"""

from .collect import collect
from .noise import ObservationNoise, ProcessNoise, observe, state_spread
from .policies import POLICIES, LQRPolicy, NoControl, Policy, RandomPolicy, UniformPolicy, make_policy
from .trajectories import SCHEMA_VERSION, EpisodeData, Trajectories, windows

__all__ = [
    "Trajectories",
    "EpisodeData",
    "windows",
    "collect",
    "make_policy",
    "Policy",
    "RandomPolicy",
    "UniformPolicy",
    "LQRPolicy",
    "POLICIES",
    "NoControl",
    "SCHEMA_VERSION",
    "ObservationNoise",
    "ProcessNoise",
    "observe",
    "state_spread",
]
