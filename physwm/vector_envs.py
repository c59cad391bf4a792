r"""Vector environments: ``N`` copies of a physwm environment stepped together, in one batched call.

Every system with an environment has one, registered as that environment's ``vector_entry_point``::

    >>> import gymnasium as gym, physwm
    >>> envs = gym.make_vec("physwm/CartPole-v0", num_envs=1024, vectorization_mode="vector_entry_point",
    ...                     params=physwm.FRICTION_PARAMS, terminate=False)
    >>> obs, info = envs.reset(seed=0)                       # obs float32 [1024, 4]
    >>> obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())

It behaves like ``N`` :class:`~physwm.envs.SystemEnv` instances under gymnasium's vector API (what
``gymnasium.vector.SyncVectorEnv`` of ``N`` single environments would return, to float round-off), but
advances all ``N`` states in one call of the same field and integrator: eager PyTorch on the ``[N, n]``
batch, or a compiled step (:func:`physwm.integrators.compiled_vector_step`, the integrator's own step and the
field's own ``forward`` compiled into one loop over the batch). Nothing about the equations is re-typed.

* **Arguments**: those of :class:`~physwm.envs.SystemEnv` (``params``, ``integrator``, ``substeps``,
  ``terminate``), plus ``num_envs``, ``max_episode_steps`` (the time limit; ``gymnasium.make_vec`` passes
  the registered 500, a class constructed directly has none), ``autoreset_mode`` and ``fused``.
* **Actions**: ``[N, m]`` controls (``[N]`` is accepted when ``m = 1``), clipped to the control bounds;
  the controls applied are returned as ``info["control"]`` ``[N, m]`` (and a single control under its name,
  CartPole's ``info["force"]`` ``[N]``), with gymnasium's ``info["_control"]`` mask of the environments
  that stepped. A NaN/inf action or a wrong shape is a ValueError.
* **Autoreset** (gymnasium's ``AutoresetMode``): ``NEXT_STEP`` (default, as gymnasium's own vector
  environments): the step after an episode ended resets that environment instead of stepping it (its
  observation is the new start, reward 0, not terminated, not truncated). ``SAME_STEP``: the environment
  is reset in the step that ends its episode; the final observation is in ``info["final_obs"]`` (masked by
  ``info["_final_obs"]``). ``DISABLED``: nothing is reset automatically; call ``reset(options={"reset_mask":
  mask})`` to reset some environments.
* **Reset**: ``reset(seed=None, options=None)`` draws every start from one generator (seeded by ``seed``):
  environment ``i``'s start is the ``i``-th draw a single environment would make, so a single
  ``SystemEnv`` reset with the same seed and stepped through ``N`` episodes starts them at the same states.
  Options: ``{"state": [N, n] or [n]}``, ``{"low": ..., "high": ...}`` (the sampling box, as for the single
  environment, kept for later autoresets), ``{"radius": (low, high)}`` (starts at a random distance from
  zero, :func:`~physwm.envs.radius_start`, also kept) and ``{"reset_mask": bool [N]}`` (reset only those).
* **fused**: ``True`` compiles the step (about 10-60 s once per process and batch size on a 2-core machine,
  then each step costs a fraction of the eager one), ``False`` steps eagerly, ``None`` (default) compiles
  when ``num_envs >= FUSED_MIN_ENVS`` (where the compilation pays for itself within a few thousand steps)
  and a C++ compiler is available.

``state`` is the exact float64 state ``[N, n]``; observations are its float32 copy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from .checks import positive_int
from .envs import RESET_OPTIONS, GymConstants, env_integrator, env_params, radius_start, state_vector, vector_env_name
from .integrators import Integrator, compile_available, compiled_vector_step
from .systems import BUILTIN_SYSTEMS, SYSTEMS, Parameters, System

__all__ = ["SystemVectorEnv", "vector_env_class", "VECTOR_ENV_CLASSES", "FUSED_MIN_ENVS"]

#: ``fused=None`` compiles the step from this many environments on.
FUSED_MIN_ENVS = 256

_VECTOR_RESET_OPTIONS = (*RESET_OPTIONS, "reset_mask")


class SystemVectorEnv(GymConstants, gymnasium.vector.VectorEnv):
    """``num_envs`` environments of a :class:`~physwm.systems.System`, stepped in one batch (module docstring).

    Subclasses set ``system``. Args:
        num_envs: N >= 1.
        params, integrator, substeps, terminate: as for :class:`~physwm.envs.SystemEnv` (one set for all N).
        max_episode_steps: truncate episodes after this many steps (``None``: never).
        autoreset_mode: a ``gymnasium.vector.AutoresetMode`` (or its value): next step (default), same step,
            or disabled.
        fused: compile the step (``True``), step eagerly (``False``) or decide by ``num_envs`` (``None``).
        render_mode: only ``None`` is supported.

    Attributes:
        state: exact float64 states ``[N, n]``.
        system, params, field, integrator, dt (s), terminate, fused (whether the step is compiled),
        fused_step (the :class:`~physwm.integrators.FusedStep`, or ``None``),
        max_episode_steps, steps (steps of each running episode ``[N]``).
    """

    metadata = {"render_modes": [], "render_fps": 50, "autoreset_mode": AutoresetMode.NEXT_STEP}
    system: ClassVar[type[System]]

    def __init__(
        self,
        num_envs: int = 1,
        params: Parameters | None = None,
        integrator: str | Integrator | None = None,
        substeps: int | None = None,
        terminate: bool = True,
        max_episode_steps: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        fused: bool | None = None,
        render_mode: str | None = None,
    ):
        cls = self.system
        self.num_envs = positive_int(num_envs, "num_envs")
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported; valid: [None]")
        self.render_mode = None
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError as err:
            raise ValueError(
                f"unknown autoreset_mode {autoreset_mode!r}; valid: {[m.value for m in AutoresetMode]}"
            ) from err
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.max_episode_steps = None if max_episode_steps is None else positive_int(max_episode_steps,
                                                                                      "max_episode_steps")
        self.params = env_params(cls, params)
        self.field = cls(self.params)
        self.integrator = env_integrator(cls, self.params, integrator, substeps)
        self.terminate = bool(terminate)
        self.dt = cls.control_period(self.params)
        if fused is None:
            fused = self.num_envs >= FUSED_MIN_ENVS and compile_available()
        self.fused = bool(fused)
        self.fused_step = compiled_vector_step(self.field, self.integrator, self.dt) if self.fused else None
        low, high = cls.control_bounds(self.params)
        self._low, self._high = low, high
        self.single_action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        obs_high = cls.observation_high(self.terminate)
        self.single_observation_space = spaces.Box(-obs_high, obs_high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        n = cls.state_dim
        self._box = (np.asarray(cls.reset_low if cls.reset_low is not None else np.zeros(n), dtype=np.float64),
                     np.asarray(cls.reset_high if cls.reset_high is not None else np.zeros(n), dtype=np.float64))
        self._radius: Any = None  # a reset's "radius" option, kept for later autoresets (instead of the box)
        # the states: rows [n, N] (contiguous) for the compiled step, [N, n] for the eager one; `state` is
        # always the [N, n] view.
        self._rows: np.ndarray | None = None
        self.state: np.ndarray | None = None
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self._done = np.zeros(self.num_envs, dtype=bool)

    # --- states ------------------------------------------------------------------------------------

    def _set_states(self, values: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Write ``values [k, n]`` into the environments of ``mask`` (all if ``None``)."""
        if self.state is None:
            if self.fused:
                self._rows = np.zeros((self.system.state_dim, self.num_envs))
                self.state = self._rows.T
            else:
                self.state = np.zeros((self.num_envs, self.system.state_dim))
        if mask is None:
            self.state[...] = values
        else:
            self.state[mask] = values

    def _draw_starts(self, k: int) -> np.ndarray:
        """``k`` start states ``[k, n]`` from the environments' generator (row i: the i-th single draw)."""
        n = self.system.state_dim
        if self._radius is not None:
            if k == 0:
                return np.zeros((0, n))
            return np.stack([radius_start(self.np_random, n, self._radius) for _ in range(k)]).reshape(k, n)
        low, high = self._box
        return self.np_random.uniform(low=low, high=high, size=(k, n))

    def _advance(self, control: np.ndarray) -> np.ndarray:
        """The states after one control period under ``control [N, m]``: a new ``[N, n]`` float64 array."""
        if self.fused:
            x = torch.from_numpy(self._rows)
            u = torch.from_numpy(np.ascontiguousarray(control.T))
            return self.fused_step(x, u).numpy().T
        with torch.no_grad():
            x_next = self.integrator.advance(self.field, torch.from_numpy(self.state), torch.from_numpy(control),
                                             self.dt)  # fmt: skip
        return x_next.numpy()

    # --- gymnasium API -----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start episodes (all, or those of ``options["reset_mask"]``); see the module docstring.

        Returns ``(obs float32 [N, n], {})``.
        """
        super().reset(seed=seed)
        n, N = self.system.state_dim, self.num_envs
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise ValueError(f"options must be a dict, got {type(options).__name__}")
        unknown = sorted(set(options) - set(_VECTOR_RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; valid: {list(_VECTOR_RESET_OPTIONS)}")
        mask = None
        if "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.dtype != np.bool_ or mask.shape != (N,):
                raise ValueError(f"reset option 'reset_mask' must be a bool array of shape ({N},), got {mask!r}")
            if self.state is None and not mask.all():
                raise ValueError("the first reset must reset every environment (no reset_mask, or all True)")
        k = N if mask is None else int(mask.sum())
        if sum(("state" in options, "low" in options or "high" in options, "radius" in options)) > 1:
            raise ValueError("reset options: give either 'state', 'low'/'high' or 'radius', not several")
        if "state" in options:
            states = np.asarray(options["state"], dtype=np.float64)
            names = "[" + ", ".join(q.name for q in self.system.states) + "]"
            if states.shape == (n,):
                states = np.broadcast_to(states, (k, n))
            if states.shape != (k, n) or not np.isfinite(states).all():
                raise ValueError(f"reset option 'state' must be finite, of shape ({n},) or ({k}, {n}) = {names} "
                                 f"per environment reset, got shape {states.shape}")  # fmt: skip
        elif "radius" in options:
            radius_start(np.random.default_rng(0), n, options["radius"])  # checks it (ValueError)
            self._radius = options["radius"]
            states = self._draw_starts(k)
        else:
            low = state_vector(options.get("low", self._box[0]), "reset option 'low'", n)
            high = state_vector(options.get("high", self._box[1]), "reset option 'high'", n)
            if (low > high).any():
                raise ValueError(f"reset option 'low' {low.tolist()} must be <= 'high' {high.tolist()}")
            self._box, self._radius = (low, high), None
            states = self._draw_starts(k)
        self._set_states(states, mask)
        if mask is None:
            self.steps[:] = 0
            self._done[:] = False
        else:
            self.steps[mask] = 0
            self._done[mask] = False
        return self.state.astype(np.float32), {}

    def _control(self, actions: Any) -> np.ndarray:
        N, m = self.num_envs, self.system.control_dim
        try:
            a = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"actions must be numbers of shape ({N}, {m}), got {actions!r}") from err
        if m == 1 and a.shape == (N,):
            a = a[:, None]
        if a.shape != (N, m):
            raise ValueError(f"actions must have shape ({N}, {m}) (one control per environment), got {a.shape}")
        if not np.isfinite(a).all():
            bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
            raise ValueError(f"actions must be finite; environments {bad[:10].tolist()} got NaN or inf")
        return np.minimum(np.maximum(a, self._low), self._high)

    def step(self, actions: Any):
        """Apply the controls ``actions [N, m]`` for one period ``dt`` (see the module docstring).

        Returns ``(obs float32 [N, n], rewards float64 [N], terminated bool [N], truncated bool [N], info)``.
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        N = self.num_envs
        control = self._control(actions)
        old = self.state.copy()
        new = self._advance(control)
        stepped = ~self._done if self.autoreset_mode == AutoresetMode.NEXT_STEP else np.ones(N, dtype=bool)
        finite = np.isfinite(new).all(axis=1)
        if not finite[stepped].all():
            i = int(np.flatnonzero(stepped & ~finite)[0])
            raise RuntimeError(
                f"environment {i}'s state became non-finite ({new[i].tolist()}) from {old[i].tolist()}; "
                "use a smaller step (more substeps) or a stable integrator"
            )
        self._set_states(new)
        self.steps += 1
        terminated = self.system.failed_batch(self.state, self.params) if self.terminate else np.zeros(N, bool)
        truncated = (self.steps >= self.max_episode_steps if self.max_episode_steps is not None
                     else np.zeros(N, dtype=bool))  # fmt: skip
        rewards = np.asarray(self.system.reward_batch(old, control, self.state, terminated), dtype=np.float64)
        info = self._info(control, stepped)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            reset = self._done
            if reset.any():
                self._set_states(self._draw_starts(int(reset.sum())), reset)
                self.steps[reset] = 0
                rewards[reset] = 0.0
                terminated[reset] = False
                truncated[reset] = False
            self._done = terminated | truncated
        elif self.autoreset_mode == AutoresetMode.SAME_STEP:
            reset = terminated | truncated
            if reset.any():
                info["final_obs"] = self.state.astype(np.float32)
                info["_final_obs"] = reset.copy()
                self._set_states(self._draw_starts(int(reset.sum())), reset)
                self.steps[reset] = 0
        return self.state.astype(np.float32), rewards, terminated, truncated, info

    def _info(self, control: np.ndarray, stepped: np.ndarray) -> dict:
        info: dict[str, Any] = {"control": control, "_control": stepped.copy()}
        if self.system.control_dim == 1:  # the control by its name too (CartPole: info["force"], N)
            name = self.system.controls[0].name
            info[name], info[f"_{name}"] = control[:, 0].copy(), stepped.copy()
        return info



def vector_env_class(system: type[System]) -> type[SystemVectorEnv]:
    """The vector environment class of a system: :class:`SystemVectorEnv` with ``system`` set."""
    return type(vector_env_name(system), (SystemVectorEnv,), {
        "system": system, "__module__": __name__, "__doc__": f"``{system.env_id}`` x N: {SystemVectorEnv.__doc__}"})


#: Vector environment classes of the built-in systems, by system name (also attributes: ``CartPoleVectorEnv``).
VECTOR_ENV_CLASSES: dict[str, type[SystemVectorEnv]] = {
    name: vector_env_class(SYSTEMS[name]) for name in BUILTIN_SYSTEMS if SYSTEMS[name].env_id
}
globals().update({c.__name__: c for c in VECTOR_ENV_CLASSES.values()})


def __getattr__(name: str) -> type[SystemVectorEnv]:
    # ``<System>VectorEnv`` of a user-registered system (the name gymnasium's vector_entry_point gives)
    for cls in list(SYSTEMS.values()):
        if cls.env_id and vector_env_name(cls) == name:
            return vector_env_class(cls)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
