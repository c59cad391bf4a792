r"""Gymnasium environments built on physwm's systems (registered on ``import physwm``).

Each :class:`~physwm.systems.System` with an ``env_id`` gets an environment (:class:`SystemEnv`): any
constants, a continuous control, any physwm integrator, optional early termination. It steps the very
same field and :mod:`physwm.integrators` code that the explicit models and the physics half of every
hybrid use: the equations exist once. ``physwm/CartPole-v0`` is ``CartPoleEnv``; every system's class
is made from its description (:func:`env_class`), so a new system needs no code here.

    >>> import gymnasium as gym, physwm
    >>> env = gym.make("physwm/CartPole-v0", params=physwm.FRICTION_PARAMS, terminate=False)
    >>> obs, info = env.reset(seed=0, options={"state": [0.0, 0.0, 3.0, 0.0]})  # start near hanging
    >>> obs, reward, terminated, truncated, info = env.step([2.5])  # 2.5 N to the right

State and observation: ``env.unwrapped.state`` is the exact float64 state, the observation its float32
copy, as in gymnasium. For CartPole (gymnasium's order and units):

    ====  ===========  ======  ==============================  =================================
    idx   name         unit    observation bound, terminate    observation bound, no terminate
    ====  ===========  ======  ==============================  =================================
    0     x            m       +-4.8                            unbounded
    1     x_dot        m/s     unbounded                        unbounded
    2     theta        rad     +-24 deg (0.419)                 unbounded (never wrapped)
    3     theta_dot    rad/s   unbounded                        unbounded
    ====  ===========  ======  ==============================  =================================

Action: a ``Box`` of the system's control bounds (CartPole: ``+-force_mag`` N), held constant over the
control period. Actions outside the bound are **clipped** to it (like gymnasium's continuous-control
environments, so noisy policies need no care); the control actually applied is returned as
``info["control"]`` (``[m]`` float64; a single control also under its name: CartPole's ``info["force"]``,
float N). A NaN/inf action or one of the wrong shape is a ValueError. The constants are attributes too,
by gymnasium's names (``env.unwrapped.tau``, ``env.unwrapped.force_mag``).

Reward: the system's (CartPole: +1 for every step, including the terminating one, as CartPole-v1).

Termination (``terminate=True``): the system's failure condition (CartPole-v1's thresholds ``|x| > 2.4``
m or ``|theta| > 12`` deg). With ``terminate=False`` the episode never terminates (only the time limit
truncates it), so studies can follow full swings of the pole; angles are then not wrapped.

Integration: ``integrator`` is a name (see :func:`physwm.integrators.get_integrator`) or an
:class:`~physwm.integrators.Integrator` instance. ``substeps`` (fixed-step integrators only) defaults to the
system's choice: for CartPole **1 without friction and 10 with friction** (the smoothed Coulomb term switches
over ``coulomb_smoothing`` = 0.01 m/s, which the cart crosses in a few milliseconds, so RK4 needs sub-steps
of about 2 ms to resolve it; the frictionless equations are smooth and RK4 at 20 ms is already accurate to
~1e-8 per step). Frictionless params + ``integrator="euler"`` + ``substeps=1`` reproduce
``gymnasium.make("CartPole-v1")`` to float64 round-off (tested).

Reset: ``reset(seed=None, options=None)`` samples each state entry uniformly in the system's reset box
(CartPole: [-0.05, 0.05], from the same seeded generator as CartPole-v1, so equal seeds give equal
starts); options may give ``{"state": [...]}`` to start from that exact state, or ``{"low": ..., "high":
...}`` (scalars or ``n``-vectors) to change the sampling box.

Time limit: ``gymnasium.make(..., max_episode_steps=T)``, default 500. Constructing an env class directly
gives an environment without time limit.

Every environment also has a vector version (:mod:`physwm.vector_envs`, registered as its
``vector_entry_point``): ``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``
steps N copies in one batched call.

This module also holds what every caller of an environment needs, once: :func:`make_env` (an environment
for a task), :func:`env_info` (system, constants, sizes, control period and action levels of any supported
environment, physwm's or gymnasium's own) and :func:`to_action` (a control to the action the environment
takes, and the control it applies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from .checks import noise_levels
from .integrators import ADAPTIVE_METHODS, Integrator, get_integrator
from .systems import (
    BUILTIN_SYSTEMS,
    DEFAULT_SYSTEM,
    SYSTEMS,
    Parameters,
    System,
    Task,
    add_registration_hook,
    get_system,
)

__all__ = [
    "SystemEnv",
    "env_class",
    "ENV_CLASSES",
    "ENV_ID",
    "ENV_IDS",
    "FRICTION_PARAMS",
    "EnvInfo",
    "env_info",
    "to_action",
    "make_env",
    "register_envs",
    "state_vector",
    "env_params",
    "env_integrator",
    "vector_env_name",
    "RESET_OPTIONS",
    "register_env",
    "env_ids",
    "radius_start",
]

ENV_ID = DEFAULT_SYSTEM.env_id
FRICTION_PARAMS = DEFAULT_SYSTEM.variants["friction"]

#: The keys ``reset(options=...)`` accepts.
RESET_OPTIONS = ("state", "low", "high", "radius")


def radius_start(rng: np.random.Generator, n: int, radius: Any) -> np.ndarray:
    """A start state ``[n]`` at a random distance ``r ~ U[radius[0], radius[1])`` from zero in a random direction:
    the direction of a uniform point of ``[-1, 1]^n`` (APHYNITY's initial conditions, Yin et al. 2021).

    Raises:
        ValueError: ``radius`` is not two finite numbers ``0 <= low <= high``.
    """
    try:
        lo, hi = (float(v) for v in radius)
    except (TypeError, ValueError) as err:
        raise ValueError(f"radius must be two numbers (low, high), got {radius!r}") from err
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi):
        raise ValueError(f"radius must be finite numbers 0 <= low <= high, got {radius!r}")
    d = rng.random(n) * 2.0 - 1.0
    r = rng.random() * (hi - lo) + lo
    return d / np.sqrt((d**2).sum()) * r


def state_vector(value: Any, what: str, n: int) -> np.ndarray:
    """A finite float64 ``n``-vector from scalars or array-likes, or a ValueError naming ``what``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be numbers, got {value!r}") from err
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite, got {arr.tolist()}")
    return arr.copy()


def env_params(system: type[System], params: Parameters | None) -> Parameters:
    """An environment's constants: ``params`` (the system's default if ``None``) as plain floats (detached).

    Raises:
        TypeError: ``params`` is not the system's ``Params``.
    """
    if params is None:
        params = system.Params()
    if not isinstance(params, system.Params):
        raise TypeError(f"params must be a {system.Params.__name__}, got {type(params).__name__}")
    return system.Params.from_dict(params.to_dict())


def env_integrator(
    system: type[System], params: Parameters, integrator: str | Integrator | None, substeps: int | None
) -> Integrator:
    """An environment's integrator: an instance as given, or a name (``None``: the system's
    ``env_integrator``) with ``substeps`` (``None``: the system's choice for ``params``; adaptive integrators
    take 1). See :class:`SystemEnv`."""
    if integrator is None:
        integrator = system.env_integrator
    if isinstance(integrator, Integrator):
        if substeps is not None:
            raise ValueError(
                "substeps is set on the Integrator instance itself; pass substeps only with an integrator name"
            )
        return integrator
    if not isinstance(integrator, str):
        raise TypeError(f"integrator must be a name or an Integrator, got {type(integrator).__name__}")
    key = integrator.lower().replace("-", "_").replace(" ", "_")
    if substeps is None:
        substeps = 1 if key in ADAPTIVE_METHODS else system.substeps(params)
    return get_integrator(key, substeps=substeps)


class GymConstants:
    """gymnasium's attribute names for an environment's constants (CartPole-v1: ``env.tau``, ``env.force_mag``,
    ``env.gravity``, ...), read from its ``params``; and no rendering (``render_mode`` must be ``None``).
    Shared by :class:`SystemEnv` and the vector environments."""

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and name in params.to_dict():
            return getattr(params, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def render(self):
        """No rendering (``render_mode`` must be ``None``)."""
        return None


class SystemEnv(GymConstants, gymnasium.Env):
    """A gymnasium environment of a :class:`~physwm.systems.System` (see the module docstring).

    Subclasses set ``system``. Args:
        params: physical constants (the system's default by default). Learnable (tensor) values are
            detached to floats.
        integrator: integrator name or :class:`~physwm.integrators.Integrator` instance (default: the
            system's ``env_integrator``: ``"rk4"`` for CartPole, the discretisations of Pendulum-v1 and
            Acrobot-v1 for theirs).
        substeps: sub-steps per control period for a named fixed-step integrator; ``None``: the
            system's choice. Must be left ``None`` when ``integrator`` is an instance (set it on the
            instance) and 1 or ``None`` for adaptive integrators.
        terminate: end episodes at the system's failure condition (True) or never (False).
        render_mode: only ``None`` is supported.
        obs_noise: standard deviations of Gaussian observation noise (physical units, a scalar or one per
            state; drawn from the environment's seeded generator): the observation is the state plus noise,
            ``state`` stays exact. ``None`` (default): the exact state.

    Attributes:
        state: exact float64 state ``[n]``.
        system, params, field, integrator, dt (s), terminate.
    """

    metadata = {"render_modes": [], "render_fps": 50}
    system: ClassVar[type[System]]

    def __init__(
        self,
        params: Parameters | None = None,
        integrator: str | Integrator | None = None,
        substeps: int | None = None,
        terminate: bool = True,
        render_mode: str | None = None,
        obs_noise: float | Any | None = None,
    ):
        super().__init__()
        cls = self.system
        self.obs_noise = None if obs_noise is None else noise_levels(obs_noise, "obs_noise", cls.state_dim)
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported; valid: [None]")
        self.render_mode = None
        self.params = env_params(cls, params)
        self.field = cls(self.params)
        self.integrator = env_integrator(cls, self.params, integrator, substeps)
        self.terminate = bool(terminate)
        self.dt = cls.control_period(self.params)
        low, high = cls.control_bounds(self.params)
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        obs_high = cls.observation_high(self.terminate)
        self.observation_space = spaces.Box(-obs_high, obs_high, dtype=np.float32)
        self._low, self._high = low, high
        self.state: np.ndarray | None = None
        self._steps_beyond_terminated: int | None = None

    # --- gymnasium API -----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; see the module docstring for ``options``. Returns ``(obs float32 [n], {})``."""
        super().reset(seed=seed)
        n = self.system.state_dim
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise ValueError(f"options must be a dict, got {type(options).__name__}")
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; valid: {list(RESET_OPTIONS)}")
        names = "[" + ", ".join(q.name for q in self.system.states) + "]"
        if sum(("state" in options, "low" in options or "high" in options, "radius" in options)) > 1:
            raise ValueError("reset options: give either 'state', 'low'/'high' or 'radius', not several")
        if "radius" in options:
            state = radius_start(self.np_random, n, options["radius"])
        elif "state" in options:
            if np.ndim(options["state"]) == 0:
                raise ValueError(f"reset option 'state' must have shape ({n},) = {names}")
            state = state_vector(options["state"], f"reset option 'state' {names}", n)
        else:
            low = state_vector(options.get("low", self.system.reset_low), "reset option 'low'", n)
            high = state_vector(options.get("high", self.system.reset_high), "reset option 'high'", n)
            if (low > high).any():
                raise ValueError(f"reset option 'low' {low.tolist()} must be <= 'high' {high.tolist()}")
            state = self.np_random.uniform(low=low, high=high, size=(n,))
        self.state = np.asarray(state, dtype=np.float64)
        self._steps_beyond_terminated = None
        return self._observation(), {}

    def _observation(self) -> np.ndarray:
        """The observation: the state as float32, plus the observation noise if any."""
        if self.obs_noise is None:
            return self.state.astype(np.float32)
        return (self.state + self.np_random.standard_normal(self.state.shape) * self.obs_noise).astype(np.float32)

    def set_params(self, params: Parameters) -> None:
        """Change the constants from the next step on (the integrator is kept; per-episode jitter of the
        constants, :class:`physwm.data.ProcessNoise`).

        Raises:
            TypeError: ``params`` is not the system's ``Params``.
            ValueError: the new constants change the control period.
        """
        params = env_params(self.system, params)
        if abs(self.system.control_period(params) - self.dt) > 1e-12:
            raise ValueError(f"set_params cannot change the control period dt = {self.dt} s")
        self.params, self.field = params, self.system(params)
        self._low, self._high = self.system.control_bounds(params)

    def _control(self, action: Any) -> np.ndarray:
        m = self.system.control_dim
        what = "the control [" + ", ".join(f"{q.name} ({q.unit})" for q in self.system.controls) + f"] of shape ({m},)"
        if isinstance(action, (bool, np.bool_)):
            raise ValueError(f"action must be {what}, got the boolean {action!r}")
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"action must be {what}, got {action!r}") from err
        if a.size != m or a.ndim > 1:
            raise ValueError(f"action must be {what}, got shape {a.shape}")
        a = a.reshape(m)
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a.tolist()}")
        return np.minimum(np.maximum(a, self._low), self._high)

    def step(self, action):
        """Apply the control ``action [m]`` (clipped to the bounds) for one period ``dt``.

        Returns ``(obs float32 [n], reward, terminated, False, {"control": applied control [m]})``.
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        control = self._control(action)
        x = torch.from_numpy(np.array(self.state, dtype=np.float64))
        u = torch.from_numpy(control)
        with torch.no_grad():
            x_next = self.integrator.step(self.field, x, u, self.dt)
        new_state = x_next.numpy().astype(np.float64)
        if not np.isfinite(new_state).all():
            raise RuntimeError(
                f"the state became non-finite ({new_state.tolist()}) from {self.state.tolist()}; "
                "use a smaller step (more substeps) or a stable integrator"
            )
        old, self.state = self.state, new_state
        terminated = self.terminate and self.system.failed(self.state, self.params)
        reward = float(self.system.reward(old, control, self.state, terminated))
        if terminated:
            if self._steps_beyond_terminated is None:
                self._steps_beyond_terminated = 0
            else:
                if self._steps_beyond_terminated == 0:
                    gymnasium.logger.warn(
                        "You are calling 'step()' even though this environment has already returned "
                        "terminated = True. You should always call 'reset()' once you receive 'terminated = True'."
                    )
                self._steps_beyond_terminated += 1
                reward = 0.0
        return self._observation(), reward, terminated, False, self._info(control)

    def _info(self, control: np.ndarray) -> dict:
        info: dict[str, Any] = {"control": control}
        if self.system.control_dim == 1:  # the control by its name too (CartPole: info["force"], N)
            info[self.system.controls[0].name] = float(control[0])
        return info



def env_class(system: type[System]) -> type[SystemEnv]:
    """The environment class of a system: :class:`SystemEnv` with ``system`` set, named ``<System>Env``."""
    return type(f"{system.__name__}Env", (SystemEnv,), {"system": system, "__module__": __name__,
                                                          "__doc__": f"``{system.env_id}``: {SystemEnv.__doc__}"})


def vector_env_name(system: type[System]) -> str:
    """The name of a system's vector environment class in :mod:`physwm.vector_envs` (``CartPoleVectorEnv``)."""
    return f"{system.__name__}VectorEnv"


