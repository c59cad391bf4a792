r"""Metrics of world models, defined once: every study, figure and notebook uses these.

Two layers:

* **pure functions** of predicted and true tensors (no model, no data container), so each metric has
  one definition that can be checked against hand-computed values:
  :func:`mse_per_dim`, :func:`rmse_vs_horizon`, :func:`valid_prediction_time`, :func:`energy_error`,
  :func:`parameter_error`, :func:`gaussian_nll`, :func:`interval_coverage`, :func:`sharpness`,
  :func:`gaussian_crps`, :func:`ensemble_crps`;
* **model-level** functions that cut evaluation windows out of data, run the model and call the pure
  functions: :func:`one_step_errors`, :func:`rollout_predictions`, :func:`windows_rmse` (the validation
  error of :func:`~physwm.train.fit`), :func:`evaluate`.

Conventions

* ``pred`` and ``true`` rollouts are ``[B, T+1, n]`` in physical units, the first entry being the
  (shared) start state; "horizon ``h``" is the state ``h`` steps after the start.
* **Normalised** errors divide each state dimension by a ``scale [n]`` (a typical size of that
  dimension). Pass the *training* data's :func:`state_scale` so that numbers on different test splits
  are comparable; by default the scale is computed from the true states being evaluated.
* A divergent model may predict NaN or inf. Its squared error is then ``inf`` (a diverged prediction
  is infinitely wrong, never silently dropped), so a RMSE over windows that include a divergent one is
  ``inf``; :func:`valid_prediction_time` counts a non-finite prediction as past the threshold.
* Data given to a model is cast to the model's dtype and device (a model never changes them); errors
  are computed in float64.

Modules: :mod:`.metrics` (pure functions), :mod:`.uncertainty` (NLL, coverage, calibration, sharpness, CRPS),
:mod:`.calibration` (the same along the rollout horizon, trajectory sampling, recalibration), :mod:`.model`
(model-level evaluation), :mod:`.identifiability` (how well data pin down a model's physical constants),
:mod:`.chaos` (a known system's Lyapunov exponent along data, the unit of valid prediction times on chaotic
systems).
"""

from .calibration import RECALIBRATION_GRID, Recalibration, rollout_calibration, trajectory_samples
from .chaos import lyapunov_exponent
from .identifiability import (
    Identifiability,
    UnidentifiableWarning,
    constants_jacobian,
    identifiability,
    learnable_constants,
    loss_residuals,
)
from .metrics import (
    DEFAULT_HORIZONS,
    DEFAULT_VPT_THRESHOLD,
    energy_error,
    mse_per_dim,
    parameter_error,
    rmse_vs_horizon,
    squared_error,
    state_scale,
    valid_prediction_time,
)
from .model import (
    eval_windows,
    evaluate,
    identified_constants,
    one_step_errors,
    predictive_distribution,
    rollout_predictions,
    rollout_rmse,
    time_derivative,
    uncertainty_metrics,
    windows_rmse,
)
from .uncertainty import (
    DEFAULT_LEVELS,
    RELIABILITY_LEVELS,
    calibration_error,
    ensemble_crps,
    gaussian_crps,
    gaussian_nll,
    interval_coverage,
    sharpness,
)

__all__ = [
    "DEFAULT_HORIZONS",
    "DEFAULT_VPT_THRESHOLD",
    "DEFAULT_LEVELS",
    "state_scale",
    "squared_error",
    "mse_per_dim",
    "rmse_vs_horizon",
    "valid_prediction_time",
    "energy_error",
    "parameter_error",
    "gaussian_nll",
    "interval_coverage",
    "calibration_error",
    "RELIABILITY_LEVELS",
    "sharpness",
    "gaussian_crps",
    "ensemble_crps",
    "trajectory_samples",
    "rollout_calibration",
    "Recalibration",
    "RECALIBRATION_GRID",
    "eval_windows",
    "rollout_predictions",
    "windows_rmse",
    "rollout_rmse",
    "time_derivative",
    "identified_constants",
    "one_step_errors",
    "predictive_distribution",
    "uncertainty_metrics",
    "evaluate",
    "identifiability",
    "Identifiability",
    "UnidentifiableWarning",
    "learnable_constants",
    "loss_residuals",
    "constants_jacobian",
    "lyapunov_exponent",
]
