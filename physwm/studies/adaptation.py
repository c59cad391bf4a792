"""The adaptation split of a study: a test split scored again after each model adapts to its system.

A test split with ``adapt: [K, ...]`` (see :class:`~physwm.studies.SplitConfig`) has, besides its test episodes,
an adaptation pool: the first transitions of episodes of the split's own system under the split's policy and
start states, collected with seed ``split.seed + ADAPT_SEED_OFFSET`` (so separate from the test episodes). Each
comparison run (``train_transitions`` transitions) then scores, for every K, a copy of its trained model adapted
by :func:`physwm.adapt` to the first K transitions of that pool (physics-based models re-identify their
constants, implicit ones are fine-tuned with the same budget) on the split's test episodes, under the name
``SPLIT+adaptK`` (:func:`adapted_name`). The data-efficiency runs are not adapted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..data import Trajectories, collect
from ..systems import System
from ..train import adapt

__all__ = ["ADAPT_SEED_OFFSET", "adapted_name", "adapted_of", "result_columns", "pool_name", "check_adapt",
           "collect_pool", "adapted_metrics"]  # fmt: skip

#: The adaptation pool of a split is collected with seed ``split.seed + ADAPT_SEED_OFFSET``.
ADAPT_SEED_OFFSET = 1000
#: Most episodes collected to gather an adaptation pool (episodes that terminate early need several).
MAX_POOL_EPISODES = 64
_ADAPTED_RE = re.compile(r"^(.+)\+adapt(\d+)$")


def adapted_name(split: str, k: int) -> str:
    """The results' name of split ``split`` scored after adaptation to ``k`` transitions: ``SPLIT+adaptK``."""
    return f"{split}+adapt{k}"


def adapted_of(name: str) -> tuple[str, int] | None:
    """``(split, K)`` of an adapted split's name (:func:`adapted_name`), ``None`` for any other name."""
    m = _ADAPTED_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def result_columns(splits: Sequence[Any]) -> list[tuple[str, Any]]:
    """``(result name, split)`` of test splits in report order: each split, then its adapted versions."""
    return [(name, s) for s in splits for name in [s.name] + [adapted_name(s.name, k) for k in (s.adapt or [])]]


def pool_name(split: str) -> str:
    """The data set name of a split's adaptation pool (``OUT/runs/data/TASK/SPLIT+adapt.npz``)."""
    return f"{split}+adapt"


def check_adapt(ks: Any, where: str, system: type[System]) -> list[int]:
    """A split's ``adapt`` list, checked: distinct ints K, each at least the number of constants the system
    identifies (``system.identify``), so that every model with learnable constants can be adapted.

    Raises:
        ValueError: not a non-empty list, a non-integer or duplicate K, K below the number of constants.
    """
    if not isinstance(ks, (list, tuple)) or not ks:
        raise ValueError(f"{where}: adapt must be a non-empty list of transition counts K (e.g. [30]), got {ks!r}")
    need = max(1, len(system.identify))
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int):
            raise ValueError(f"{where}: adapt holds {k!r}; every K must be an int (transitions of the split's system)")
        if k < need:
            raise ValueError(f"{where}: adapt K = {k} transitions cannot determine the {need} constants "
                             f"{system.name} identifies ({list(system.identify)}); give K >= {need}")  # fmt: skip
    if len(set(ks)) != len(ks):
        raise ValueError(f"{where}: adapt holds a K twice: {list(ks)}")
    return list(ks)


def collect_pool(env, policy, split: Any, transitions: int) -> Trajectories:
    """The adaptation pool of a split: its first ``transitions`` transitions of the split's system.

    Args:
        env: the split's environment (its system, constants and options).
        policy: the split's data-collection policy.
        split: the :class:`~physwm.studies.SplitConfig` (start states, seed).
        transitions: transitions needed (the split's largest K).

    Returns:
        Trajectories of ``transitions`` transitions: one episode, or more if the environment ends them early.

    Raises:
        ValueError: if :data:`MAX_POOL_EPISODES` episodes do not hold enough transitions.
    """
    episodes = 1
    while True:
        traj = collect(env, policy, episodes=episodes, max_steps=transitions, seed=split.seed + ADAPT_SEED_OFFSET,
                       start_low=split.start_low, start_high=split.start_high, progress=False,
                       start_radius=split.start_radius)  # fmt: skip
        if traj.num_transitions >= transitions:
            return traj.head(transitions)
        if episodes >= MAX_POOL_EPISODES:
            raise ValueError(f"split {split.name!r}: {episodes} episodes hold only {traj.num_transitions} "
                             f"transitions, fewer than adapt's K = {transitions}; lower K")  # fmt: skip
        episodes = min(2 * episodes, MAX_POOL_EPISODES)


def adapted_metrics(model: nn.Module, pool: Trajectories, ks: Sequence[int],
                    score: Callable[[nn.Module], dict]) -> dict[int, dict]:  # fmt: skip
    """``{K: score(adapted copy)}``: ``model`` adapted (:func:`physwm.adapt`, its defaults) to the first K
    transitions of ``pool``, for each K; ``model`` itself is untouched.

    Args:
        model: a trained WorldModel.
        pool: the split's adaptation pool (at least ``max(ks)`` transitions).
        ks: transition counts.
        score: the split's metrics of a model (e.g. :func:`physwm.evaluate.evaluate` on its test episodes).

    Returns:
        the metrics per K, each with ``adapt_k``, ``adapt_cpu_s`` and ``adapt_eval_cpu_s`` (CPU seconds of the
        adaptation and of scoring the adapted copy, ``time.process_time``) and ``adapt_loss_before`` /
        ``adapt_loss_after`` (the model's loss on the K transitions) added.
    """
    out = {}
    for k in ks:
        adapted = adapt(model, pool.head(k))
        a, c0 = adapted.adaptation, time.process_time()
        metrics = score(adapted)
        out[k] = {**metrics, "adapt_k": int(k), "adapt_cpu_s": a.cpu_seconds, "adapt_eval_cpu_s":
                  time.process_time() - c0, "adapt_loss_before": a.loss_before, "adapt_loss_after": a.loss_after}
    return out
