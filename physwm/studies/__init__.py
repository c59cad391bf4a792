"""Accuracy and extrapolation studies: every model family, the same data and seeds, every metric.

* :mod:`.config`: :class:`StudyConfig` and its parts (JSON in, JSON out); :func:`default_config` loads the
  default study (``default.json``, ``quick.json``);
* :mod:`.runner`: :func:`run_study`, :func:`compare`, :func:`data_efficiency` (resumable, on local worker
  processes or any ``concurrent.futures.Executor``);
* :mod:`.executors`: executors by name (``"process"``, ``"ray"``: :class:`RayExecutor`);
* :mod:`.report`: aggregation over seeds, the headline comparison, Markdown/CSV/JSON;
* :mod:`.figures`: the figures and the arrays they are drawn from (``physwm plot DIR``).
"""

from ..train import FitConfig
from .config import (
    IMPLICIT_FAMILIES,
    STUDY_FIT,
    DataEfficiencyConfig,
    HeadlineConfig,
    ModelConfig,
    SplitConfig,
    StudyConfig,
    TaskConfig,
    default_config,
)
from .executors import EXECUTORS, RayExecutor, make_executor
from .figures import draw_figures
from .report import load_results, write_report
from .runner import StudyResult, compare, data_efficiency, run_study

__all__ = [
    "SplitConfig",
    "TaskConfig",
    "ModelConfig",
    "FitConfig",
    "STUDY_FIT",
    "DataEfficiencyConfig",
    "HeadlineConfig",
    "StudyConfig",
    "StudyResult",
    "default_config",
    "compare",
    "data_efficiency",
    "run_study",
    "load_results",
    "write_report",
    "draw_figures",
    "IMPLICIT_FAMILIES",
    "EXECUTORS",
    "RayExecutor",
    "make_executor",
]
