"""Online adaptation while planning: :class:`AdaptiveController` re-identifies a model's constants in the loop.

The controller wraps a :class:`~physwm.control.Planner` whose model has learnable physical constants (an
explicit model or a hybrid). It records the transitions it sees, and every ``every`` control steps fits the
constants to the latest ``window`` of them (one-step residuals, the model's own loss) by one
Gauss-Newton step from the current values (GrBAL-style: Nagabandi et al. 2019 adapt on the last 16
transitions). One step costs a few forward passes, so it fits inside a control period; while the estimate is
still moving (a step that cut the window's loss by more than half) the next fit comes at the next control
step rather than ``every`` steps later, so a changed system is re-identified within a few steps of the first
fit, one step per control period. The
new constants are written into the planner's model in place, so the planner (compiled or not) plans with
them from the next step on and MPC keeps working when the system changes mid-episode.

Before stepping, the window's Gauss-Newton Hessian says which constants it pins down
(:func:`~physwm.evaluate.analyse_jacobian`): the others keep their previous values (a cart at rest says
nothing of its friction, and a fit on it would jump), with an :class:`~physwm.evaluate.UnidentifiableWarning`
naming them; the step is taken on the constants that are pinned down, and only kept if it lowers the
window's loss.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections import deque
from typing import Any

import numpy as np
import torch

from ..checks import finite_float, positive_int
from ..evaluate import UnidentifiableWarning, analyse_jacobian, constants_jacobian, loss_residuals
from ..train.adapt import constant_paths, constant_raw, constant_value, set_trainable
from .planners import Planner

__all__ = ["AdaptiveController"]


class AdaptiveController:
    """A planner whose model's physical constants are re-identified every ``every`` steps (module docstring).

    Args:
        planner: a :class:`Planner` on a model with learnable physical constants.
        every: re-identify every this many control steps, k.
        window: transitions kept (the latest), W.
        params: constants to re-identify (labels of :func:`~physwm.evaluate.learnable_constants`; default all the
            model's learnable constants).
        min_transitions: fewest transitions a fit uses (default ``max(10, 2 * len(params))``).
        tolerance: a constant is pinned down when its standard error is below this fraction of the larger of its
            value and its scale (see :func:`~physwm.evaluate.identifiability`).
        resolution: smallest residual spread assumed (units of the one-step change's spread).
        damping: Levenberg-Marquardt damping of the step, relative to each column's norm.
        follow_up: a fit whose step lowered the window's loss (mean square, above ``resolution**2``) below this
            fraction of its value before is followed by another at the next control step, until one is not (the
            estimate is still moving); 0: fits only every ``every`` steps.
        trim: each fit leaves out the window's transitions whose residual RMS (at the current constants) exceeds
            ``trim`` times the median, as :func:`~physwm.adapt` does: transitions the model class cannot represent,
            such as stiff Coulomb friction switching within one step, otherwise pull every constant off the
            truth (never below half the window or ``min_transitions``; ``None``: no trimming).

    Attributes:
        planner, model: the wrapped planner and its model (whose constants change in place).
        history: one dict per fit: ``step``, ``constants`` (after), ``updated`` and ``kept`` (names),
            ``trimmed`` (transitions left out), ``loss_before``, ``loss_after`` (on the transitions kept),
            ``cpu_ms``.

    Call it like a planner: ``controller(state [n]) -> control [m]``; :func:`~physwm.control.run_episode` resets it
    (the constants go back to the model's at construction, the window is emptied).
    """

    def __init__(self, planner: Planner, *, every: int = 10, window: int = 50, params: list[str] | None = None,
                 min_transitions: int | None = None, tolerance: float = 0.1, resolution: float = 1e-3,
                 damping: float = 1e-3, follow_up: float = 0.5, trim: float | None = 3.0):  # fmt: skip
        if not isinstance(planner, Planner):
            raise TypeError(f"planner must be a Planner, got {type(planner).__name__}")
        self.planner = planner
        self.model = planner.model
        self.every = positive_int(every, "every")
        self.window = positive_int(window, "window")
        self.tolerance = finite_float(tolerance, "tolerance", positive=True)
        self.resolution = finite_float(resolution, "resolution", positive=True)
        self.damping = finite_float(damping, "damping", nonnegative=True)
        self.follow_up = finite_float(follow_up, "follow_up", nonnegative=True)
        self.trim = None if trim is None else finite_float(trim, "trim", positive=True)
        if self.follow_up >= 1:
            raise ValueError(f"follow_up must be below 1 (a fraction of the loss), got {follow_up}")
        consts = constant_paths(self.model)
        if not consts:
            raise ValueError(f"the planner's model ({type(self.model).__name__}) has no learnable physical constants "
                             "to re-identify; wrap a planner on an explicit or hybrid model")  # fmt: skip
        valid = [label for label, _, _ in consts]
        if isinstance(params, str):
            raise TypeError(f"params must be a list of constant names, got the string {params!r}")
        chosen = valid if params is None else list(params)
        unknown = sorted(set(chosen) - set(valid))
        if unknown or not chosen:
            raise ValueError(f"unknown or no constants {unknown or chosen} in params; valid: {valid}")
        self.constants = [c for c in consts if c[0] in chosen]
        self.min_transitions = (max(10, 2 * len(self.constants)) if min_transitions is None
                                else positive_int(min_transitions, "min_transitions"))  # fmt: skip
        if self.min_transitions < len(self.constants):
            raise ValueError(f"min_transitions={self.min_transitions} is fewer than the "
                             f"{len(self.constants)} constants")
        if self.window < self.min_transitions:
            raise ValueError(f"window={self.window} holds fewer than min_transitions={self.min_transitions}")
        self.work = copy.deepcopy(self.model).double().eval()
        set_trainable(self.work, self.constants, networks=False)
        self.scales = [type(self.work.get_submodule(p)).constants[n].scale for _, p, n in self.constants]
        self.floors = [type(self.work.get_submodule(p)).constants[n].floor for _, p, n in self.constants]
        self.initial = [float(constant_raw(self.model, p, n).detach()) for _, p, n in self.constants]
        self.history: list[dict[str, Any]] = []
        self.reset()

    # -- planner interface ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"adaptive {self.planner.name}"

    @property
    def last_info(self) -> dict[str, Any]:
        return self.planner.last_info

    def reset(self) -> None:
        """Back to the constants at construction, an empty window, the planner's warm start forgotten."""
        with torch.no_grad():
            for (_, p, n), v in zip(self.constants, self.initial):
                constant_raw(self.model, p, n).fill_(v)
        self._states: deque[np.ndarray] = deque(maxlen=self.window)
        self._controls: deque[np.ndarray] = deque(maxlen=self.window)
        self._next: deque[np.ndarray] = deque(maxlen=self.window)
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._steps = 0
        self._due = self.every  # the step of the next fit (once the window holds min_transitions)
        self.planner.reset()

    def __call__(self, state: Any) -> torch.Tensor:
        """The planner's control for ``state [n]``, after recording the last transition and, every ``every``
        steps (every step while the estimate is moving, see ``follow_up``), re-identifying the constants."""
        x = np.asarray(state.detach().cpu() if isinstance(state, torch.Tensor) else state, dtype=np.float64)
        if self._last is not None:
            self.observe(self._last[0], self._last[1], x)
        if self._steps >= self._due and len(self._states) >= self.min_transitions:
            fit = self.reidentify()
            # still moving: the step cut the loss by more than follow_up, and the loss is above the residuals'
            # resolution (a fit at round-off halves its loss without the constants moving)
            moving = (fit["loss_after"] < self.follow_up * fit["loss_before"]
                      and fit["loss_before"] > self.resolution**2)  # fmt: skip
            self._due = self._steps + (1 if moving else self.every)
        u = self.planner(x)
        self._last = (x.reshape(-1).copy(), np.asarray(u.detach().cpu() if isinstance(u, torch.Tensor) else u,
                                                       dtype=np.float64).reshape(-1))  # fmt: skip
        self._steps += 1
        return u

    def observe(self, state: Any, control: Any, next_state: Any) -> None:
        """Add one transition ``(state [n], control [m], next_state [n])`` to the window.

        Raises:
            ValueError: entries of the wrong size, NaN or inf.
        """
        n, m = int(self.model.state_dim), int(self.model.control_dim)
        x, u, y = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (state, control, next_state))
        if x.shape != (n,) or y.shape != (n,) or u.shape != (m,):
            raise ValueError(f"a transition needs states of size {n} and a control of size {m}, got "
                             f"{x.shape}, {u.shape}, {y.shape}")  # fmt: skip
        if not (np.isfinite(x).all() and np.isfinite(u).all() and np.isfinite(y).all()):
            raise ValueError(f"a transition contains NaN or inf: state {x.tolist()}, control {u.tolist()}, "
                             f"next state {y.tolist()}")  # fmt: skip
        self._states.append(x)
        self._controls.append(u)
        self._next.append(y)

    # -- identification -----------------------------------------------------------------------------------
    def _untrimmed(self, residuals: np.ndarray, transitions: int) -> np.ndarray:
        """Mask ``[N]`` of the window's transitions whose residual RMS is within ``trim`` times the median (all of
        them if that would leave fewer than half the window or fewer than ``min_transitions``)."""
        keep = np.ones(transitions, dtype=bool)
        if self.trim is None:
            return keep
        rms = np.sqrt((residuals.reshape(transitions, -1) ** 2).mean(1))
        new = rms <= self.trim * np.median(rms)
        if int(new.sum()) < max(self.min_transitions, (transitions + 1) // 2):
            return keep
        return new

    @torch.no_grad()
    def reidentify(self) -> dict[str, Any]:
        """One Gauss-Newton step on the window for the constants it pins down; the others are kept.

        Returns:
            The :attr:`history` entry of this fit.

        Raises:
            ValueError: fewer transitions in the window than ``min_transitions``.
        """
        if len(self._states) < self.min_transitions:
            raise ValueError(f"the window holds {len(self._states)} transitions, fewer than min_transitions="
                             f"{self.min_transitions}")  # fmt: skip
        c0 = time.process_time()
        s = torch.from_numpy(np.stack([np.stack(self._states), np.stack(self._next)], 1))
        c = torch.from_numpy(np.stack(self._controls))[:, None]
        for _, p, n in self.constants:
            constant_raw(self.work, p, n).copy_(constant_raw(self.model, p, n).detach())
        J, r = constants_jacobian(self.work, s, c)
        J, r = J.numpy(), r.numpy()
        kept_rows = self._untrimmed(r, len(s))
        if not kept_rows.all():
            rows = np.repeat(kept_rows, r.shape[0] // len(s))
            J, r, s, c = J[rows], r[rows], s[torch.from_numpy(kept_rows)], c[torch.from_numpy(kept_rows)]
        raws = np.array([float(constant_raw(self.work, p, n)) for _, p, n in self.constants])
        names = [label for label, _, _ in self.constants]
        values = [sc * max(x, f) for sc, x, f in zip(self.scales, raws, self.floors)]
        # conditioning alone (residuals taken as zero, i.e. at the resolution): the residuals before the step say
        # how wrong the constants are, not how well the window could pin them down
        floors = [f * sc for f, sc in zip(self.floors, self.scales)]
        report = analyse_jacobian(J, np.zeros_like(r), names, values, self.scales, floors, self.resolution,
                                  self.tolerance)  # fmt: skip
        kept = [n for n in names if n in report.unidentifiable]
        free = np.array([n not in report.unidentifiable for n in names])
        before = after = float(np.mean(r**2))
        if kept:
            warnings.warn(f"online re-identification at step {self._steps}: the last {len(self._states)} transitions "
                          f"do not pin down {', '.join(kept)}; keeping their previous values ("
                          + "; ".join(f"{n}: {why}" for n, why in report.unidentifiable.items()) + ")",
                          UnidentifiableWarning, stacklevel=3)  # fmt: skip
        if free.any():
            Jf = J[:, free]
            norms = np.sqrt((Jf**2).sum(0)) + 1e-300
            A = np.vstack([Jf, np.diag(math.sqrt(self.damping) * norms)])
            delta = np.linalg.lstsq(A, np.concatenate([-r, np.zeros(Jf.shape[1])]), rcond=None)[0]
            trial = raws.copy()
            trial[free] = np.maximum(raws[free] + delta, np.asarray(self.floors)[free])
            for (_, p, n), v in zip(self.constants, trial):
                constant_raw(self.work, p, n).fill_(float(v))
            new = float(loss_residuals(self.work, s, c).pow(2).mean())
            if math.isfinite(new) and new < before:
                after = new
                for (_, p, n), v in zip(self.constants, trial):
                    constant_raw(self.model, p, n).fill_(float(v))
            else:
                free[:] = False  # the step did not help: nothing changes
        entry = {"step": self._steps, "updated": [n for n, f in zip(names, free) if f], "kept": kept,
                 "trimmed": int((~kept_rows).sum()),
                 "constants": {label: constant_value(self.model, p, n) for label, p, n in self.constants},
                 "loss_before": before, "loss_after": after, "cpu_ms": 1e3 * (time.process_time() - c0)}  # fmt: skip
        self.history.append(entry)
        return entry