#: Environment classes of the registered systems, by system name (the built-in ones are also module
#: attributes: ``CartPoleEnv``, ``PendulumEnv``, ...).
ENV_CLASSES: dict[str, type[SystemEnv]] = {name: env_class(SYSTEMS[name]) for name in BUILTIN_SYSTEMS
                                           if SYSTEMS[name].env_id}  # fmt: skip
globals().update({c.__name__: c for c in ENV_CLASSES.values()})
#: The environment ids of the built-in systems: their own and the gymnasium environments they reproduce
#: (see :func:`env_ids` for those of registered user systems too).
ENV_IDS: tuple[str, ...] = tuple(
    i for name in BUILTIN_SYSTEMS for i in (SYSTEMS[name].reference_env_id, SYSTEMS[name].env_id) if i is not None
)


def register_env(system: type[System]) -> None:
    """Make a system's environment class (:func:`env_class`) and register it with gymnasium as ``system.env_id``
    (time limit 500 steps); nothing for a system without ``env_id``. Called for every system
    :func:`physwm.systems.register_system` registers; a re-registered system's environment is replaced.

    Raises:
        ValueError: ``env_id`` belongs to a gymnasium environment physwm did not register.
    """
    if system.env_id is None:
        return
    old = ENV_CLASSES.get(system.name)
    spec = gymnasium.registry.get(system.env_id)
    if spec is not None and (old is None or spec.entry_point not in (old, f"{__name__}:{old.__name__}")):
        raise ValueError(f"{system.__name__}.env_id {system.env_id!r} is already a gymnasium environment "
                         f"({spec.entry_point}); choose another id")
    env_cls = ENV_CLASSES[system.name] = env_class(system)
    if spec is not None:
        del gymnasium.registry[system.env_id]
    builtin = system.name in BUILTIN_SYSTEMS
    entry = f"{__name__}:{env_cls.__name__}" if builtin else env_cls
    # the vector environment by name: physwm.vector_envs resolves the name of any registered system's class
    gymnasium.register(id=system.env_id, entry_point=entry, max_episode_steps=500,
                       vector_entry_point=f"physwm.vector_envs:{vector_env_name(system)}")  # fmt: skip


