"""Training: :func:`fit` any WorldModel to trajectories, with checkpoints that resume exactly.

* :mod:`.config`: :class:`FitConfig`, every option of ``fit`` as one dataclass;
* :mod:`.fit`: the loop (:func:`fit`, :class:`TrainingDiverged`, :class:`TrainingDivergedWarning`);
* :mod:`.history`: :class:`History`, the record of a run;
* :mod:`.constants`: :func:`gauss_newton_constants`, the second-order fit of a model's physical constants;
* :mod:`.adapt`: :func:`adapt`, few-shot adaptation of a trained model to a changed system;
* :mod:`.family`: :func:`fit_family` across a family of systems, :func:`adapt_context` (the context alone);
* :mod:`.shooting`: :func:`shooting_constants`, multiple shooting on noisy data, and :func:`estimate_obs_noise`;
* :mod:`.checkpoint`: :func:`save_checkpoint`, :func:`load_checkpoint`.
"""

from .adapt import Adaptation, adapt
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, save_checkpoint
from .config import LR_SCHEDULES, OPTIMIZERS, FitConfig
from .constants import gauss_newton_constants, levenberg_marquardt
from .family import FamilyFit, adapt_context, family_windows, fit_family
from .fit import TrainingDiverged, TrainingDivergedWarning, fit
from .history import History
from .shooting import estimate_obs_noise, identify_noisy_constants, shooting_constants

__all__ = [
    "fit",
    "FitConfig",
    "History",
    "TrainingDiverged",
    "TrainingDivergedWarning",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "gauss_newton_constants",
    "levenberg_marquardt",
    "adapt",
    "Adaptation",
    "fit_family",
    "FamilyFit",
    "adapt_context",
    "family_windows",
    "shooting_constants",
    "estimate_obs_noise",
    "identify_noisy_constants",
]
