"""Fused rollouts: a field and an integrator's own step compiled into one kernel.

``Integrator.rollout`` runs a handful of small tensor operations per step, each a separate pass over the
batch; at large batches most of the time goes to memory traffic and per-operation overhead, not to the
arithmetic. :func:`compiled_rollout` compiles ``chunk`` consecutive steps with ``torch.compile``
(inductor; C++ with OpenMP on CPU) into one loop over the batch that keeps the state in registers.

There is still one source of the equations: the compiled function calls the integrator's own step
(``integrator.advance(field, x, u, dt)``, the code ``Integrator.rollout`` runs) and thereby the field's
``forward`` (for :class:`~physwm.systems.CartPole`, :func:`~physwm.systems.cartpole.cartpole_dynamics`).
Nothing is re-typed.

One graph pass makes the fusion work (:mod:`physwm.integrators.graph_pass`): it splits element-wise
operations on stacked state vectors into one contiguous vector per state variable, so the C++ code
generator emits vector code. It re-associates no arithmetic and changes no operation, so the fused rollout
agrees with the eager one to float round-off (vectorised ``sin``/``cos`` may differ from the scalar library
ones in the last bit; CartPole is chaotic, so such differences grow along long rollouts like any round-off).

Inside, the state is kept time-major with one row per state variable (``[T+1, n, B]``); the rollout
returns the batch-first view ``[B, T+1, n]`` of that buffer (no copy; call ``.contiguous()`` if a
packed array is needed). A loop of rollouts of one shape can pass the previous result as ``out=`` to
write into it instead of allocating fresh memory each time: at large batches the operating system's
zero-filling of fresh pages for the ``[B, T+1, n]`` output can cost more than the simulation itself
(setting ``THP_MEM_ALLOC_ENABLE=1`` before torch starts, which puts large tensors on transparent huge
pages, also cuts that cost).

Compilation takes seconds to minutes, shown by a message on stderr when it starts and ends (measured on
a loaded 2-core machine: 5-15 s for 8 Euler steps of CartPole, minutes for 8 RK4 steps of the default
hybrid). Inductor keeps compiled code in its on-disk caches, so a second process only re-traces the
function (seconds; ``bench/compile_cache.py`` measures it; see :mod:`physwm.integrators.compiled` for what
is cached where). With ``dynamic=False`` (the default, fastest kernels) each batch size compiles once;
torch.compile recompiles a function for at most ``torch._dynamo.config.recompile_limit`` (8) shapes, then
runs it uncompiled, so use ``dynamic=True`` when many different batch sizes come through one rollout.

Where compilation is unavailable (no C++ compiler: :func:`compile_available` is false) the rollout runs
the same chunk function eagerly, silently: same numbers, only slower. If a compile fails (an operation
inductor cannot compile, a field whose code breaks the graph) it warns once and runs eagerly from then on.

Example::

    from physwm import CartPole, Euler, compiled_rollout

    rollout = compiled_rollout(CartPole(), Euler(), dt=0.02)
    states = rollout(x0, u)          # x0 [B, 4], u [B, T, 1] -> [B, T+1, 4]
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from ..checks import check_dt, positive_int
from ..systems.base import VectorField
from .base import Integrator, bind_field, check_rollout_args
from .compiled import CompiledFunction, KernelOwner, compile_available
from .graph_pass import column_pass
from .registry import get_integrator

__all__ = ["FusedRollout", "compiled_rollout", "FusedStep", "compiled_vector_step", "compile_available",
           "column_options", "checked_integrator", "cached_on_field"]


def column_options(backend: str | Callable) -> dict | None:
    """Inductor options that install the column-splitting graph pass (None for other backends, or where this
    torch has no custom-pass hook)."""
    graph_pass = column_pass() if backend == "inductor" else None
    return {"post_grad_custom_pre_pass": graph_pass} if graph_pass is not None else None


def checked_integrator(field: VectorField, integrator: Integrator | str) -> Integrator:
    """``integrator`` (an :class:`Integrator` or a name for :func:`get_integrator`) checked against ``field``
    (a :class:`~physwm.systems.VectorField`): TypeErrors name the argument, ``check_field`` says what is
    missing."""
    if not isinstance(field, VectorField):
        raise TypeError(f"field must be a VectorField, got {type(field).__name__}")
    integrator = get_integrator(integrator) if isinstance(integrator, str) else integrator
    if not isinstance(integrator, Integrator):
        raise TypeError(f"integrator must be an Integrator, got {type(integrator).__name__}")
    integrator.check_field(field)
    return integrator


def cached_on_field(field: VectorField, key: tuple, integrator: Integrator, make: Callable[[], Any]) -> Any:
    """``make()``, built once per ``field`` and ``key`` (the integrator object's id and the settings) and kept on
    the field (copies and pickles of the field start without it). The entry holds the integrator, so its id
    cannot be reused while the entry lives; a different integrator object under the same id rebuilds."""
    cache = field.__dict__.setdefault("_compiled_rollouts", {})
    with _CACHE_LOCK:
        cached = cache.get(key)
        if cached is None or cached[0] is not integrator:
            cached = cache[key] = (integrator, make())
    return cached[1]


_CACHE_LOCK = threading.Lock()


def _chunk_function(field: VectorField, integrator: Integrator, dt: float, steps: int) -> Callable:
    """``steps`` steps of the integrator's own step code on a state stored as rows ``[n, B]``."""

    def chunk(x: torch.Tensor, u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        # x [n, B] (one row per state variable), u [steps, m, B], out [steps, n, B] (written).
        # The field is bound to the chunk's controls exactly as Integrator.rollout binds it to a rollout's.
        s = x.t()
        bound = bind_field(field, integrator, u.permute(2, 0, 1).to(x.dtype))
        f = field if bound is None else bound
        rows = []
        for k in range(steps):
            if bound is not None:
                bound.t = k
            s = integrator.advance(f, s, u[k].t(), dt)
            rows.extend(s.unbind(-1))
        states = torch.stack(rows).view(steps, x.shape[0], x.shape[1])
        out.copy_(states)
        return states[-1].clone()

    return chunk


def _check_out(out: torch.Tensor, shape: tuple[int, int, int], x0: torch.Tensor) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch tensor, got {type(out).__name__}")
    if tuple(out.shape) != shape:
        raise ValueError(f"out must have shape [B, T+1, n] = {list(shape)}, got {tuple(out.shape)}")
    if out.dtype != x0.dtype or out.device != x0.device:
        raise ValueError(
            f"out must have x0's dtype and device ({x0.dtype}, {x0.device}), got ({out.dtype}, {out.device})"
        )
    if not out.permute(1, 2, 0).is_contiguous():
        raise ValueError(
            "out must be time-major like the tensors this rollout returns (out.permute(1, 2, 0) contiguous); "
            "pass a previous result, or None"
        )


class FusedRollout(KernelOwner):
    """Open-loop rollouts of ``field`` with ``integrator`` at step ``dt``, compiled (see the module doc).

    Build one with :func:`compiled_rollout` (which caches them). Calling it is a drop-in replacement
    for ``integrator.rollout(field, x0, u, dt)``:

    Args (of ``__call__``):
        x0: initial states ``[B, n]``.
        u: controls ``[B, T, m]`` (zero-order hold over each step).
        out: optional, a previous result for the same ``B`` and ``T`` to write into (no allocation).

    Returns:
        ``states [B, T+1, n]`` (first entry ``x0``), dtype and device of ``x0``; a batch-first view of a
        time-major buffer (values identical to a contiguous array).

    Between calls it keeps one internal buffer for the time-major controls (``T * m * B`` elements).

    Args (of the constructor): see :func:`compiled_rollout`.

    Attributes:
        compiled: False when the rollout runs eagerly (no compiler, or compilation failed).
        compile_seconds: wall time spent in calls that compiled (first call per batch size/dtype/device
            when ``dynamic=False``), i.e. compilation plus one chunk of work.
        kernel: the :class:`~physwm.integrators.compiled.CompiledFunction` of one chunk.
    """

    def __init__(
        self,
        field: VectorField,
        integrator: Integrator,
        dt: float,
        chunk: int = 8,
        backend: str | Callable = "inductor",
        dynamic: bool | None = False,
        fallback: bool = True,
        progress: bool = True,
    ):
        integrator = checked_integrator(field, integrator)
        chunk = positive_int(chunk, "chunk")
        self.field, self.integrator, self.dt, self.chunk = field, integrator, check_dt(dt), chunk
        self.backend, self.dynamic, self.fallback = backend, dynamic, fallback
        self.kernel = CompiledFunction(
            _chunk_function(field, integrator, self.dt, chunk),
            f"rollout of {type(field).__name__} with {integrator!r} ({chunk} steps per kernel call)",
            backend=backend, dynamic=dynamic, options=column_options(backend), fallback=fallback, progress=progress,
            describe=lambda args: f"batch size {args[0].shape[1]} ({args[0].dtype})",
        )
        self._lock = threading.Lock()
        self._workspace: torch.Tensor | None = None

    def _run_chunk(self, x: torch.Tensor, u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return self.kernel(x, u, out)

    def _controls_workspace(self, rows: int, batch: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        # The time-major copy of the controls is internal, so one buffer is kept and reused by calls of
        # the same shape (fresh memory has to be zero-filled by the operating system on first touch).
        w = self._workspace
        if w is None or w.shape != (rows, batch) or w.dtype != dtype or w.device != device:
            w = self._workspace = torch.empty(rows, batch, dtype=dtype, device=device)
        return w

    def warmup(self, batch_size: int, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> float:
        """Compile for ``batch_size`` (and ``dtype``/``device``) now; returns the seconds it took."""
        n, m = self.field.state_dim, self.field.control_dim
        before = self.compile_seconds
        t0 = time.perf_counter()
        self(torch.zeros(batch_size, n, dtype=dtype, device=device),
             torch.zeros(batch_size, self.chunk, m, dtype=dtype, device=device))
        return self.compile_seconds - before if self.compiled else time.perf_counter() - t0

    def __call__(self, x0: torch.Tensor, u: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Roll out ``x0 [B, n]`` under ``u [B, T, m]``; returns ``states [B, T+1, n]`` (see the class doc).

        ``out`` (optional): a tensor this rollout returned before for the same ``B`` and ``T`` (any
        ``[B, T+1, n]`` tensor of ``x0``'s dtype and device whose ``permute(1, 2, 0)`` is contiguous) to
        write the states into instead of allocating; it is returned. Reusing it saves allocating (and,
        for large outputs, the operating system zero-filling) fresh memory on every call. ``x0`` and
        ``u`` may be views of it.
        """
        check_rollout_args(self.field, x0, u)
        batch, horizon, m = u.shape
        n, k = x0.shape[1], self.chunk
        if out is not None:
            _check_out(out, (batch, horizon + 1, n), x0)
        whole, rest = divmod(horizon, k)
        # Controls time-major with one row per control variable, [T', m, B], padded with zeros to whole
        # chunks (the states computed from the padding are discarded). u[B, T*m] -> [T*m, B] is a plain
        # matrix transpose, which torch copies block-wise.
        padded = (whole + (rest > 0)) * k
        x = x0.t().clone(memory_format=torch.contiguous_format)  # a copy: x0 may be a view of out
        given = out
        if out is None:
            out = torch.empty(horizon + 1, n, batch, dtype=x0.dtype, device=x0.device)
        else:
            out = out.permute(1, 2, 0)
        with self._lock:
            ut = self._controls_workspace(padded * m, batch, u.dtype, u.device)
            ut[: horizon * m].copy_(u.reshape(batch, horizon * m).t())
            ut[horizon * m :].zero_()
            ut = ut.view(padded, m, batch)
            out[0].copy_(x)  # after reading x0 and u, which may be views of out
            for j in range(0, whole * k, k):
                x = self._run_chunk(x, ut[j : j + k], out[j + 1 : j + 1 + k])
            if rest:
                scratch = torch.empty(k, n, batch, dtype=x0.dtype, device=x0.device)
                self._run_chunk(x, ut[whole * k :], scratch)
                out[whole * k + 1 :].copy_(scratch[:rest])
        return out.permute(2, 0, 1) if given is None else given

    def __repr__(self) -> str:
        mode = "compiled" if self.compiled else "eager fallback"
        return (
            f"FusedRollout({type(self.field).__name__}, {self.integrator!r}, dt={self.dt}, "
            f"chunk={self.chunk}, {mode})"
        )


def compiled_rollout(
    field: VectorField,
    integrator: Integrator | str,
    dt: float,
    *,
    chunk: int = 8,
    backend: str | Callable = "inductor",
    dynamic: bool | None = False,
    fallback: bool = True,
    progress: bool = True,
) -> FusedRollout:
    """A compiled drop-in for ``integrator.rollout(field, x0, u, dt)``, cached on the field.

    Args:
        field: the vector field (its ``forward`` is what gets compiled).
        integrator: an :class:`~physwm.integrators.Integrator` or a name for ``get_integrator``.
            Fixed-step integrators fuse fully; ``Adaptive`` (torchdiffeq) generally does not compile
            and falls back to eager.
        dt: control period, s.
        chunk: steps compiled into one kernel call. Larger chunks cut per-call overhead (small
            batches) but lengthen compilation; a rollout's horizon is padded to whole chunks.
        backend: ``torch.compile`` backend (``"inductor"``; ``"eager"`` for debugging).
        dynamic: passed to ``torch.compile``. ``False`` (default) compiles once per batch size, which
            gives the fastest kernels; ``True``/``None`` share one kernel across batch sizes.
        fallback: if compilation fails, warn and run eagerly (``True``, default) or raise ``RuntimeError``
            (``False``). Where it is unavailable (no C++ compiler) the rollout runs eagerly, silently.
        progress: print a line to stderr when a compile starts and ends (the first call per batch size).

    Returns:
        A :class:`FusedRollout`; the same object for the same field, integrator object and settings. The
        cache lives on the field (copies and pickles of the field start without it) and holds the
        integrator, so an integrator's identity cannot be reused while its entry lives.
    """
    integrator = checked_integrator(field, integrator)
    key = (id(integrator), check_dt(dt), chunk, backend, dynamic, fallback)  # progress is not a property of the code
    rollout = cached_on_field(field, key, integrator, lambda: FusedRollout(field, integrator, dt, chunk, backend,
                                                                           dynamic, fallback, progress))
    rollout.kernel.progress = progress
    return rollout


# --------------------------------------------------------------------------------------------------
# One control period at a time (vector environments)
# --------------------------------------------------------------------------------------------------


def _substep_function(field: VectorField, integrator: Integrator, h: float) -> Callable:
    """``x_next [n, B]`` from ``x [n, B]`` and ``u [m, B]``: one call of ``integrator.advance`` over ``h``."""

    def substep(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        s = integrator.advance(field, x.t(), u.t(), h)
        return torch.stack(s.unbind(-1))

    return substep


class FusedStep(KernelOwner):
    """One control period of ``field`` with ``integrator``, compiled, on states stored as rows ``[n, B]``.

    What a vector environment steps: ``step(x [n, B], u [m, B]) -> x_next [n, B]`` computes
    ``integrator.advance(field, x.T, u.T, dt).T`` (the states of ``B`` systems, one row per state variable,
    so the compiled loop over the batch reads and writes contiguous rows). A fixed-step integrator with
    ``substeps`` sub-steps is compiled for one sub-step (a copy of it with ``substeps=1`` over ``dt /
    substeps``, the very step size its own ``advance`` uses) and called ``substeps`` times: the same
    arithmetic, a kernel ``substeps`` times smaller to compile. Integrators with their own ``advance``
    (:class:`~physwm.integrators.Adaptive`) are compiled whole (torchdiffeq generally falls back to eager).

    The compiling is a :class:`~physwm.integrators.CompiledFunction`'s: each compile shown on stderr, the
    same numbers eagerly where no compiler is found, a warning and the eager step if a compile fails.

    Args:
        field, integrator: what is stepped; dt: control period, s.
        backend, dynamic, fallback, progress: as for :class:`~physwm.integrators.CompiledFunction`.

    Attributes:
        kernel: the :class:`~physwm.integrators.CompiledFunction` of one (sub-)step.
        compiled: False where the step runs eagerly (no compiler, or a compile failed).
        compile_seconds: wall time of the calls that compiled (first call per batch size/dtype/device).
    """

    def __init__(
        self,
        field: VectorField,
        integrator: Integrator,
        dt: float,
        backend: str | Callable = "inductor",
        dynamic: bool | None = False,
        fallback: bool = True,
        progress: bool = True,
    ):
        integrator = checked_integrator(field, integrator)
        self.field, self.integrator, self.dt = field, integrator, check_dt(dt)
        self.calls = 1
        inner, h = integrator, self.dt
        if type(integrator).advance is Integrator.advance and integrator.substeps > 1:
            inner = copy.copy(integrator)
            inner.substeps, self.calls, h = 1, integrator.substeps, self.dt / integrator.substeps
        self.kernel = CompiledFunction(
            _substep_function(field, inner, h), f"vector step of {type(field).__name__} with {inner!r}",
            backend=backend, dynamic=dynamic, options=column_options(backend), fallback=fallback, progress=progress,
            describe=lambda args: f"{args[0].shape[1]} environments ({args[0].dtype})",
        )  # fmt: skip

    def __call__(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``x [n, B]``, ``u [m, B]`` (same dtype and device) -> ``x_next [n, B]`` (a new tensor)."""
        n, m = self.field.state_dim, self.field.control_dim
        if x.ndim != 2 or x.shape[0] != n or u.ndim != 2 or u.shape != (m, x.shape[1]):
            raise ValueError(f"x must be [{n}, B] and u [{m}, B], got {tuple(x.shape)} and {tuple(u.shape)}")
        with torch.no_grad():
            for _ in range(self.calls):
                x = self.kernel(x, u)
        return x

    def __repr__(self) -> str:
        mode = "compiled" if self.compiled else "eager"
        return f"FusedStep({type(self.field).__name__}, {self.integrator!r}, dt={self.dt}, {mode})"


def compiled_vector_step(
    field: VectorField,
    integrator: Integrator | str,
    dt: float,
    *,
    backend: str | Callable = "inductor",
    dynamic: bool | None = False,
    fallback: bool = True,
) -> FusedStep:
    """A compiled control period of ``field`` with ``integrator`` on row-stored states ``[n, B]`` (a
    :class:`FusedStep`, what vector environments step), cached on the field.

    Arguments as for :func:`compiled_rollout`; the same object is returned for the same field, integrator
    object and settings. (:func:`~physwm.integrators.compiled_step` is the same step on ``[N, n]`` states,
    for closed loops through a planner.)
    """
    integrator = checked_integrator(field, integrator)
    key = ("vector step", id(integrator), check_dt(dt), backend, dynamic, fallback)
    return cached_on_field(field, key, integrator, lambda: FusedStep(field, integrator, dt, backend, dynamic,
                                                                     fallback))
