"""Checkpoints: ``torch.save`` files of plain data that rebuild and reload a model exactly.

A checkpoint (:func:`save_checkpoint`, :func:`load_checkpoint`) holds only plain data (loaded with
``weights_only=True``): a format tag and version, the physwm version, the model class, its ``build_spec`` /
``config()``, the weights (normalisation statistics are buffers, so they are part of them), and, for
checkpoints written by :func:`~physwm.train.fit`, everything needed to resume: optimizer, scheduler, RNG
states, epoch, history and best weights.
"""

from __future__ import annotations

import importlib
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checks import module_dtype_device
from ..files import atomic_write
from ..models import build
from ..version import __version__
from .history import History

__all__ = ["save_checkpoint", "load_checkpoint", "write_checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "physwm-checkpoint"
CHECKPOINT_VERSION = 1


def _class_name(model: nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(v: Any, where: str) -> Any:
    """Plain-data form of a build spec / config (loadable with ``weights_only=True``)."""
    if v is None:
        return v
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, numbers.Integral):  # plain types only (no numpy scalars or str subclasses)
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, torch.dtype):
        return {"__dtype__": str(v).removeprefix("torch.")}
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().clone()
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x, where) for x in v]}
    if isinstance(v, list):
        return [_encode(x, where) for x in v]
    if isinstance(v, Mapping):
        if not all(isinstance(k, str) for k in v):
            raise TypeError(f"{where}: dict keys must be strings")
        return {k: _encode(x, where) for k, x in v.items()}
    if hasattr(v, "to_dict") and hasattr(type(v), "from_dict"):
        return {"__object__": f"{type(v).__module__}:{type(v).__qualname__}", "value": _encode(v.to_dict(), where)}
    raise TypeError(f"{where}: cannot store a {type(v).__name__} in a checkpoint")


def _decode(v: Any) -> Any:
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if isinstance(v, dict):
        if set(v) == {"__tuple__"}:
            return tuple(_decode(x) for x in v["__tuple__"])
        if set(v) == {"__dtype__"}:
            return getattr(torch, v["__dtype__"])
        if set(v) == {"__object__", "value"}:
            module, _, qualname = v["__object__"].partition(":")
            if module != "physwm" and not module.startswith("physwm."):
                raise ValueError(f"checkpoint refers to {v['__object__']}, outside physwm; refusing to import it")
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            return obj.from_dict(_decode(v["value"]))
        return {k: _decode(x) for k, x in v.items()}
    return v


def write_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    state: dict[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    epoch: int | None = None,
    history: History | Mapping | None = None,
    training: dict | None = None,
    extra: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """:func:`save_checkpoint` with the weights given as ``state`` (default ``model.state_dict()``) and, for
    ``fit``, its resume state ``training``."""
    state = state if state is not None else model.state_dict()
    dtype, _ = module_dtype_device(model)
    notes = {}
    spec = getattr(model, "build_spec", None)
    try:
        spec = _encode(spec, "build_spec")
    except TypeError as err:
        spec, notes["build_spec"] = None, str(err)
    cfg = None
    if hasattr(model, "config"):
        try:
            cfg = _encode(model.config(), "config()")
        except TypeError as err:
            notes["config"] = str(err)
    if isinstance(history, History):
        history = history.to_dict()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "physwm_version": str(__version__),
        "torch_version": str(torch.__version__),
        "model_class": _class_name(model),
        "description": model.describe() if hasattr(model, "describe") else None,
        "build_spec": spec,
        "config": cfg,
        "not_stored": notes,
        "dtype": str(dtype).removeprefix("torch."),
        "model_state": {k: v.detach().cpu().clone() for k, v in state.items()},
        "epoch": epoch,
        "history": dict(history) if history is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "training": training,
        "extra": extra,
    }
    path = Path(path)
    atomic_write(path, lambda f: torch.save(payload, f), overwrite=overwrite)
    return path


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int | None = None,
    history: History | Mapping | None = None,
    overwrite: bool = False,
    *,
    scheduler: Any = None,
    extra: dict | None = None,
) -> Path:
    """Save a model (and optionally its optimizer) atomically to ``path``.

    The file holds a format tag and version, the physwm and torch versions, the model's class,
    ``model.build_spec`` (if set) and ``model.config()``, its dtype and ``state_dict`` (weights and
    normalisation buffers), and the given optimizer/scheduler state, epoch, history and ``extra`` (plain
    data). Written to a temporary file in the same directory, then renamed over ``path``.

    Args:
        path: file to write (parent directories are created).
        model: the model.
        optimizer: optional optimizer whose ``state_dict`` is stored.
        epoch: optional number of completed epochs.
        history: optional :class:`History` (or its dict).
        overwrite: replace an existing file (default: ``FileExistsError``).
        scheduler: optional LR scheduler whose ``state_dict`` is stored.
        extra: optional dict of plain data (numbers, strings, lists, dicts, tensors).

    Returns:
        The path written.
    """
    return write_checkpoint(path, model, optimizer=optimizer, scheduler=scheduler, epoch=epoch, history=history,
                 extra=extra, overwrite=overwrite)  # fmt: skip


