"""Deployment: a trained world model as a file that runs without physwm, and int8 implicit models.

:func:`export` writes a model's one-step map (or its rollout over a fixed horizon) with ``torch.export``: an
ATen graph with the weights inside, loaded in any Python process by ``torch.export.load(path).module()``
with torch alone (no physwm import, no pickled Python classes), batch size free. We chose ``torch.export``
over the alternatives on torch 2.13 CPU because it is the one in core torch that is maintained and
loads without the model's code: TorchScript (``torch.jit``) is deprecated in favour of it, and ONNX
export needs the ``onnx``/``onnxscript`` packages to write and a runtime (``onnxruntime``) to run, none of
them a physwm dependency. A JSON description (sizes, ``dt``, dtype, the ``build_spec``, the physwm version)
travels inside the file as ``extra_files["physwm.json"]``.

The exported one-step map is the model's ``step``; a loop of it reproduces the model's ``rollout`` to
round-off (an ODE model's rollout binds its controls first, the same arithmetic in another order: a
float64 hybrid's 100-step rollouts of full swings agree to 1e-9, see ``tests/test_deploy.py``; in float32
chaotic swings amplify the round-off to a few 1e-6 after 100 steps, as between any two implementations).
``horizon=T`` exports the rollout of ``T`` steps as one graph (the loop unrolled) with the very arithmetic of
the model's ``rollout``; exporting takes time that grows with ``T`` (minutes for a 100-step RK4 hybrid).

:func:`quantize` returns a copy of an implicit model (a delta-predicting network or an ensemble of them)
with its ``nn.Linear`` (and ``nn.GRU``) layers dynamically quantised to int8 (``torch.ao.quantization.
quantize_dynamic``: int8 weights, activations quantised on the fly), for inference only. Whether that is
faster depends on the CPU's int8 instructions and the layer sizes: ``bench/quantize.py`` measures planning
speed and the 50-step error change against the float model in the same run (on the AVX2 CPU without VNNI
where it was written, CEM on the default MLP ran 0.9x as fast in int8: slower; the 50-step error changed 2%).
``bench/quantize_engines.py`` times one model step per quantisation engine and batch size: there, with the
default MLP's 128-wide layers, no engine reached 1.2x at any batch from 1 to 16,384 (int8 about 2x slower on
one state, about even from CEM's 500 up). The engine is torch's process-wide setting, which this module
never changes.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checks import module_dtype_device, positive_int
from .files import atomic_write
from .models import Ensemble, WorldModel
from .models.implicit import DeltaModel
from .version import __version__

__all__ = ["export", "load_exported", "quantize", "EXPORT_FORMAT"]

EXPORT_FORMAT = "physwm-export"


class _Step(nn.Module):
    """``forward(x [B, n], u [B, m]) -> x_next [B, n]``: the wrapped model's ``step``."""

    def __init__(self, model: WorldModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.model.step(x, u)


class _PeriodField:
    """A field bound to a rollout's controls (``bind_controls(u) -> fn(x, t)``, see
    :mod:`physwm.integrators.base`) seen by an integrator as a field of the current period ``t``."""

    def __init__(self, field: nn.Module, fn: Any):
        self.fn, self.t = fn, 0
        self.state_dim, self.control_dim = field.state_dim, field.control_dim
        self.position_index = getattr(field, "position_index", None)
        self.velocity_index = getattr(field, "velocity_index", None)

    def __call__(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.fn(x, self.t)


class _Rollout(nn.Module):
    """``forward(x0 [B, n], u [B, T, m]) -> states [B, T+1, n]`` for a fixed ``T``: the arithmetic of the
    model's ``rollout`` (an ODE model's integrator on its field bound to the controls) without its input
    checks (they branch on the data, which an exported graph cannot)."""

    def __init__(self, model: WorldModel, horizon: int):
        super().__init__()
        self.model, self.horizon = model, horizon

    def forward(self, x0: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        model = self.model
        field, integrator = getattr(model, "field", None), getattr(model, "integrator", None)
        bind = getattr(field, "bind_controls", None) if getattr(integrator, "binds_controls", False) else None
        states, x = [x0], x0
        if bind is None:
            for t in range(self.horizon):
                x = model.step(x, u[:, t])
                states.append(x)
            return torch.stack(states, dim=1)
        f = _PeriodField(field, bind(u.to(x0.dtype)))
        for t in range(self.horizon):
            f.t = t
            x = integrator.advance(f, x, u[:, t], model.dt)
            states.append(x)
        return torch.stack(states, dim=1)


def export(
    model: WorldModel, path: str | os.PathLike, *, horizon: int | None = None, overwrite: bool = False
) -> Path:
    """Write ``model`` as a ``torch.export`` program that runs without physwm (see the module docstring).

    Loading, in any process with torch::

        program = torch.export.load(path).module()
        x_next = program(x, u)             # horizon=None: x [B, n], u [B, m] -> [B, n]
        states = program(x0, u)            # horizon=T:    x0 [B, n], u [B, T, m] -> [B, T+1, n]

    Args:
        model: a WorldModel (exported in its dtype and on its device, in eval mode; the model is left as
            it was).
        path: the file to write (conventionally ``.pt2``); written atomically.
        horizon: ``None`` for the one-step map, or ``T`` for the ``T``-step rollout.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        TypeError: not a WorldModel. FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    if not isinstance(model, WorldModel):
        raise TypeError(f"model must be a physwm WorldModel, got {type(model).__name__}")
    if horizon is not None:
        horizon = positive_int(horizon, "horizon")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    dtype, device = module_dtype_device(model)
    n, m = model.state_dim, model.control_dim
    x = model.state_norm.mean.detach().to(dtype=dtype, device=device).expand(2, n).clone()
    u = model.control_norm.mean.detach().to(dtype=dtype, device=device).expand(2, m).clone()
    batch = torch.export.Dim("batch", min=1)
    if horizon is None:
        wrapper: nn.Module = _Step(model)
        args = (x, u)
    else:
        wrapper = _Rollout(model, horizon)
        args = (x, u[:, None].expand(2, horizon, m).contiguous())
    was_training = model.training
    model.eval()
    try:
        program = torch.export.export(wrapper, args, dynamic_shapes=({0: batch}, {0: batch}))
    finally:
        model.train(was_training)
    meta = {
        "format": EXPORT_FORMAT, "version": 1, "physwm_version": __version__, "kind": "step" if horizon is None
        else "rollout", "horizon": horizon, "state_dim": n, "control_dim": m, "dt": float(model.dt),
        "dtype": str(dtype).removeprefix("torch."), "model": type(model).__name__,
        "build_spec": getattr(model, "build_spec", None),
    }  # fmt: skip
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={"physwm.json": json.dumps(meta)})
    data = buf.getvalue()
    return atomic_write(path, lambda f: f.write(data), overwrite=overwrite)


def load_exported(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """``(callable module, description)`` of a file written by :func:`export` (physwm is not needed for this;
    it is a convenience around ``torch.export.load``)."""
    extra = {"physwm.json": ""}
    program = torch.export.load(Path(path), extra_files=extra)
    meta = json.loads(extra["physwm.json"]) if extra["physwm.json"] else {}
    if meta.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path} was not written by physwm.export (no physwm.json description)")
    return program.module(), meta


def _implicit(model: nn.Module) -> bool:
    if isinstance(model, DeltaModel):
        return True
    return isinstance(model, Ensemble) and all(_implicit(mem) for mem in model.members)


def quantize(model: WorldModel) -> WorldModel:
    """An int8 copy of an implicit model for inference (planning): dynamic quantisation of its layers.

    ``torch.ao.quantization.quantize_dynamic`` replaces every ``nn.Linear`` and ``nn.GRU`` by a version with
    int8 weights whose inputs are quantised on the fly (per call, per tensor). The copy keeps the model's
    interface (``step``, ``rollout``, ``predict``) and its ``build_spec``; it runs in float32 on the CPU and
    cannot be trained or checkpointed (save the float model). The model itself is not changed.

    Args:
        model: an implicit model (:class:`~physwm.models.MLPModel`, ``GaussianMLPModel``, ``VAEModel``,
            ``GRUModel``, ``TransformerModel``, ``GANModel``, ``PhysicsInformedMLP``, or an ensemble of them).

    Raises:
        TypeError: a model with a vector field (ODE models fold their networks into their rollouts) or
            not a WorldModel.
    """
    if not isinstance(model, WorldModel) or not _implicit(model):
        raise TypeError(f"quantize applies to implicit models (discrete-time networks), not {type(model).__name__}")
    dtype, device = module_dtype_device(model)
    if dtype != torch.float32 or device.type != "cpu":
        raise ValueError(f"quantize needs a float32 model on the CPU, got {dtype} on {device}")
    copied = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; it is the dynamic int8 path of torch 2.13 itself
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
        quantized = torch.ao.quantization.quantize_dynamic(copied, {nn.Linear, nn.GRU}, dtype=torch.qint8)
    quantized.build_spec = copy.deepcopy(getattr(model, "build_spec", None))
    return quantized
