"""The record of a training run: :class:`History` (per-epoch losses, validation errors, how it ended)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import atomic_write_text, read_json

__all__ = ["History", "CONVERGED_RTOL"]

#: Relative improvement of the best monitored value over the last quarter of the epochs below which a run
#: that hit a cap still counts as converged.
CONVERGED_RTOL = 0.01


@dataclass
class History:
    """What :func:`fit` did, one entry per epoch.

    Attributes:
        epoch: epoch numbers, starting at 1.
        train_loss: mean training loss of each epoch (``nan`` for the epoch that diverged).
        val_error: validation rollout RMSE in normalised state units after each epoch (``None`` without
            validation data).
        lr: learning rate used during each epoch.
        time: seconds of training since the run started (summed over resumed sessions) at each epoch's end.
        metrics: per-epoch means of the metrics ``model.loss`` reports, by name.
        monitor: what selects the best epoch and drives early stopping / the plateau schedule:
            ``"val_error"`` with validation data, else ``"train_loss"``.
        best_epoch: epoch of the lowest monitored value (``None`` if no epoch finished).
        best_value: that value.
        stop_reason: ``"epochs"``, ``"early_stopping"``, ``"max_time"``, ``"callback"``, ``"diverged"`` or
            ``"explained"`` (the constants fitted first explained the data; no epoch trained) or ``"shooting"``
            (noisy data, a model of constants only: multiple shooting was the whole fit).
        diverged: True if training stopped on NaN/inf.
        message: human-readable note on how the run ended.
        selection: with ``keep_initial``, how the trained and the untrained model compared on validation
            rollouts (``select_horizon``, ``val_rmse_trained``, ``val_rmse_untrained``, ``selected``).
        prefit: with ``prefit_steps``, what the Gauss-Newton fit of the constants alone before training did
            (same keys as ``polish``); its result counts as epoch 0 for ``best_epoch``.
        polish: with ``polish_steps``, what the Gauss-Newton polish of the constants did (``monitor``, its value
            ``before`` and ``after``, ``kept``, ``iterations``, ``seconds``).
        identifiability: with ``diagnose``, the :meth:`physwm.evaluate.Identifiability.to_dict` of the
            fitted constants on the training data (empty for models without constants).
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_error: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    monitor: str = "val_error"
    best_epoch: int | None = None
    best_value: float | None = None
    stop_reason: str = ""
    diverged: bool = False
    message: str = ""
    selection: dict[str, Any] = field(default_factory=dict)
    prefit: dict[str, Any] = field(default_factory=dict)
    polish: dict[str, Any] = field(default_factory=dict)
    identifiability: dict[str, Any] = field(default_factory=dict)

    @property
    def stopped_early(self) -> bool:
        """True if early stopping ended the run."""
        return self.stop_reason == "early_stopping"

    @property
    def converged(self) -> bool:
        """Whether training reached a plateau: stopped early (no improvement for the patience), or the best
        monitored value improved by less than ``CONVERGED_RTOL`` (relative) over the last quarter of the
        epochs. False if it diverged or was still improving when a cap (epochs, steps, time) stopped it."""
        if self.stop_reason in ("explained", "shooting"):
            return True
        if self.diverged or not self.epoch:
            return False
        if self.stop_reason == "early_stopping":
            return True
        values = [v if self.monitor == "train_loss" else e for v, e in zip(self.train_loss, self.val_error)]
        values = [math.inf if v is None or not math.isfinite(v) else v for v in values]
        k = len(values) - max(1, len(values) // 4)
        if k < 1:
            return False
        before, after = min(values[:k]), min(values)
        return math.isfinite(after) and after >= before * (1.0 - CONVERGED_RTOL)

    def summary(self) -> str:
        """How training went, in a few lines: converged or not (and why), the best epoch, the polish of
        the constants and, for models with constants, their identifiability."""
        if not self.epoch and self.stop_reason not in ("explained", "shooting"):
            return "no epoch trained"
        n = len(self.epoch)
        if self.stop_reason == "explained":
            loss = self.prefit.get("train_loss", math.nan)
            head = f"converged: the constants fitted first explain the training data (loss {loss:.3g}), no epoch needed"
        elif self.stop_reason == "shooting":
            head = "identified: the constants were fitted to noisy data by multiple shooting, nothing else to train"
        elif self.diverged:
            head = f"diverged after {n} epochs: {self.message}"
        elif self.converged:
            how = "no improvement for the patience" if self.stop_reason == "early_stopping" else "plateau"
            head = f"converged ({how}) after {n} epochs, {self.time[-1]:.1f} s"
        else:
            head = (f"NOT converged: {self.monitor} was still improving when training stopped ({self.stop_reason}) "
                    f"after {n} epochs, {self.time[-1]:.1f} s; train longer (steps=, epochs=, max_time=)")  # fmt: skip
        lines = [head]
        if self.best_epoch is not None and self.best_value is not None:
            lines.append(f"best epoch {self.best_epoch}: {self.monitor} {self.best_value:.4g}")
        for p, what in ((self.prefit, "fit of the constants first"), (self.polish, "polish of the constants")):
            if p:
                verdict = "kept" if p["kept"] else "discarded (no better)"
                lines.append(f"{p.get('method', 'Gauss-Newton')} {what}: {p['monitor']} {p['before']:.4g} -> "
                             f"{p['after']:.4g}, {verdict}, {p['iterations']} steps, {p['seconds']:.1f} s")  # fmt: skip
        if self.selection:
            lines.append(f"selected the {self.selection['selected']} model on validation rollouts")
        ident = self.identifiability
        if ident:
            lines.append(f"constants (95% intervals; condition number {_num(ident['condition_number']):.3g}):")
            lows, highs = map(_num, ident["low"]), map(_num, ident["high"])
            for name, v, lo, hi in zip(ident["names"], ident["values"], lows, highs):
                flag = "  NOT IDENTIFIABLE" if name in ident["unidentifiable"] else ""
                lines.append(f"  {name} = {v:.6g} [{lo:.6g}, {hi:.6g}]{flag}")
            for a, b, r in ident["trade_offs"]:
                lines.append(f"  {a} and {b} trade off (correlation {r:+.3f})")
        return "\n".join(lines)

    @property
    def best_val_error(self) -> float | None:
        """Validation error of the best epoch (``None`` without validation data)."""
        if self.best_epoch is None or self.monitor != "val_error":
            return None
        if self.best_epoch not in self.epoch:  # epoch 0: the constants fitted before training (prefit_steps)
            return self.best_value
        return self.val_error[self.epoch.index(self.best_epoch)]

    def to_dict(self, json_safe: bool = False) -> dict[str, Any]:
        """Plain dict; ``json_safe=True`` turns NaN/inf into ``None`` (strict JSON)."""
        d = dataclasses.asdict(self)
        return _json_safe(d) if json_safe else d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> History:
        """Inverse of :meth:`to_dict` (unknown keys are an error naming them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown History fields {unknown}; valid: {sorted(names)}")
        d = dict(d)
        for key in ("train_loss", "lr", "time"):
            if key in d:
                d[key] = [float("nan") if v is None else v for v in d[key]]
        if "metrics" in d:
            d["metrics"] = {k: [float("nan") if v is None else v for v in vs] for k, vs in d["metrics"].items()}
        return cls(**d)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the history as JSON (NaN/inf as ``null``), atomically; ``FileExistsError`` unless ``overwrite``."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(json_safe=True), indent=1) + "\n", overwrite=overwrite)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`save`."""
        path = Path(path)
        d = read_json(path, "JSON history file")
        if not isinstance(d, dict):
            raise ValueError(f"{path} is not a JSON history file (top level is a {type(d).__name__})")
        return cls.from_dict(d)

    def __repr__(self) -> str:
        last = f", last train_loss={self.train_loss[-1]:.4g}" if self.train_loss else ""
        best = f", best_epoch={self.best_epoch} ({self.monitor}={self.best_value:.4g})" if self.best_epoch else ""
        return f"History(epochs={len(self.epoch)}{last}{best}, stop_reason={self.stop_reason!r})"


def _num(v: float | None) -> float:
    """A number read back from JSON, where ``None`` stands for inf (:meth:`History.to_dict`)."""
    return math.inf if v is None else float(v)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v
