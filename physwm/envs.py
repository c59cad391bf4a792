r"""Gymnasium environments built on physwm's physics (registered on ``import physwm``).

``physwm/CartPole-v0`` is gymnasium's CartPole with a continuous force, any :class:`CartPoleParams`
(friction, other constants), any physwm integrator, and optional early termination. It steps the very
same :class:`~physwm.systems.CartPole` field and :mod:`physwm.integrators` code that the explicit
models and the physics half of every hybrid use: the equations exist once.

    >>> import gymnasium as gym, physwm
    >>> env = gym.make("physwm/CartPole-v0", params=physwm.envs.FRICTION_PARAMS, terminate=False)
    >>> obs, info = env.reset(seed=0, options={"state": [0.0, 0.0, 3.0, 0.0]})  # start near hanging
    >>> obs, reward, terminated, truncated, info = env.step([2.5])  # 2.5 N to the right

State and observation (gymnasium's order and units; ``env.unwrapped.state`` is the exact float64
state, the observation is its float32 copy, as in gymnasium):

    ====  ===========  ======  ==============================  =================================
    idx   name         unit    observation bound, terminate    observation bound, no terminate
    ====  ===========  ======  ==============================  =================================
    0     x            m       +-4.8                            unbounded
    1     x_dot        m/s     unbounded                        unbounded
    2     theta        rad     +-24 deg (0.419)                 unbounded (never wrapped)
    3     theta_dot    rad/s   unbounded                        unbounded
    ====  ===========  ======  ==============================  =================================

Action: ``Box(-force_mag, force_mag, shape=(1,), float32)``, the horizontal force on the cart in N,
held constant over the control period ``params.tau``. Actions outside the bound are **clipped** to it
(like gymnasium's continuous-control environments, so noisy policies need no care); the force
actually applied is returned as ``info["force"]`` (float, N). A NaN/inf action or one of the wrong
shape is a ValueError.

Reward: +1 for every step, including the terminating one (CartPole-v1's reward).

Termination (``terminate=True``): CartPole-v1's thresholds ``|x| > 2.4`` m or ``|theta| > 12`` deg.
With ``terminate=False`` the episode never terminates (only the time limit truncates it), so studies
can follow full swings of the pole; theta is then not wrapped to (-pi, pi].

Integration: ``integrator`` is a name (``"euler"``, ``"semi_implicit_euler"``, ``"rk4"``,
``"dopri5"``, ...; see :func:`physwm.get_integrator`) or an :class:`~physwm.integrators.Integrator`
instance. ``substeps`` (fixed-step integrators only) defaults to **1 without friction and 10 with
friction**: the smoothed Coulomb term switches over ``coulomb_smoothing`` (0.01 m/s), which the cart
crosses in a few milliseconds, so with friction RK4 needs sub-steps of about 2 ms to resolve it; the
frictionless equations are smooth and RK4 at 20 ms is already accurate to ~1e-8 per step.
Frictionless params + ``integrator="euler"`` + ``substeps=1`` reproduce ``gymnasium.make("CartPole-v1")``
to float64 round-off (tested).

Reset: ``reset(seed=None, options=None)`` samples each state entry uniformly in [-0.05, 0.05] (as
CartPole-v1 does, from the same seeded generator, so equal seeds give equal starts); options may give
``{"state": [x, x_dot, theta, theta_dot]}`` to start from that exact state, or ``{"low": ..., "high":
...}`` (scalars or 4-vectors) to change the sampling box.

Time limit: ``gymnasium.make(..., max_episode_steps=T)``, default 500 (CartPole-v1's). Constructing
:class:`CartPoleEnv` directly gives an environment without time limit.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from .integrators import ADAPTIVE_METHODS, Integrator, get_integrator
from .systems.cartpole import CartPole, CartPoleParams

__all__ = ["CartPoleEnv", "ENV_ID", "FRICTION_PARAMS", "register_envs"]

ENV_ID = "physwm/CartPole-v0"

#: A reference "true" system with friction (a moderate, clearly measurable gap to the frictionless
#: equations): viscous cart friction 0.1 N s/m, Coulomb cart friction 0.1 N, pole joint damping
#: 0.005 N m s/rad (a damping term of 0.1 * theta_dot in the pole's angular equation, about 5% of
#: gravity's during full swings). Used by ``physwm collect --friction``.
FRICTION_PARAMS = CartPoleParams(cart_viscous=0.1, cart_coulomb=0.1, pole_damping=0.005)

_RESET_OPTIONS = ("state", "low", "high")


def _integrator_names() -> list[str]:
    return ["euler", "semi_implicit_euler", "rk4", *ADAPTIVE_METHODS]


def _as_state_vector(value: Any, what: str) -> np.ndarray:
    """A finite float64 4-vector from scalars or array-likes, or a ValueError naming ``what``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be numbers, got {value!r}") from err
    if arr.ndim == 0:
        arr = np.full(4, float(arr))
    if arr.shape != (4,):
        raise ValueError(f"{what} must have shape (4,) = [x, x_dot, theta, theta_dot], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite, got {arr.tolist()}")
    return arr.copy()


