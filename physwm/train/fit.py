"""The training loop: :func:`fit` any WorldModel to trajectories, resumable bit for bit.

``fit`` and the models meet at one method, ``model.loss(batch) -> (scalar, metrics)``, where a batch is
``{"states": [B, H+1, n], "controls": [B, H, m]}`` in physical units: ``H = 1`` windows give the
one-step loss, ``H > 1`` windows the multi-step (shooting) loss of an open-loop rollout. ``fit`` cuts the
training episodes into all windows of ``horizon`` steps, shuffles them with a seeded generator, and runs
the optimiser on minibatches; after each epoch it measures the validation **rollout** error
(:func:`physwm.evaluate.windows_rmse`: RMSE over ``val_horizon`` open-loop steps from every validation
window, in units of the training data's state spread), keeps the best weights, and restores them at the end.

Divergence: when a loss, gradient, parameter or validation error becomes NaN/inf, ``fit`` stops, restores
the best weights seen so far (or the weights it started from), writes them to the checkpoint, sets
``history.diverged`` and ``history.stop_reason = "diverged"``, and then, by default
(``on_divergence="warn"``), emits a :class:`TrainingDivergedWarning` and returns the history; with
``on_divergence="raise"`` it raises :class:`TrainingDiverged` (which carries the history) instead.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..checks import module_dtype_device
from ..data import EpisodeData
from ..evaluate import UnidentifiableWarning, identifiability, learnable_constants, rollout_rmse, windows_rmse
from ..systems import System
from .checkpoint import load_checkpoint, write_checkpoint
from .config import FitConfig
from .constants import gauss_newton_constants
from .history import History
from .shooting import identify_noisy_constants, resolve_obs_noise

__all__ = ["fit", "TrainingDiverged", "TrainingDivergedWarning", "constants_params"]

_CHUNK = 8192  # windows per model call when the whole training set is evaluated

# FitConfig fields that must be the same when a run is resumed (others, e.g. epochs or max_time, may change).
_RESUME_KEYS = (
    "horizon", "batch_size", "lr", "constants_lr", "weight_decay", "grad_clip", "lr_schedule", "early_stopping",
    "min_delta", "val_horizon", "val_max_windows", "normalize", "seed", "validation", "optimizer", "obs_noise",
)  # fmt: skip


class TrainingDiverged(RuntimeError):
    """Raised by ``fit(..., on_divergence="raise")`` when training hits NaN/inf; ``.history`` has the run."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


class TrainingDivergedWarning(RuntimeWarning):
    """Warned by ``fit`` (default ``on_divergence="warn"``) when training hits NaN/inf and stops."""


def _unpack_loss(out: Any, model: nn.Module, need_grad: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, tuple) and len(out) == 2:
        loss, metrics = out
    else:
        loss, metrics = out, {}
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(
            f"{type(model).__name__}.loss(batch) must return (scalar tensor, metrics dict), got {type(out).__name__}"
        )
    if need_grad and not loss.requires_grad:
        raise ValueError(f"{type(model).__name__}.loss(batch) does not depend on any trainable parameter")
    return loss.reshape(()), dict(metrics or {})


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def constants_params(model: nn.Module) -> list[torch.Tensor]:
    """The trainable parameters of the :class:`~physwm.systems.System` modules of ``model`` (its physical
    constants), each once."""
    seen: dict[int, torch.Tensor] = {}
    for mod in model.modules():
        if isinstance(mod, System):
            for p in mod.parameters():
                if p.requires_grad:
                    seen.setdefault(id(p), p)
    return list(seen.values())


def _make_optimizer(cfg: FitConfig, params: list[torch.Tensor], model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "lbfgs":
        return torch.optim.LBFGS(
            params, lr=cfg.lr, max_iter=20, history_size=20, line_search_fn="strong_wolfe",
            tolerance_grad=0.0, tolerance_change=0.0,
        )  # fmt: skip
    if cfg.constants_lr is None:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    constants = {id(p) for p in constants_params(model)}
    groups = [{"params": [p for p in params if id(p) not in constants]},
              {"params": [p for p in params if id(p) in constants], "lr": cfg.constants_lr}]  # fmt: skip
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay)