def _check_state_dict(model: nn.Module, saved: Mapping[str, torch.Tensor], source: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    shapes = [f"{k}: saved {tuple(saved[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in saved and tuple(saved[k].shape) != tuple(own[k].shape)]  # fmt: skip
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {missing[:6]}")
        if unexpected:
            parts.append(f"not in the model: {unexpected[:6]}")
        if shapes:
            parts.append(f"shape mismatches: {shapes[:6]}")
        raise ValueError(f"{source}: weights do not fit {type(model).__name__} ({'; '.join(parts)})")


def load_checkpoint(
    path: str | os.PathLike, model: nn.Module | None = None, *, map_location: Any = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` or :func:`fit`.

    Args:
        path: checkpoint file.
        model: a model to load the weights into (its class and ``config()`` must match the saved ones;
            the weights are cast to its dtype and device, which are never changed). ``None``: rebuild it
            with ``physwm.models.build(**build_spec)`` from the saved ``build_spec``,
            in the saved dtype, on the CPU.
        map_location: passed to ``torch.load``.

    Returns:
        ``(model, state)``: the model with the saved weights, and a dict with ``epoch``, ``history``,
        ``optimizer``, ``scheduler``, ``training`` (fit's resume state or ``None``), ``extra``,
        ``physwm_version``, ``model_class``, ``build_spec`` and ``config``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a corrupt or foreign file, another format version, another model class or
            configuration, weights that do not fit, or no way to rebuild the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if "cuda" in str(map_location) and not torch.cuda.is_available():
        raise ValueError(f"map_location={map_location!r}, but CUDA is not available here; use map_location='cpu'")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated/corrupt/foreign files
        raise ValueError(
            f"{path} is not a readable physwm checkpoint (corrupt or truncated?): {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a physwm checkpoint (no {CHECKPOINT_FORMAT!r} format tag)")
    version = payload.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {version!r}, written by physwm "
            f"{payload.get('physwm_version')}; this physwm reads version {CHECKPOINT_VERSION}"
        )
    missing = [k for k in ("model_class", "model_state", "config", "build_spec") if k not in payload]
    if missing or not isinstance(payload["model_state"], Mapping):
        raise ValueError(f"{path} is an incomplete physwm checkpoint (missing {missing or ['model_state']})")
    saved_class = payload["model_class"]
    if model is None:
        model = _rebuild(path, payload)
    elif _class_name(model) != saved_class:
        raise ValueError(f"{path} holds a {saved_class}, but the model given is a {_class_name(model)}")
    if payload["config"] is not None and hasattr(model, "config"):
        try:
            own = _encode(model.config(), "config()")
        except TypeError:
            own = payload["config"]  # not comparable; the weights check below still applies
        diffs = _differences(_decode(payload["config"]), _decode(own))
        if diffs:
            raise ValueError(f"{path}: the model's config differs from the checkpoint's ({diffs})")
    if payload["build_spec"] is not None and getattr(model, "build_spec", None) is not None:
        try:
            own_spec = _decode(_encode(model.build_spec, "build_spec"))
        except TypeError:
            own_spec = None
        saved_spec = _decode(payload["build_spec"])
        if isinstance(own_spec, dict) and isinstance(saved_spec, dict):
            # the initialisation seed does not change the architecture (the weights are loaded anyway)
            flat = [{"name": d.get("name"), **{k: v for k, v in dict(d.get("options") or {}).items() if k != "seed"}}
                    for d in (saved_spec, own_spec)]  # fmt: skip
            diffs = _differences(*flat)
            if diffs:
                raise ValueError(f"{path}: the model's build_spec differs from the checkpoint's ({diffs})")
    _check_state_dict(model, payload["model_state"], str(path))
    saved_desc, own_desc = payload.get("description"), model.describe() if hasattr(model, "describe") else None
    if saved_desc is not None and own_desc is not None and saved_desc != own_desc:
        raise ValueError(
            f"{path} holds a different model than the one given: saved\n{saved_desc.get('structure')}\n"
            f"model given\n{own_desc.get('structure')}\n(build the model with the checkpoint's dt, integrator, "
            "constants and sizes, or pass model=None to rebuild it from the checkpoint)"
        )
    model.load_state_dict(payload["model_state"])
    state = {k: payload.get(k) for k in ("epoch", "history", "optimizer", "scheduler", "training", "extra",
                                          "physwm_version", "torch_version", "model_class", "config")}  # fmt: skip
    state["build_spec"] = _decode(payload["build_spec"]) if payload["build_spec"] is not None else None
    state["config"] = _decode(payload["config"]) if payload["config"] is not None else None
    return model, state


def _differences(saved: Any, own: Any) -> str:
    """``"key: saved a vs model b, ..."`` for the entries that differ ("" if equal)."""
    if saved == own:
        return ""
    if not (isinstance(saved, dict) and isinstance(own, dict)):
        saved, own = {"value": saved}, {"value": own}
    keys = sorted(k for k in set(saved) | set(own) if saved.get(k, "<absent>") != own.get(k, "<absent>"))
    return ", ".join(f"{k}: saved {saved.get(k, '<absent>')!r} vs model {own.get(k, '<absent>')!r}" for k in keys)


def _rebuild(path: Path, payload: dict) -> nn.Module:
    spec = payload.get("build_spec")
    cls = payload["model_class"]
    if not spec:
        why = payload.get("not_stored", {}).get("build_spec", "the model has no build_spec")
        raise ValueError(
            f"{path}: cannot rebuild the {cls} without a stored build_spec ({why}); pass model=<a {cls} "
            "built with the same options>"
        )
    spec = _decode(spec)
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"{path}: malformed build_spec {spec!r}; expected {{'name': ..., 'options': {{...}}}}")
    model = build(spec["name"], options=dict(spec.get("options") or {}))
    if _class_name(model) != cls:
        raise ValueError(f"{path}: build_spec {spec!r} builds a {_class_name(model)}, but the checkpoint holds a {cls}")
    dtype = getattr(torch, str(payload.get("dtype", "float32")), None)
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        model = model.to(dtype)
    return model