def register_envs() -> None:
    """Register every registered system's environment with gymnasium (idempotent; done on ``import physwm``)."""
    for cls in list(SYSTEMS.values()):
        if cls.env_id is not None and cls.env_id not in gymnasium.registry:
            register_env(cls)


def env_ids() -> tuple[str, ...]:
    """Every environment id physwm works with now: :data:`ENV_IDS` and those of registered user systems."""
    return tuple(i for cls in SYSTEMS.values() for i in (cls.reference_env_id, cls.env_id) if i is not None)


register_envs()
add_registration_hook(register_env)


# --- what callers of an environment need ------------------------------------------------------------


@dataclass(frozen=True)
class EnvInfo:
    """What physwm needs to know about an environment.

    Attributes:
        env_id: its gymnasium id (or class name).
        system: the :class:`~physwm.systems.System` class it simulates; params: its constants.
        dt: control period, s. state_dim, control_dim: n and m.
        levels: for a discrete action space, the control of each action (in action order), else ``None``.
        low, high: the control bounds ``[m]``.
    """

    env_id: str
    system: type[System]
    params: Parameters
    dt: float
    state_dim: int
    control_dim: int
    levels: tuple[float, ...] | None
    low: np.ndarray
    high: np.ndarray


def env_info(env: gymnasium.Env) -> EnvInfo:
    """:class:`EnvInfo` of a physwm environment or of a gymnasium environment a physwm system reproduces.

    Raises:
        ValueError: naming the environment if physwm does not know it (no system reproduces it, or it
            exposes no exact ``env.unwrapped.state``).
    """
    base = env.unwrapped
    spec = getattr(env, "spec", None)
    env_id = spec.id if spec is not None else type(base).__name__
    if isinstance(base, SystemEnv):
        cls, params = base.system, base.params
    else:
        matches = [c for c in SYSTEMS.values() if c.reference_env_id is not None and c.reference_env_id == env_id]
        if not matches:
            known = list(env_ids())
            raise ValueError(
                f"physwm does not know the environment {env_id} ({type(base).__name__}); it works with {known} "
                "and physwm environments of user systems, which expose the exact state as env.unwrapped.state"
            )
        cls = matches[0]
        params = cls.reference_params(base)
    levels = None
    if isinstance(env.action_space, spaces.Discrete):
        levels = cls.action_levels(params)
        if levels is None or len(levels) != env.action_space.n:
            raise ValueError(f"{env_id}'s {env.action_space.n} discrete actions have no controls in {cls.__name__}")
        low, high = np.array([min(levels)]), np.array([max(levels)])
    elif isinstance(env.action_space, spaces.Box):
        low = np.asarray(env.action_space.low, dtype=np.float64).reshape(-1)
        high = np.asarray(env.action_space.high, dtype=np.float64).reshape(-1)
    else:
        raise ValueError(f"unsupported action space {env.action_space} of {env_id}")
    return EnvInfo(env_id, cls, params, cls.control_period(params), cls.state_dim, cls.control_dim, levels, low, high)