def _make_scheduler(opt: torch.optim.Optimizer, cfg: FitConfig, epochs: int):
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    if cfg.lr_schedule == "plateau":
        patience = cfg.early_stopping
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=0.5, patience=max(1, patience // 2) if patience else 5
        )
    return None


class _Run:
    """One call of :func:`fit`: the data, the optimiser state and the bookkeeping of the best epoch."""

    def __init__(self, model: nn.Module, cfg: FitConfig, train: EpisodeData, val: EpisodeData | None,
                 val_source: Any, ckpt: Path | None, train_source: Any = None):  # fmt: skip
        self.model, self.cfg, self.ckpt, self.val_source = model, cfg, ckpt, val_source
        self.train_source = train_source
        # noisy data: the constants are fitted by multiple shooting, never by the minibatch loss
        self.noise = resolve_obs_noise(cfg.obs_noise, train_source, model.state_dim) if constants_params(model) \
            else None
        self.dtype, self.device = module_dtype_device(model)
        self.train = train
        self.ws, self.wc = train.windows(cfg.horizon, self.dtype, self.device)
        self.vs = self.vc = None
        if val is not None:
            self.vs, self.vc = val.windows(cfg.val_horizon, self.dtype, self.device)
            if cfg.val_max_windows is not None and self.vs.shape[0] > cfg.val_max_windows:
                keep = torch.linspace(0, self.vs.shape[0] - 1, cfg.val_max_windows).round().long().to(self.device)
                self.vs, self.vc = self.vs[keep], self.vc[keep]
        self.batch_size, self.epochs = cfg.schedule(self.ws.shape[0])
        if cfg.optimizer == "lbfgs":
            self.batch_size = max(1, self.ws.shape[0])  # one full batch per epoch
        self.fingerprint = [int(self.ws.shape[0]), float(self.ws.double().sum()), float(self.wc.double().sum())]
        self.config = {**cfg.to_dict(), "batch_size": self.batch_size, "epochs": self.epochs,
                       "validation": val is not None}  # fmt: skip
        held = {id(p) for p in constants_params(model)} if self.noise is not None else set()
        self.params = [p for p in model.parameters() if p.requires_grad and id(p) not in held]
        self.shooting_only = not self.params  # noisy data, constants only: multiple shooting is the whole fit
        self.params = self.params or [p for p in model.parameters() if p.requires_grad]
        self.opt = _make_optimizer(cfg, self.params, model)
        self.sched = _make_scheduler(self.opt, cfg, self.epochs)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.history = History(monitor="val_error" if val is not None else "train_loss")
        self.start_epoch, self.elapsed0, self.t0 = 0, 0.0, time.perf_counter()
        self.best_value, self.best_epoch, self.bad_epochs = math.inf, None, 0
        self.best_state: dict = {}
        self.initial_params: dict = {}
        self.finished = False
        self.explained = False  # the constants fitted first explain the training data: no epoch needed

    # -- starting ------------------------------------------------------------------------------------
    def start_fresh(self) -> None:
        if self.cfg.normalize:
            if not hasattr(self.model, "fit_normalization"):
                raise TypeError(f"{type(self.model).__name__} has no fit_normalization; pass normalize=False")
            self.model.fit_normalization(*self.train.normalization_data(self.dtype, self.device))
        self.initial_params = {k: v.detach().clone() for k, v in self.model.named_parameters()}
        if self.cfg.prefit_steps and constants_params(self.model):
            # the physics first: the constants alone (a hybrid's residual starts at zero), then everything
            pre = self.history.prefit = self.fit_constants(self.cfg.prefit_steps)
            self.best_value, self.best_epoch = pre["after"] if pre["kept"] else pre["before"], 0
            self.history.best_epoch, self.history.best_value = 0, self.best_value
            if self.cfg.explained_loss is not None and self.noise is None:
                pre["train_loss"] = self.full_loss() if self.vs is not None else self.best_value
                self.explained = pre["train_loss"] <= self.cfg.explained_loss
                if self.explained:
                    self.history.stop_reason = "explained"
        if self.noise is not None:
            gn = self.history.prefit
            pre = self.history.prefit = self.fit_noisy_constants()
            if gn:
                pre["gauss_newton"] = gn
            self.best_value, self.best_epoch = pre["after"], 0
            self.history.best_epoch, self.history.best_value = 0, self.best_value
            if self.shooting_only:
                self.explained, self.history.stop_reason = True, "shooting"
        self.best_state = _state_copy(self.model)  # fallback if the very first epoch diverges

    def fit_noisy_constants(self) -> dict[str, Any]:
        """Multiple shooting on the constants (:func:`identify_noisy_constants`; the networks held), kept when
        finite: on noisy data the monitored value cannot tell a biased fit from an unbiased one."""
        before, value_before = _state_copy(self.model), self.monitored()
        t0 = time.perf_counter()
        out = identify_noisy_constants(self.model, self.train_source, self.noise, self.cfg.shooting_horizon)
        self.noise = np.asarray(out["obs_noise"])  # estimated once: the polish reuses it
        value_after = self.monitored()
        kept = math.isfinite(value_after) and math.isfinite(out["objective_after"])
        if not kept:
            self.model.load_state_dict(before)
        return {"method": "multiple shooting", "monitor": self.history.monitor, "before": value_before,
                "after": value_after if kept else value_before, "kept": kept, "seconds": time.perf_counter() - t0,
                **out}  # fmt: skip

    def resume(self) -> None:
        """Load the saved run (refusing, with the model untouched, a run of other settings or data)."""
        before = _state_copy(self.model)
        _, saved = load_checkpoint(self.ckpt, self.model)
        tr = saved.get("training")
        try:
            self._check_resumable(tr)
        except ValueError:
            self.model.load_state_dict(before)  # a refused resume leaves the model as it was
            raise
        self.history = History.from_dict(saved["history"])
        self.start_epoch, self.elapsed0 = int(saved["epoch"]), float(tr["elapsed"])
        self.best_value, self.best_epoch, self.bad_epochs = tr["best_value"], tr["best_epoch"], tr["bad_epochs"]
        self.best_state = tr["best_model_state"]
        self.initial_params = tr.get("initial_params") or {}
        self.finished = tr["finished"] and (
            self.history.stop_reason in ("early_stopping", "diverged", "explained", "shooting")
            or self.start_epoch >= self.epochs
        )
        if self.finished:
            return  # the checkpoint's model_state (already loaded) is the final one
        self.model.load_state_dict(tr["last_model_state"])
        self.opt.load_state_dict(tr["optimizer"])
        if self.sched is not None and tr["scheduler"] is not None:
            self.sched.load_state_dict(tr["scheduler"])
        self.gen.set_state(tr["generator"])
        torch.set_rng_state(tr["torch_rng"])
        self.history.stop_reason, self.history.message = "", ""

    def _check_resumable(self, tr: dict | None) -> None:
        ckpt, config = self.ckpt, self.config
        if not tr:
            raise ValueError(f"checkpoint {ckpt} holds no training state to resume (not written by fit)")
        diff = [k for k in _RESUME_KEYS if tr["fit_config"].get(k) != config[k]]
        if diff:
            pairs = ", ".join(f"{k}: saved {tr['fit_config'].get(k)!r} vs now {config[k]!r}" for k in diff)
            raise ValueError(f"cannot resume {ckpt}: fit arguments differ ({pairs})")
        if config["lr_schedule"] == "cosine" and tr["fit_config"].get("epochs") != config["epochs"]:
            raise ValueError(
                f"cannot resume {ckpt} with epochs={config['epochs']}: its cosine schedule anneals over "
                f"epochs={tr['fit_config'].get('epochs')}"
            )
        old = tr["data_fingerprint"]
        if old[0] != self.fingerprint[0] or any(
            not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(old[1:], self.fingerprint[1:])
        ):
            raise ValueError(f"cannot resume {ckpt}: the training data differs from the saved run's")

    # -- one epoch -----------------------------------------------------------------------------------
    def _lbfgs_closure(self, batch: dict) -> Callable[[], torch.Tensor]:
        """The closure L-BFGS re-evaluates: full-batch loss and gradient (non-finite values stop the search)."""
        grad_clip = self.cfg.grad_clip

        def closure() -> torch.Tensor:
            self.opt.zero_grad(set_to_none=True)
            loss, _ = _unpack_loss(self.model.loss(batch), self.model)
            if torch.isfinite(loss):
                loss.backward()
                nn.utils.clip_grad_norm_(self.params, grad_clip if grad_clip is not None else math.inf)
            return loss.detach()

        return closure

    def train_epoch(self, epoch: int) -> tuple[float, dict[str, float], str]:
        """One pass over the windows: ``(mean loss, mean metrics, divergence message or "")``."""
        model, cfg = self.model, self.cfg
        model.train()
        W = self.ws.shape[0]
        perm = torch.randperm(W, generator=self.gen).to(self.device)
        loss_sum, seen, msums = 0.0, 0, {}
        for k, b in enumerate(range(0, W, self.batch_size)):
            idx = perm[b : b + self.batch_size]
            batch = {"states": self.ws[idx], "controls": self.wc[idx]}
            self.opt.zero_grad(set_to_none=True)
            loss, metrics = _unpack_loss(model.loss(batch), model)
            if not torch.isfinite(loss):
                return math.nan, {}, f"the training loss became {float(loss.detach())} at epoch {epoch}, batch {k + 1}"
            loss.backward()
            gnorm = nn.utils.clip_grad_norm_(self.params, cfg.grad_clip if cfg.grad_clip is not None else math.inf)
            if not torch.isfinite(gnorm):
                return math.nan, {}, f"the gradient became non-finite at epoch {epoch}, batch {k + 1}"
            if cfg.optimizer == "lbfgs":
                self.opt.step(self._lbfgs_closure(batch))
            else:
                self.opt.step()
            nb = int(idx.shape[0])
            loss_sum += float(loss.detach()) * nb
            seen += nb
            for name, v in metrics.items():
                msums[name] = msums.get(name, 0.0) + float(v) * nb
        if not all(bool(torch.isfinite(p).all()) for p in self.params):
            return math.nan, {}, f"the weights became non-finite during epoch {epoch}"
        return loss_sum / seen, {k: v / seen for k, v in msums.items()}, ""

    def validate(self) -> float | None:
        if self.vs is None:
            return None
        self.model.eval()
        norm = getattr(self.model, "state_norm", None)
        err = windows_rmse(self.model, self.vs, self.vc, None if norm is None else norm.std)
        self.model.train()
        return err

    def record(self, epoch: int, train_loss: float, metrics: dict, val_err: float | None, lr: float) -> None:
        h = self.history
        h.epoch.append(epoch)
        h.train_loss.append(train_loss)
        h.val_error.append(val_err)
        h.lr.append(lr)
        h.time.append(self.elapsed0 + time.perf_counter() - self.t0)
        for name in set(h.metrics) | set(metrics):
            h.metrics.setdefault(name, [math.nan] * (len(h.epoch) - 1))
            h.metrics[name].append(metrics.get(name, math.nan))

    def update_best(self, epoch: int, monitored: float) -> None:
        if monitored < self.best_value * (1.0 - self.cfg.min_delta) or self.best_epoch is None:
            self.best_value, self.best_epoch, self.bad_epochs = monitored, epoch, 0
            self.best_state = _state_copy(self.model)
        else:
            self.bad_epochs += 1
        self.history.best_epoch, self.history.best_value = self.best_epoch, self.best_value
        if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.sched.step(monitored)
        elif self.sched is not None:
            self.sched.step()

    # -- checkpoints and the end ---------------------------------------------------------------------
    def save(self, finished: bool, final_state: dict | None = None) -> None:
        if self.ckpt is None:
            return
        last = _state_copy(self.model)
        training = {
            "fit_config": self.config,
            "data_fingerprint": self.fingerprint,
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            "generator": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "last_model_state": last,
            "best_model_state": self.best_state,
            "initial_params": self.initial_params,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "elapsed": self.elapsed0 + (time.perf_counter() - self.t0),
            "finished": finished,
        }
        state = final_state if final_state is not None else last
        write_checkpoint(self.ckpt, self.model, state=state, epoch=len(self.history.epoch), history=self.history,
                         training=training, overwrite=True)  # fmt: skip

    @torch.no_grad()
    def select_initial(self) -> None:
        """``keep_initial``: keep the untrained model if its validation rollouts are better (see FitConfig)."""
        cfg, model = self.cfg, self.model
        val = self.val_source
        lengths = getattr(val, "lengths", None)
        longest = int(lengths.max()) if lengths is not None else int(torch.as_tensor(val["controls"]).shape[1])
        h = min(cfg.select_horizon, longest)
        kw = dict(max_windows=cfg.val_max_windows or 128, seed=cfg.seed)
        trained = _state_copy(model)
        err_trained = rollout_rmse(model, val, h, **kw)
        model.load_state_dict({**trained, **self.initial_params})
        err_untrained = rollout_rmse(model, val, h, **kw)
        keep = err_untrained < err_trained
        if not keep:
            model.load_state_dict(trained)
        self.history.selection = {
            "select_horizon": h, "val_rmse_trained": err_trained, "val_rmse_untrained": err_untrained,
            "selected": "untrained" if keep else "trained",
        }  # fmt: skip

    def monitored(self) -> float:
        """The monitored value now: the validation error, or the full-batch training loss."""
        if self.vs is not None:
            return self.validate()
        return self.full_loss()

    @torch.no_grad()
    def full_loss(self) -> float:
        total = 0.0
        for b in range(0, self.ws.shape[0], _CHUNK):
            batch = {"states": self.ws[b : b + _CHUNK], "controls": self.wc[b : b + _CHUNK]}
            loss, _ = _unpack_loss(self.model.loss(batch), self.model, need_grad=False)
            total += float(loss) * batch["states"].shape[0]
        return total / self.ws.shape[0]

    def fit_constants(self, iterations: int) -> dict[str, Any]:
        """Gauss-Newton on the physical constants alone (:func:`gauss_newton_constants`), undone unless it
        lowers the monitored value; what happened, as stored in ``History.prefit``/``History.polish``."""
        model = self.model
        before, value_before = _state_copy(model), self.monitored()
        batch = {"states": self.ws, "controls": self.wc}
        t0 = time.perf_counter()
        model.train()
        out = gauss_newton_constants(model, batch, iterations, seed=self.cfg.seed)
        value_after = self.monitored()
        kept = math.isfinite(value_after) and value_after < value_before
        if not kept:
            model.load_state_dict(before)
        return {"monitor": self.history.monitor, "before": value_before, "after": value_after, "kept": kept,
                "iterations": out["iterations"], "seconds": time.perf_counter() - t0}  # fmt: skip

    def diagnose(self) -> None:
        """Identifiability of the constants on the training windows; warn about those the data cannot pin."""
        windows = {"states": self.ws, "controls": self.wc}
        report = identifiability(self.model, windows, self.cfg.horizon, seed=self.cfg.seed)
        self.history.identifiability = report.to_dict()
        if report.unidentifiable:
            warnings.warn(report.warning(), UnidentifiableWarning, stacklevel=4)

    def finish(self, diverged: str) -> None:
        h, cfg = self.history, self.cfg
        if diverged:
            h.stop_reason, h.diverged = "diverged", True
            what = f"the weights of epoch {self.best_epoch}" if self.best_epoch is not None else "the initial weights"
            h.message = f"training diverged: {diverged}; restored {what}"
        else:
            h.stop_reason = h.stop_reason or "epochs"
            h.message = {
                "epochs": f"finished {len(h.epoch)} epochs",
                "early_stopping": f"stopped early after {cfg.early_stopping} epochs without improvement",
                "max_time": f"stopped after {h.time[-1] if h.time else 0.0:.1f} s (max_time={cfg.max_time})",
                "callback": "stopped by the callback",
                "shooting": "the physical constants were fitted to noisy data by multiple shooting (obs_noise): "
                "nothing else to train",
                "explained": f"the physical constants fitted first explain the training data (training loss "
                f"{h.prefit.get('train_loss', math.nan):.3g} <= explained_loss={cfg.explained_loss}): no epoch needed",
            }[h.stop_reason]
            if cfg.restore_best and self.best_epoch is not None:
                what = "epoch 0 (the constants fitted first)" if self.best_epoch == 0 else f"epoch {self.best_epoch}"
                h.message += f"; restored the best, {what} ({h.monitor}={self.best_value:.4g})"
        last_state = _state_copy(self.model)
        if diverged or (cfg.restore_best and self.best_epoch is not None):
            self.model.load_state_dict(self.best_state)
        if self.noise is not None:
            pass  # no polish on noisy data: a network trained on it carries its bias, a polish gives it the constants
        elif cfg.polish_steps and not diverged and not self.explained and constants_params(self.model):
            h.polish = self.fit_constants(cfg.polish_steps)
            if h.polish["kept"]:
                h.best_value = h.polish["after"]
        if cfg.keep_initial and not diverged and self.initial_params:
            self.select_initial()
        if cfg.diagnose and not diverged and learnable_constants(self.model):
            self.diagnose()
        final_state = _state_copy(self.model)
        if self.ckpt is not None:
            self.model.load_state_dict(last_state)
            self.save(finished=True, final_state=final_state)
            self.model.load_state_dict(final_state)


