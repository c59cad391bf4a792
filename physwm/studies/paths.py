"""Where a study's files live, and which runs a study consists of (shared by the runner, report and figures)."""

from __future__ import annotations

from pathlib import Path

from .config import StudyConfig

__all__ = ["data_path", "run_path", "compare_runs", "efficiency_runs", "all_runs"]


def data_path(out: Path, task: str, split: str) -> Path:
    """The collected data set of a task's split: ``OUT/runs/data/TASK/SPLIT.npz``."""
    return Path(out) / "runs" / "data" / task / f"{split}.npz"


def run_path(out: Path, task: str, model: str, n: int, seed: int) -> Path:
    """A run's result file ``OUT/runs/TASK/MODEL/nN_sSEED.json`` (its checkpoint: the same with ``.pt``)."""
    return Path(out) / "runs" / task / model / f"n{n}_s{seed}.json"


def compare_runs(cfg: StudyConfig) -> list[tuple[str, str, int, int]]:
    """The comparison runs ``(task, model, transitions, seed)``."""
    return [(t.name, m.name, cfg.train_transitions, s) for t in cfg.tasks for m in cfg.task_models(t)
            for s in cfg.seeds]  # fmt: skip


def efficiency_runs(cfg: StudyConfig) -> list[tuple[str, str, int, int]]:
    """The data-efficiency runs ``(task, model, transitions, seed)``."""
    de = cfg.data_efficiency
    if de is None:
        return []
    models = de.models or [m.name for m in cfg.models]
    seeds = de.seeds or cfg.seeds
    return [(de.task, m, n, s) for m in models for n in de.sizes for s in seeds]


def all_runs(cfg: StudyConfig) -> list[tuple[str, str, int, int]]:
    """Every run of the study, each once, comparison runs first."""
    return list(dict.fromkeys(compare_runs(cfg) + efficiency_runs(cfg)))