def to_action(info: EnvInfo, control: Any) -> tuple[Any, np.ndarray]:
    """The action an environment takes for ``control [m]``, and the control that action applies.

    Discrete environments take the action of the nearest level (ties to the higher level: CartPole-v1
    pushes right for ``u >= 0``); continuous ones the control itself as float32 (their action space's dtype;
    the applied control returned is that float32 value, clipped to the bounds as the environment does).
    """
    u = np.asarray(control, dtype=np.float64).reshape(-1)
    if info.levels is not None:
        levels = np.asarray(info.levels, dtype=np.float64)
        dist = np.abs(levels - u[0])
        action = int(np.flatnonzero(dist == dist.min())[-1])
        return action, np.array([levels[action]])
    action = u.astype(np.float32)
    return action, np.clip(action.astype(np.float64), info.low, info.high)


def make_env(
    env_id: str | None = None,
    task: str | Task | None = None,
    params: Parameters | str | None = None,
    *,
    system: Any = DEFAULT_SYSTEM,
    **kwargs: Any,
) -> gymnasium.Env:
    """The environment to run a task on: a physwm environment or the gymnasium one a system reproduces.

    Args:
        env_id: a gymnasium id from :data:`ENV_IDS` (default: the system's physwm environment).
        task: a task name of the system or a :class:`~physwm.systems.Task` (sets ``terminate`` and the time
            limit, ``max_episode_steps``, of a physwm environment); ``None``: the environment's defaults.
        params: constants of a physwm environment, or a variant name (default: the system's
            ``true_variant``, for CartPole the CartPole with friction).
        system: the system whose tasks and variants are meant (default CartPole); ``env_id`` decides it
            when given.
        **kwargs: other keyword arguments of ``gymnasium.make`` (``integrator``, ``substeps``, ...).

    Raises:
        ValueError: an unknown environment, or a task it cannot run (gymnasium's CartPole-v1 terminates at
            12 degrees, so it only fits the balance task).
    """
    cls = None if env_id is None else next(
        (c for c in SYSTEMS.values() if env_id in (c.env_id, c.reference_env_id)), None
    )
    if env_id is not None and cls is None:
        raise ValueError(f"unknown environment {env_id!r}; valid: {list(env_ids())}")
    cls = cls or get_system(system)
    env_id = env_id or cls.env_id
    t = cls.tasks()[task] if isinstance(task, str) and task in cls.tasks() else task
    if isinstance(task, str) and not isinstance(t, Task):
        raise ValueError(f"unknown task {task!r}; valid: {sorted(cls.tasks())}")
    if env_id == cls.reference_env_id:
        if t is not None and not t.terminate:
            raise ValueError(
                f"{env_id} ends episodes at its own termination rule and only fits tasks with termination (CartPole: "
                f"balance), not {t.name!r}; use {cls.env_id} (terminate=False)"
            )
        if params is not None:
            raise ValueError(f"params only apply to {cls.env_id}")
        kwargs.setdefault("max_episode_steps", max(t.steps if t is not None else 0, 500))
        return gymnasium.make(env_id, **kwargs)
    if t is not None:
        kwargs.setdefault("terminate", t.terminate)
        kwargs.setdefault("max_episode_steps", t.steps)
    if params is None or isinstance(params, str):
        params = cls.variant(params if isinstance(params, str) else cls.true_variant)
    return gymnasium.make(env_id, params=params, **kwargs)
