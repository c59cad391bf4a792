r"""The System protocol: known physics as a vector field plus the description everything above reads.

A *system* is

* its constants, a frozen :class:`Parameters` dataclass (derived quantities are properties);
* its equations, one pure function ``dynamics(x, u, params) -> dx/dt``;
* a description, as class attributes of its :class:`System` subclass: the state and control entries
  (:class:`Quantity`: name, unit, kind, plot label), which constants may be identified from data
  (:class:`Constant`: scale and lower bound), the energy if defined, the residual features a learned
  correction sees, its control tasks (:class:`Task`: cost, start box, success test) and its
  environments' ids and termination rule.

Models, training, evaluation, plots, studies, control and the command line read the description and
never name a system, so a scientist's own system is one file of code against this protocol::

    @dataclass(frozen=True)
    class PendulumParams(Parameters):
        g: float = 9.81     # m/s^2
        length: float = 1.0  # m
        positive_fields = ("g", "length")

    class Pendulum(System):
        name = "my_pendulum"
        Params = PendulumParams
        states = (Quantity("theta", "rad", "angle"), Quantity("theta_dot", "rad/s", "angular_velocity"))
        controls = ()                       # autonomous
        constants = {"g": Constant(10.0, floor=1e-3)}
        position_index, velocity_index = (0,), (1,)

        @staticmethod
        def dynamics(x, u, p):
            return torch.stack((x[..., 1], -p.g / p.length * torch.sin(x[..., 0])), dim=-1)

Learnable constants (``System(params, learnable=("g",))``) are identified by gradient descent: each is
stored as ``raw = value / scale`` and used as ``scale * max(raw, floor)`` with the gradient of projected
gradient descent (see :mod:`physwm.systems.learnable`), so a friction term may sit exactly at zero (the
nominal physics, bit for bit) and still leave it when the data ask for it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .learnable import floored, project_gradient, transforms_active
from .library import default_library

__all__ = [
    "VectorField",
    "check_state_control",
    "Quantity",
    "Constant",
    "Parameters",
    "Task",
    "System",
    "QUANTITY_KINDS",
    "wrap_angle",
]

#: Kinds of state entries: translational coordinates and their rates, angles (periodic) and their rates.
QUANTITY_KINDS = ("position", "velocity", "angle", "angular_velocity", "other")


class VectorField(nn.Module):
    """A continuous-time vector field ``dx/dt = f(x, u)``.

    Subclasses set ``state_dim`` and ``control_dim`` and implement ``forward``. A field that knows
    which state entries are positions and which are their velocities sets ``position_index`` and
    ``velocity_index`` (same length, pairwise ``d position / dt = velocity``); semi-implicit
    integrators need them. Autonomous fields have ``control_dim = 0`` and receive ``u [..., 0]``.

    A field whose states must stay in a set (a speed limit, angles kept in ``[-pi, pi]``) sets
    ``constrain`` to the projection ``x [..., n] -> x [..., n]`` onto it: every integrator applies it after
    each (sub-)step, and :class:`~physwm.integrators.SemiImplicitEuler` also between its velocity and
    position updates (so a clipped velocity is the one that moves the positions, as in gymnasium's
    Pendulum-v1). ``None`` (the default): no constraint.

    Shapes: ``x [..., state_dim]``, ``u [..., control_dim]`` -> ``dx/dt [..., state_dim]``.
    """

    state_dim: int
    control_dim: int
    position_index: tuple[int, ...] | None = None
    velocity_index: tuple[int, ...] | None = None
    constrain: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getstate__(self) -> dict:
        # compiled rollouts cached on the field (physwm.integrators.fused) are not copied or pickled
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state.pop("_compiled_rollouts", None)
        return state


def check_state_control(x: torch.Tensor, u: torch.Tensor, state_dim: int, control_dim: int) -> None:
    """Raise a ValueError naming the problem if ``x``/``u`` do not fit ``[..., state_dim]``/``[..., control_dim]``."""
    if not isinstance(x, torch.Tensor) or not isinstance(u, torch.Tensor):
        raise TypeError(f"state and control must be torch tensors, got {type(x).__name__} and {type(u).__name__}")
    if x.ndim == 0 or x.shape[-1] != state_dim:
        raise ValueError(f"state must have shape [..., {state_dim}], got {tuple(x.shape)}")
    if u.ndim == 0 or u.shape[-1] != control_dim:
        raise ValueError(f"control must have shape [..., {control_dim}], got {tuple(u.shape)}")
    if x.shape[:-1] != u.shape[:-1]:
        raise ValueError(
            f"state and control must share leading (batch) dims, got {tuple(x.shape)} and {tuple(u.shape)}"
        )


def wrap_angle(theta: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Angle wrapped to ``[-pi, pi)`` (rad), for tensors or numpy arrays."""
    if isinstance(theta, torch.Tensor):
        return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi
    return np.remainder(np.asarray(theta) + math.pi, 2 * math.pi) - math.pi