def fit(
    model: nn.Module,
    train: Any,
    val: Any = None,
    config: FitConfig | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[int, History, nn.Module], bool | None] | None = None,
    **options: Any,
) -> History:
    """Fit a world model to trajectories by minibatch gradient descent on ``model.loss``.

    Args:
        model: any WorldModel (anything with ``state_dim``, ``control_dim``, ``loss(batch)``,
            ``rollout(x0, u)`` and, if ``normalize``, ``fit_normalization``). Trained in place, in its own
            dtype and device: the data is converted to them, the model never is.
        train: training data, a ``Trajectories`` or a dict ``{"states": [N, T+1, n], "controls": [N, T, m]}``
            (optional ``"lengths": [N]`` valid transitions per NaN-padded episode).
        val: validation data of the same kinds, or ``None``.
        config: a :class:`~physwm.train.FitConfig`; ``None`` (default): the model's recipe,
            :meth:`FitConfig.for_model` (:data:`physwm.models.RECIPES`).
        checkpoint: file written (atomically) after every epoch and at the end, with everything needed to
            resume; ``None``: none.
        resume: continue the run saved in ``checkpoint`` if that file exists (else start fresh). The
            training data and the settings ``horizon, batch_size, lr, constants_lr, weight_decay, grad_clip,
            lr_schedule, early_stopping, min_delta, val_horizon, val_max_windows, normalize, seed, optimizer`` and
            whether ``val`` is given must be those of the saved run (a ``ValueError`` names any
            difference); ``epochs`` and ``max_time`` may change, so a finished run can be extended. A run
            that ended by early stopping or divergence is returned as saved.
        overwrite: allow a fresh run to replace an existing ``checkpoint`` file.
        progress: show a tqdm progress bar over epochs.
        callback: ``callback(epoch, history, model)`` after each epoch (and its checkpoint); return True to
            stop.
        **options: any :class:`~physwm.train.FitConfig` field (``horizon``, ``epochs``, ``lr``, ...),
            overriding ``config``'s (or the recipe's).

    Returns:
        The :class:`History` of the run (of all sessions when resumed).

    An exception inside ``fit`` (``KeyboardInterrupt``, an error in the model) propagates as is: the
    model keeps its current weights and the checkpoint holds the last completed epoch, ready to resume.
    Determinism: the same seed, data, initial weights and arguments give bitwise the same weights on CPU.

    Raises:
        ValueError: data of the wrong dimensions, empty data (no window of ``horizon`` steps), NaN/inf in
            the data, invalid arguments, or a checkpoint that does not match this run.
        FileExistsError: ``checkpoint`` exists and neither ``resume`` nor ``overwrite`` is set.
        TrainingDiverged: with ``on_divergence="raise"``.
    """
    for attr in ("state_dim", "control_dim", "loss", "rollout"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a WorldModel (missing {attr!r}), got {type(model).__name__}")
    cfg = FitConfig.for_model(model, **options) if config is None else config.replace(**options)
    if cfg.keep_initial and val is None:
        raise ValueError("keep_initial needs validation data: pass val=")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path of the run to resume>")
    ckpt = Path(checkpoint) if checkpoint is not None else None
    resuming = bool(resume and ckpt is not None and ckpt.exists())
    if ckpt is not None:
        if ckpt.is_dir():
            raise IsADirectoryError(f"checkpoint {ckpt} is a directory; give a file name such as run.pt")
        if ckpt.exists() and not resume and not overwrite:
            raise FileExistsError(f"checkpoint {ckpt} exists; pass resume=True to continue it or overwrite=True")
        parent = ckpt.parent if str(ckpt.parent) else Path(".")
        if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write checkpoint {ckpt}: {parent} is not writable")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    owner, dt = type(model).__name__, getattr(model, "dt", None)
    train_data = EpisodeData(train, "train", model.state_dim, model.control_dim, owner, dt)
    val_data = None if val is None else EpisodeData(val, "val", model.state_dim, model.control_dim, owner, dt)
    run = _Run(model, cfg, train_data, val_data, val, ckpt, train_source=train)

    was_training = model.training
    fork_devices = [run.device] if run.device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(cfg.seed)
        if resuming:
            run.resume()
            if run.finished:
                model.train(was_training)
                return run.history
        else:
            run.start_fresh()
        diverged = ""
        bar = tqdm(total=run.epochs, initial=run.start_epoch, disable=not progress, desc="fit", unit="epoch",
                   dynamic_ncols=True)  # fmt: skip
        try:
            for epoch in range(run.start_epoch + 1, (run.start_epoch if run.explained else run.epochs) + 1):
                lr_now = float(run.opt.param_groups[0]["lr"])
                train_loss, metrics, diverged = run.train_epoch(epoch)
                val_err = None
                if not diverged:
                    val_err = run.validate()
                    if val_err is not None and not math.isfinite(val_err):
                        diverged = f"the validation rollout error became {val_err} at epoch {epoch}"
                run.record(epoch, train_loss, metrics, val_err, lr_now)
                if diverged:
                    break
                run.update_best(epoch, val_err if val_err is not None else train_loss)
                postfix = {"loss": f"{train_loss:.4g}", **({"val": f"{val_err:.4g}"} if val_err is not None else {}),
                           "lr": f"{lr_now:.2g}"}  # fmt: skip
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
                stop = ""
                if cfg.early_stopping is not None and run.bad_epochs >= cfg.early_stopping:
                    stop = "early_stopping"
                elif epoch == run.epochs:
                    stop = "epochs"
                elif cfg.max_time is not None and time.perf_counter() - run.t0 >= cfg.max_time:
                    stop = "max_time"
                if not stop:
                    run.save(finished=False)
                if callback is not None and callback(epoch, run.history, model):
                    stop = stop or "callback"
                if stop:
                    run.history.stop_reason = stop
                    break
        finally:
            bar.close()
        run.finish(diverged)
    model.train(was_training)
    history = run.history
    if diverged:
        if cfg.on_divergence == "raise":
            raise TrainingDiverged(history.message, history)
        warnings.warn(history.message, TrainingDivergedWarning, stacklevel=2)
    return history
