"""Argument checks shared by every module: one definition each, one wording of each error.

Every check returns the normalised value or raises a ``ValueError``/``TypeError`` whose message names the
argument (``name``) and what was wrong, so the caller's error reads like its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "positive_int",
    "nonnegative_int",
    "finite_float",
    "check_dt",
    "check_choice",
    "check_fields",
    "module_dtype_device",
    "noise_levels",
]


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (Python or numpy integers; ``bool`` is refused).

    Raises:
        ValueError: naming ``name`` and the value.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def nonnegative_int(value: Any, name: str) -> int:
    """``value`` as an int ``>= 0`` (see :func:`positive_int`)."""
    return positive_int(value, name, minimum=0)


def finite_float(
    value: Any, name: str, *, positive: bool = False, nonnegative: bool = False, allow_none: bool = False
) -> float | None:
    """``value`` as a finite float, optionally ``> 0`` (``positive``) or ``>= 0`` (``nonnegative``).

    ``None`` is returned as is when ``allow_none``; ``bool`` and non-numbers are refused.

    Raises:
        ValueError: naming ``name`` and the value.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = float(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonnegative and v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def check_dt(dt: Any, name: str = "dt") -> float:
    """A time step in seconds: a positive, finite number (a 1-element tensor is accepted).

    Raises:
        TypeError: not a number.
        ValueError: not positive and finite.
    """
    if isinstance(dt, torch.Tensor) and dt.numel() == 1:
        dt = float(dt)
    if isinstance(dt, (bool, np.bool_)) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number of seconds, got {type(dt).__name__}")
    if not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {dt}")
    return float(dt)


def check_choice(value: Any, name: str, valid: Iterable[Any]) -> Any:
    """``value`` if it is one of ``valid``, else a ValueError listing the valid ones."""
    valid = list(valid)
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {valid}")
    return value


def check_fields(d: Any, cls: type, where: str) -> dict:
    """``d`` as a dict, checked to hold only fields of the dataclass ``cls`` (a config read from JSON).

    Raises:
        ValueError: ``d`` is not a mapping, or has keys that are not fields (naming them and the valid ones).
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be a JSON object (dict), got {type(d).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"unknown {where} fields {unknown}; valid: {names}")
    return dict(d)


def module_dtype_device(module: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of a module's first floating-point parameter or buffer (default dtype, CPU if none)."""
    for t in itertools.chain(module.parameters(), module.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.get_default_dtype(), torch.device("cpu")


def noise_levels(value: Any, name: str, n: int) -> np.ndarray:
    """Noise levels as a float64 ``[n]`` vector: a scalar (the same for every dimension) or ``n`` numbers, each
    finite and ``>= 0``.

    Raises:
        ValueError: naming ``name``: not numbers, the wrong length, NaN/inf or a negative entry.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number or {n} numbers, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number or {n} numbers (one per dimension), got {value!r}") from err
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a number or {n} numbers (one per dimension), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    if (arr < 0).any():
        raise ValueError(f"{name} must be >= 0, got {arr.tolist()}")
    return arr
