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
one state, about even from CEM's 500 up). ``quantize(model, calibration=(states, controls))`` quantises
statically instead (activations int8 between layers too, ranges calibrated on the given transitions);
``bench/quantize_static.py`` and ``bench/quantize.py --mode static`` measure where that pays. The engine is
torch's process-wide setting, which this module never changes.
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
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

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


def _feed_forward(net: Any) -> bool:
    return isinstance(net, nn.Sequential) and all(isinstance(layer, nn.Linear) or not list(layer.parameters())
                                                  for layer in net)  # fmt: skip


def _static_int8(model: WorldModel, calibration: Any) -> WorldModel:
    """``model`` (a copy, changed in place) with every delta network statically quantised (see :func:`quantize`)."""
    try:
        states, controls = (torch.as_tensor(a, dtype=torch.float32) for a in calibration)
    except (TypeError, ValueError) as err:
        raise ValueError("calibration must be (states [N, n], controls [N, m])") from err
    n, m = model.state_dim, model.control_dim
    if states.ndim != 2 or controls.ndim != 2 or states.shape != (controls.shape[0], n) or controls.shape[1] != m:
        raise ValueError(f"calibration must be (states [N, {n}], controls [N, {m}]), got "
                         f"{tuple(states.shape)} and {tuple(controls.shape)}")
    if states.shape[0] == 0 or not (torch.isfinite(states).all() and torch.isfinite(controls).all()):
        raise ValueError("calibration states and controls must be finite, at least one pair")
    deltas = [mod for mod in model.modules() if isinstance(mod, DeltaModel)]
    bad = [type(d).__name__ for d in deltas if not _feed_forward(getattr(d, "net", None))]
    if bad:
        raise TypeError(f"static quantisation needs feed-forward networks (nn.Sequential of Linear layers and "
                        f"activations); {bad[0]} has another; use calibration=None (dynamic)")
    mapping = torch.ao.quantization.get_default_qconfig_mapping(torch.backends.quantized.engine)
    width = deltas[0].net[0].in_features
    for d in deltas:
        d.net = prepare_fx(d.net, mapping, (torch.zeros(2, width),))
    with torch.no_grad():
        model.step(states, controls)  # the observers record every layer's range
    for d in deltas:
        d.net = convert_fx(d.net)
    return model


def quantize(model: WorldModel, calibration: tuple[torch.Tensor, torch.Tensor] | None = None) -> WorldModel:
    """An int8 copy of an implicit model for inference (planning): dynamic, or with ``calibration`` static.

    Dynamic (default): ``torch.ao.quantization.quantize_dynamic`` replaces every ``nn.Linear`` and ``nn.GRU``
    by a version with int8 weights whose inputs are quantised on the fly (per call, per tensor).
    Static (``calibration`` given): every feed-forward network of the model (an ``nn.Sequential`` of
    ``nn.Linear`` layers and activations, e.g. :class:`~physwm.models.MLPModel`'s and its ensembles') is
    quantised in FX graph mode under torch's current quantisation engine: weights int8 per channel, the
    activations' int8 ranges observed while the model steps the calibration states, activations kept int8
    between layers where the engine has a kernel (Linear+ReLU fused; SiLU and tanh are computed in float
    between a dequantisation and a quantisation). ``bench/quantize.py --mode static`` measures it: on an AVX2
    CPU without VNNI it plans faster than float32 only for ReLU networks at large batches.

    The copy keeps the model's interface (``step``, ``rollout``, ``predict``) and its ``build_spec``; it runs
    in float32 on the CPU and cannot be trained or checkpointed (save the float model). The model itself is
    not changed.

    Args:
        model: an implicit model (:class:`~physwm.models.MLPModel`, ``GaussianMLPModel``, ``VAEModel``,
            ``GRUModel``, ``TransformerModel``, ``GANModel``, ``PhysicsInformedMLP``, or an ensemble of them;
            static: those whose networks are feed-forward, see above).
        calibration: ``(states [N, n], controls [N, m])`` in physical units, finite (e.g. the training
            transitions), for static quantisation; ``None``: dynamic.

    Raises:
        TypeError: a model with a vector field (ODE models fold their networks into their rollouts) or
            not a WorldModel; static: a model with a network that is not feed-forward.
        ValueError: a model not float32 on the CPU; calibration data of the wrong shape or not finite.
    """
    if not isinstance(model, WorldModel) or not _implicit(model):
        raise TypeError(f"quantize applies to implicit models (discrete-time networks), not {type(model).__name__}")
    dtype, device = module_dtype_device(model)
    if dtype != torch.float32 or device.type != "cpu":
        raise ValueError(f"quantize needs a float32 model on the CPU, got {dtype} on {device}")
    copied = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; it is the int8 path of torch 2.13 itself
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
        warnings.filterwarnings("ignore", message=r".*use quant_min and quant_max.*")
        if calibration is None:
            quantized = torch.ao.quantization.quantize_dynamic(copied, {nn.Linear, nn.GRU}, dtype=torch.qint8)
        else:
            quantized = _static_int8(copied, calibration)
    quantized.build_spec = copy.deepcopy(getattr(model, "build_spec", None))
    return quantized