@dataclass(frozen=True)
class Quantity:
    """One entry of a state or control vector.

    Attributes:
        name: short identifier (``"theta_dot"``), used in tables and symbolic equations.
        unit: SI unit (``"rad/s"``).
        kind: one of :data:`QUANTITY_KINDS`; angles get ``sin``/``cos`` features and are wrapped in plots.
        label: axis label with unit (default ``"name (unit)"``).
    """

    name: str
    unit: str
    kind: str = "other"
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in QUANTITY_KINDS:
            raise ValueError(f"unknown quantity kind {self.kind!r}; valid: {list(QUANTITY_KINDS)}")
        if not self.label:
            object.__setattr__(self, "label", f"{self.name} ({self.unit})")


@dataclass(frozen=True)
class Constant:
    """A physical constant that may be identified from data.

    Attributes:
        scale: typical size in its own unit; the learnable parameter is ``raw = value / scale``, so
            Adam's steps (about ``lr`` in raw units) mean ``lr * scale`` in physical units.
        floor: lower bound of ``raw`` (``value >= floor * scale``): 0 for terms that may vanish
            (friction), a small positive number for constants the equations divide by (masses).
    """

    scale: float
    floor: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"Constant scale must be a positive number, got {self.scale!r}")
        if not (math.isfinite(self.floor) and self.floor >= 0):
            raise ValueError(f"Constant floor must be a number >= 0, got {self.floor!r}")