class CartPoleEnv(gymnasium.Env):
    """CartPole with a continuous force, friction, any physwm integrator (see the module docstring).

    Args:
        params: physical constants (gymnasium CartPole-v1's by default). Learnable (tensor) values
            are detached to floats.
        integrator: integrator name or :class:`~physwm.integrators.Integrator` instance.
        substeps: sub-steps per control period for a named fixed-step integrator; ``None`` chooses 1
            without friction, 10 with friction. Must be left ``None`` when ``integrator`` is an
            instance (set it on the instance) and 1 or ``None`` for adaptive integrators.
        terminate: end episodes at CartPole-v1's thresholds (True) or never (False).
        render_mode: only ``None`` is supported.

    Attributes:
        state: exact float64 state ``[4]`` (x m, x_dot m/s, theta rad, theta_dot rad/s).
        params, field, integrator, dt (s), force_mag (N), terminate, x_threshold (m),
        theta_threshold_radians (rad).
    """

    metadata = {"render_modes": [], "render_fps": 50}

    def __init__(
        self,
        params: CartPoleParams | None = None,
        integrator: str | Integrator = "rk4",
        substeps: int | None = None,
        terminate: bool = True,
        render_mode: str | None = None,
    ):
        super().__init__()
        if params is None:
            params = CartPoleParams()
        if not isinstance(params, CartPoleParams):
            raise TypeError(f"params must be a CartPoleParams, got {type(params).__name__}")
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported; valid: [None]")
        self.render_mode = None
        self.params = CartPoleParams.from_dict(params.to_dict())  # plain floats, detached
        self.field = CartPole(self.params)
        self.integrator = self._make_integrator(integrator, substeps)
        self.terminate = bool(terminate)
        self.dt = float(self.params.tau)
        self.tau = self.dt  # gymnasium's name
        self.force_mag = float(self.params.force_mag)
        self.x_threshold = 2.4
        self.theta_threshold_radians = 12 * 2 * math.pi / 360

        self.action_space = spaces.Box(-self.force_mag, self.force_mag, shape=(1,), dtype=np.float32)
        if self.terminate:
            high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf], np.float32)
        else:
            high = np.full(4, np.inf, dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.state: np.ndarray | None = None
        self._steps_beyond_terminated: int | None = None

    def _make_integrator(self, integrator: str | Integrator, substeps: int | None) -> Integrator:
        if isinstance(integrator, Integrator):
            if substeps is not None:
                raise ValueError(
                    "substeps is set on the Integrator instance itself; pass substeps only with an integrator name"
                )
            return integrator
        if not isinstance(integrator, str):
            raise TypeError(f"integrator must be a name or an Integrator, got {type(integrator).__name__}")
        key = integrator.lower().replace("-", "_").replace(" ", "_")
        if key in ADAPTIVE_METHODS:
            return get_integrator(key, substeps=1 if substeps is None else substeps)
        if key not in _integrator_names():
            raise ValueError(f"unknown integrator {integrator!r}; valid: {_integrator_names()}")
        if substeps is None:
            substeps = 10 if self.params.has_friction else 1
        return get_integrator(key, substeps=substeps)

    # --- gymnasium API -----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; see the module docstring for ``options``. Returns ``(obs float32 [4], {})``."""
        super().reset(seed=seed)
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise ValueError(f"options must be a dict, got {type(options).__name__}")
        unknown = sorted(set(options) - set(_RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; valid: {list(_RESET_OPTIONS)}")
        if "state" in options:
            if "low" in options or "high" in options:
                raise ValueError("reset options: give either 'state' or 'low'/'high', not both")
            if np.ndim(options["state"]) == 0:
                raise ValueError("reset option 'state' must have shape (4,) = [x, x_dot, theta, theta_dot]")
            state = _as_state_vector(options["state"], "reset option 'state'")
        else:
            low = _as_state_vector(options.get("low", -0.05), "reset option 'low'")
            high = _as_state_vector(options.get("high", 0.05), "reset option 'high'")
            if (low > high).any():
                raise ValueError(f"reset option 'low' {low.tolist()} must be <= 'high' {high.tolist()}")
            state = self.np_random.uniform(low=low, high=high, size=(4,))
        self.state = np.asarray(state, dtype=np.float64)
        self._steps_beyond_terminated = None
        return self.state.astype(np.float32), {}

    def step(self, action):
        """Apply the force ``action [1]`` (N, clipped to +-force_mag) for one period ``dt``.

        Returns ``(obs float32 [4], reward 1.0, terminated, False, {"force": applied force N})``.
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"action must be a force in N of shape (1,), got {action!r}") from err
        if a.size != 1 or a.ndim > 1:
            raise ValueError(f"action must be a force in N of shape (1,), got shape {a.shape}")
        force = float(a.reshape(()))
        if not math.isfinite(force):
            raise ValueError(f"action must be a finite force in N, got {force}")
        force = min(max(force, -self.force_mag), self.force_mag)

        x = torch.from_numpy(np.array(self.state, dtype=np.float64))
        u = torch.tensor([force], dtype=torch.float64)
        with torch.no_grad():
            x_next = self.integrator.step(self.field, x, u, self.dt)
        new_state = x_next.numpy().astype(np.float64)
        if not np.isfinite(new_state).all():
            raise RuntimeError(
                f"the state became non-finite ({new_state.tolist()}) from {self.state.tolist()}; "
                "use a smaller step (more substeps) or a stable integrator"
            )
        self.state = new_state

        x_pos, _, theta, _ = self.state
        terminated = self.terminate and bool(
            x_pos < -self.x_threshold
            or x_pos > self.x_threshold
            or theta < -self.theta_threshold_radians
            or theta > self.theta_threshold_radians
        )
        if not terminated:
            reward = 1.0
        elif self._steps_beyond_terminated is None:
            self._steps_beyond_terminated = 0
            reward = 1.0
        else:
            if self._steps_beyond_terminated == 0:
                gymnasium.logger.warn(
                    "You are calling 'step()' even though this environment has already returned terminated = True. "
                    "You should always call 'reset()' once you receive 'terminated = True'."
                )
            self._steps_beyond_terminated += 1
            reward = 0.0
        return self.state.astype(np.float32), reward, terminated, False, {"force": force}

    def render(self):
        """No rendering (``render_mode`` must be ``None``)."""
        return None


def register_envs() -> None:
    """Register ``physwm/CartPole-v0`` with gymnasium (idempotent; called on ``import physwm``)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="physwm.envs:CartPoleEnv", max_episode_steps=500)


register_envs()