@dataclass(frozen=True)
class Parameters:
    """Base of a system's frozen constants dataclass.

    Subclasses declare their fields (floats, in SI units) and, as class variables, which must be positive
    (``positive_fields``) and which non-negative (``nonnegative_fields``). A field may also hold a 0-dim
    floating tensor (a learnable constant); tensors given by the user are checked like numbers, values
    computed from learnable parameters (which carry a gradient) are not (their bound is enforced by
    construction), nor are tensors while ``torch.compile`` traces (a compiled rollout computes the
    constants of a field with learnable constants in its graph; reading a value there is impossible).
    """

    positive_fields: ClassVar[tuple[str, ...]] = ()
    nonnegative_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        cls = type(self).__name__
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                if v.ndim != 0 or not v.is_floating_point():
                    raise TypeError(f"{cls}.{f.name} must be a number or a 0-dim float tensor, got {v!r}")
                if v.requires_grad or v.grad_fn is not None:
                    continue  # a learnable constant's current value: bounded by its parametrisation
                if torch.compiler.is_compiling() or transforms_active():
                    continue  # inside a compiled rollout or a torch.func transform (vmap): no value to read
                v = float(v)
            elif isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{cls}.{f.name} must be a number, got {type(v).__name__}")
            if not math.isfinite(v):
                raise ValueError(f"{cls}.{f.name} must be finite, got {v}")
            if f.name in self.positive_fields and v <= 0:
                raise ValueError(f"{cls}.{f.name} must be > 0, got {v}")
            if f.name in self.nonnegative_fields and v < 0:
                raise ValueError(f"{cls}.{f.name} must be >= 0, got {v}")

    def replace(self, **changes: Any) -> Parameters:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, float]:
        """Plain-float dict of all fields (tensors are detached to floats), for metadata and JSON."""
        return {f.name: _as_float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Parameters:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; valid: {names}")
        return cls(**{k: float(v) for k, v in d.items()})


def _as_float(v: Any) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


@dataclass(frozen=True)
class Task:
    """A control task on a system: its running cost, how episodes start and end, and what counts as success.

    Attributes:
        name: e.g. ``"balance"``, ``"swingup"``.
        cost: running cost ``(x [..., n], u [..., m]) -> [...]`` charged on every transition of a plan.
        steps: episode length, control steps.
        success: ``states [T+1, n] (numpy, float64) -> bool``, the closed-loop success test.
        start_low, start_high: box the start state is sampled from (seeded by the env's reset);
            ``None``: the environment's own reset distribution.
        terminate: whether the environment should end episodes at the system's failure condition.
        horizon: default planning horizon, steps.
        terminal_cost: optional cost ``x [..., n] -> [...]`` of a plan's last state.
        terminal_success: the environment's termination means the goal was reached (Acrobot-v1: the tip
            above the bar), so a terminated episode succeeds if ``success`` holds; otherwise termination is
            failure (CartPole: the pole fell).
    """

    name: str
    cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    steps: int
    success: Callable[[np.ndarray], bool]
    start_low: tuple[float, ...] | None = None
    start_high: tuple[float, ...] | None = None
    terminate: bool = True
    horizon: int = 30
    terminal_cost: Callable[[torch.Tensor], torch.Tensor] | None = None
    terminal_success: bool = False


class System(VectorField):
    """Known physics: a :class:`VectorField` of ``dynamics(x, u, params)`` with learnable constants.

    Subclasses describe the system with class attributes (see the module docstring):

    * ``name``: registry name; ``Params``: the :class:`Parameters` dataclass;
    * ``states``, ``controls``: tuples of :class:`Quantity` (``controls = ()`` for an autonomous system);
    * ``constants``: name -> :class:`Constant`, the constants that may be learned; ``identify``: those a
      physics-based model identifies by default;
    * ``position_index``, ``velocity_index``: pairs ``d position / dt = velocity``;
    * ``env_id``: its physwm gymnasium environment; ``reference_env_id``: the gymnasium environment it
      reproduces exactly, if any; ``reset_low``/``reset_high``: the environments' default start box;
      ``env_integrator``: the integrator name its environments use by default (``"rk4"``);
      ``reference_integrator``: the integrator (at the control period, one step) that reproduces the
      reference environment (CartPole-v1: ``"euler"``);
    * ``variants``: named sets of constants (e.g. ``"friction"``: the truth with effects the nominal
      equations lack); ``true_variant``: the one planning and the built-in studies take as the true
      system by default; ``lqr_q``: the diagonal state weights of the default LQR controller;
    * ``phase_dims``: the two state entries of its phase portraits; ``goal_band``: half-width of the band
      around the control goal (zero) on their first axis, shaded in closed-loop figures (or ``None``);
    * ``constraint``: optionally a pure function ``(x [..., n], params) -> x`` projecting states onto the
      set they must stay in (a speed limit, wrapped angles), applied by every integrator after each step
      (see :class:`VectorField`; default ``None``: none);
    * and override the static methods :meth:`dynamics`, optionally :meth:`mechanical_energy`,
      :meth:`state_features`, :meth:`failed` and :meth:`tasks`.

    Args:
        params: the constants (default ``Params()``).
        learnable: names of constants (keys of ``constants``) to turn into learnable parameters.

    Shapes: ``forward(x [..., n], u [..., m]) -> dx/dt [..., n]``.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[Parameters]] = Parameters
    states: ClassVar[tuple[Quantity, ...]] = ()
    controls: ClassVar[tuple[Quantity, ...]] = ()
    constants: ClassVar[Mapping[str, Constant]] = {}
    identify: ClassVar[tuple[str, ...]] = ()
    env_id: ClassVar[str | None] = None
    reference_env_id: ClassVar[str | None] = None
    reset_low: ClassVar[tuple[float, ...] | None] = None
    reset_high: ClassVar[tuple[float, ...] | None] = None
    variants: ClassVar[Mapping[str, Parameters]] = {}
    true_variant: ClassVar[str | None] = None
    lqr_q: ClassVar[tuple[float, ...] | None] = None
    phase_dims: ClassVar[tuple[int, int]] = (0, 1)
    goal_band: ClassVar[float | None] = None
    constraint: ClassVar[Callable[[torch.Tensor, Any], torch.Tensor] | None] = None
    env_integrator: ClassVar[str] = "rk4"
    reference_integrator: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.state_dim = len(cls.states)
        cls.control_dim = len(cls.controls)

    def __init__(self, params: Parameters | None = None, learnable: Sequence[str] = ()):
        super().__init__()
        cls = type(self)
        if not cls.states:
            raise TypeError(f"{cls.__name__} declares no states; a System subclass must describe its state")
        self.base_params = params if params is not None else cls.Params()
        if not isinstance(self.base_params, cls.Params):
            raise TypeError(f"params must be a {cls.Params.__name__}, got {type(self.base_params).__name__}")
        if isinstance(learnable, str):
            raise TypeError(f"learnable must be a list of constant names, got the string {learnable!r}")
        unknown = sorted(set(learnable) - set(cls.constants))
        if unknown:
            raise ValueError(f"unknown learnable constants {unknown}; valid: {sorted(cls.constants)}")
        self.learnable = tuple(learnable)
        self.raw = nn.ParameterDict()
        for name in self.learnable:
            value = _as_float(getattr(self.base_params, name)) / cls.constants[name].scale
            self.raw[name] = nn.Parameter(torch.tensor(value, dtype=torch.float32))
        self._register_projection()

    def _register_projection(self) -> None:
        for name, raw in self.raw.items():
            if raw.requires_grad:  # a frozen constant (requires_grad_(False)) gets no gradient to project
                raw.register_post_accumulate_grad_hook(project_gradient(type(self).constants[name].floor))

    def __setstate__(self, state) -> None:
        # copies (deepcopy, pickle) get new leaf tensors: give them the projection hook again
        super().__setstate__(state)
        self._register_projection()

    # -- the equations ---------------------------------------------------------------------------------
    @staticmethod
    def dynamics(x: torch.Tensor, u: torch.Tensor, p: Any) -> torch.Tensor:  # pragma: no cover - abstract
        """``dx/dt [..., n]`` of states ``x [..., n]`` under controls ``u [..., m]`` with constants ``p``."""
        raise NotImplementedError

    @staticmethod
    def mechanical_energy(x: torch.Tensor, p: Any) -> torch.Tensor:
        """Energy ``[...]`` (J) of states ``x [..., n]``; systems without one leave this undefined."""
        raise NotImplementedError

    @classmethod
    def has_energy(cls) -> bool:
        """Whether the system defines :meth:`mechanical_energy`."""
        return cls.mechanical_energy is not System.mechanical_energy

    @staticmethod
    def mass_matrix(x: torch.Tensor, p: Any) -> torch.Tensor:
        """Generalised inertia ``M(x) [..., k, k]`` of the velocity coordinates (``k = len(velocity_index)``):
        a generalised force ``Q [..., k]`` on them (in their force units: N on a position, N m on an angle)
        adds ``M(x)^-1 Q`` to the accelerations (the rows ``velocity_index``). Optional: systems that do not
        define it cannot take forces (a :class:`~physwm.models.SymbolicField` with ``space="force"``)."""
        raise NotImplementedError

    @classmethod
    def has_mass_matrix(cls) -> bool:
        """Whether the system defines :meth:`mass_matrix`."""
        return cls.mass_matrix is not System.mass_matrix

    def force_response(self, x: torch.Tensor, force: torch.Tensor, params: Any = None) -> torch.Tensor:
        """The accelerations ``M(x)^-1 Q [..., k]`` a generalised force ``Q [..., k]`` adds at ``x [..., n]``,
        with ``params`` (default: the current constants; a rollout passes them once; see :meth:`mass_matrix`)."""
        if not type(self).has_mass_matrix():
            raise NotImplementedError(f"{type(self).__name__} defines no mass_matrix")
        m = self.mass_matrix(x, self.params if params is None else params).to(force.dtype)
        return torch.linalg.solve(m, force.unsqueeze(-1)).squeeze(-1)

    @property
    def params(self) -> Parameters:
        """Current constants: the base params with learnable ones replaced by their tensor values."""
        if not self.learnable:
            return self.base_params
        consts = type(self).constants
        values = {n: consts[n].scale * floored(self.raw[n], consts[n].floor) for n in self.learnable}
        return self.base_params.replace(**values)

    def identified(self) -> dict[str, float]:
        """Current values of the learnable constants as floats (fixed constants are not listed)."""
        p = self.params
        return {n: _as_float(getattr(p, n)) for n in self.learnable}

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        check_state_control(x, u, self.state_dim, self.control_dim)
        return self.dynamics(x, u, self.params)

    @property
    def constrain(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The system's ``constraint`` with the current constants, ``x [..., n] -> x [..., n]`` (``None``: none)."""
        fn = type(self).constraint
        if fn is None:
            return None
        p = self.params
        return lambda x: fn(x, p)

    def bind_controls(self, u: torch.Tensor) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """``f(x [B, n], t) = dx/dt`` under ``u[:, t]``, with the constants computed once per rollout (the
        fast path of fixed-step :meth:`Integrator.rollout <physwm.integrators.Integrator.rollout>`)."""
        p, dynamics = self.params, self.dynamics
        return lambda x, t: dynamics(x, u[:, t], p)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Mechanical energy ``[...]`` (J) of states ``x [..., n]`` with the current constants."""
        if not type(self).has_energy():
            raise NotImplementedError(f"{type(self).__name__} defines no energy")
        if x.ndim == 0 or x.shape[-1] != self.state_dim:
            raise ValueError(f"state must have shape [..., {self.state_dim}], got {tuple(x.shape)}")
        return self.mechanical_energy(x, self.params)

    # -- what learned corrections see ------------------------------------------------------------------
    @classmethod
    def state_features(cls, x: torch.Tensor) -> torch.Tensor:
        """Features of the state a learned correction sees, ``[..., k]``: ``sin``/``cos`` of each angle
        first, then every other state entry as is. The controls are appended to these by the caller."""
        angles = [i for i, q in enumerate(cls.states) if q.kind == "angle"]
        others = [i for i, q in enumerate(cls.states) if q.kind != "angle"]
        parts = [f(x[..., i]) for i in angles for f in (torch.sin, torch.cos)] + [x[..., i] for i in others]
        return torch.stack(parts, dim=-1)

    @classmethod
    def library(cls) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
        """Candidate terms ``name -> f(x [..., n], u [..., m]) -> [...]`` that missing physics may be made of,
        for :class:`~physwm.models.SymbolicField` and :func:`physwm.discover`. The default is built from the
        description (:func:`physwm.systems.library.default_library`: each velocity ``v``, ``v*|v|``,
        ``sgn(v)``; each angle's ``sin``/``cos`` times each velocity; each control); a system may declare a
        richer one."""
        return default_library(cls)

    # -- environments and control ----------------------------------------------------------------------
    @classmethod
    def failed(cls, state: np.ndarray, params: Any) -> bool:
        """Whether an environment that terminates should end the episode at ``state [n]`` (default: never)."""
        return False

    @classmethod
    def failed_batch(cls, states: np.ndarray, params: Any) -> np.ndarray:
        """:meth:`failed` of each of ``states [B, n]``, as a bool array ``[B]`` (what vector environments call).

        The default asks :meth:`failed` state by state (never, if a system does not override it); a system
        may override this with a vectorised test giving the same answers.
        """
        states = np.asarray(states, dtype=np.float64)
        if getattr(cls.failed, "__func__", None) is System.failed.__func__:
            return np.zeros(len(states), dtype=bool)
        return np.fromiter((cls.failed(s, params) for s in states), dtype=bool, count=len(states))

    @classmethod
    def reward_batch(
        cls, states: np.ndarray, controls: np.ndarray, next_states: np.ndarray, terminated: np.ndarray
    ) -> np.ndarray:
        """:meth:`reward` of ``B`` transitions (``[B, n]``, ``[B, m]``, ``[B, n]``, bool ``[B]``) -> float64 ``[B]``.

        The default asks :meth:`reward` transition by transition; a system may vectorise it.
        """
        return np.fromiter(
            (cls.reward(s, u, s2, bool(t)) for s, u, s2, t in zip(states, controls, next_states, terminated)),
            dtype=np.float64, count=len(states),
        )  # fmt: skip

    @classmethod
    def reference_params(cls, env: Any) -> Parameters:
        """The constants of an instance ``env`` (unwrapped) of the gymnasium environment the system reproduces
        (default: the Params fields that ``env`` has as attributes of the same name; others keep their
        defaults)."""
        names = [f for f in cls.Params().to_dict() if hasattr(env, f)]
        return cls.Params.from_dict({f: float(getattr(env, f)) for f in names})

    @classmethod
    def variant(cls, name: str | None) -> Parameters:
        """The constants of a named variant (``None``: the default ``Params()``)."""
        if name is None:
            return cls.Params()
        if name not in cls.variants:
            raise ValueError(f"unknown {cls.__name__} variant {name!r}; valid: {sorted(cls.variants)}")
        return cls.variants[name]

    @classmethod
    def reward(cls, state: np.ndarray, control: np.ndarray, next_state: np.ndarray, terminated: bool) -> float:
        """The environments' reward for one transition (default 0)."""
        return 0.0

    @classmethod
    def action_levels(cls, params: Any) -> tuple[float, ...] | None:
        """The controls of the reference gymnasium environment's discrete actions, in action order (``None``
        if it is continuous)."""
        return None

    @classmethod
    def control_period(cls, params: Any) -> float:
        """The control period ``dt`` (s) of the system's environments: its Params' ``tau`` or ``dt`` field."""
        for name in ("tau", "dt"):
            if hasattr(params, name):
                return float(getattr(params, name))
        raise ValueError(f"{cls.__name__}'s parameters have no tau or dt field; pass dt explicitly")

    @classmethod
    def control_bounds(cls, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds ``[m]`` of the control the environments accept (default: unbounded)."""
        return np.full(cls.control_dim, -np.inf), np.full(cls.control_dim, np.inf)

    @classmethod
    def observation_high(cls, terminate: bool) -> np.ndarray:
        """Bound of the environments' observation space (default: unbounded)."""
        return np.full(cls.state_dim, np.inf, dtype=np.float32)

    @classmethod
    def substeps(cls, params: Any) -> int:
        """Sub-steps per control period the environments take with fixed-step integrators (default 1)."""
        return 1

    @classmethod
    def tasks(cls, params: Any = None) -> dict[str, Task]:
        """The system's control tasks, built on demand for constants ``params`` (default ``Params()``)."""
        return {}

    def extra_repr(self) -> str:
        # the fixed constants (a learnable one's value lives in the weights)
        fixed = {k: v for k, v in self.base_params.to_dict().items() if k not in self.learnable}
        return f"fixed={fixed}, learnable={self.learnable}"
