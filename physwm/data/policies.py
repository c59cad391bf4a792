"""Data-collection policies: ``policy(state, rng) -> control``, for any system.

:func:`collect` first calls :meth:`Policy.bind` with the environment's system (its field with the true
constants), so a policy can fill in what it was not given: the control bounds, or the model an LQR
controller is designed on. Any plain callable ``f(state, rng) -> control`` works with ``collect`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..checks import finite_float
from ..systems import System, get_system, lqr, wrap_angle

__all__ = ["as_system", "Policy", "NoControl", "RandomPolicy", "UniformPolicy", "LQRPolicy", "POLICIES", "make_policy"]


def as_system(system: Any) -> System:
    """A System instance from a System instance or a system's Params (the system of those constants)."""
    if isinstance(system, System):
        return system
    return get_system(system)(system)


class Policy:
    """A data-collection policy: ``policy(state, rng) -> control`` (``[m]`` array, or a float when ``m = 1``).

    ``state`` is the exact float64 state ``[n]``; ``rng`` is the ``numpy.random.Generator`` that
    :func:`~physwm.data.collect` seeds.
    """

    name = "policy"

    def bind(self, system: Any) -> Policy:
        """A copy ready for an environment of ``system`` (its field with the true constants, or those
        constants); default: self."""
        return self

    def __call__(self, state: np.ndarray, rng: np.random.Generator) -> Any:  # pragma: no cover
        raise NotImplementedError

    def config(self) -> dict:
        """JSON-able description stored in the data's meta."""
        return {"name": self.name}


def _bound(force_mag: float | None) -> float:
    if force_mag is None:
        raise RuntimeError("the policy has no force_mag: give one or call bind(system) first")
    return force_mag


class NoControl(Policy):
    """The policy of an autonomous system (no control): returns the empty control ``[0]`` every step."""

    name = "none"

    def bind(self, system: Any) -> NoControl:
        system = as_system(system)
        if type(system).control_dim:
            raise ValueError(f"the 'none' policy is for autonomous systems; {type(system).__name__} has a control")
        return self

    def __call__(self, state, rng):
        return np.zeros(0)


class RandomPolicy(Policy):
    """Gymnasium's random discrete policy: ``+force_mag`` or ``-force_mag`` with equal probability (each entry of
    the control, for the first; a system without control gets :class:`NoControl`).

    Args:
        force_mag: control magnitude (N for CartPole); ``None`` takes the bound of the system's control.
    """

    name = "random"

    def __init__(self, force_mag: float | None = None):
        self.force_mag = finite_float(force_mag, "force_mag", positive=True, allow_none=True)

    def bind(self, system: Any) -> Policy:
        system = as_system(system)
        if type(system).control_dim == 0:
            return NoControl()  # an autonomous system: nothing to randomise
        if self.force_mag is not None:
            return self
        low, high = type(system).control_bounds(system.params)
        bound = float(np.min(np.minimum(-low, high)))
        if not np.isfinite(bound):
            raise ValueError(f"{type(system).__name__}'s control is unbounded; give the policy a force_mag")
        return type(self)(bound)

    def __call__(self, state, rng):
        fm = _bound(self.force_mag)
        return fm if rng.integers(2) == 1 else -fm

    def config(self) -> dict:
        return {"name": self.name, "force_mag": self.force_mag}


class UniformPolicy(RandomPolicy):
    """A control drawn uniformly from ``[-force_mag, force_mag]`` every step."""

    name = "uniform"

    def __call__(self, state, rng):
        fm = _bound(self.force_mag)
        return float(rng.uniform(-fm, fm))


class LQRPolicy(Policy):
    """Noisy LQR that stabilises the system's operating point: ``u = -K x + noise_std * N(0, 1)``.

    The linearisation about rest at zero (CartPole: upright, ``x = 0``, ``u = 0``) is taken from the
    physwm field itself by autograd (one source of truth), discretised exactly for a zero-order-hold
    control over the system's control period, and the discrete Riccati equation is solved with scipy
    (:func:`physwm.systems.lqr`). The feedback uses angles wrapped to (-pi, pi]. On a discrete environment
    :func:`~physwm.data.collect` applies the nearest action (bang-bang for CartPole-v1).

    Args:
        params: constants (or a System instance) to linearise; ``None`` takes the environment's (at
            :meth:`bind`).
        Q: state cost, ``[n, n]`` or an ``n``-vector diagonal (default: the system's ``lqr_q``).
        R: control cost, scalar (default 0.1).
        noise_std: standard deviation of the Gaussian exploration noise added to ``u``.

    Attributes (after bind): ``A``, ``B`` (continuous), ``Ad``, ``Bd`` (discrete), ``P`` (Riccati
    solution), ``K [m, n]`` (gain), numpy float64.
    """

    name = "lqr"

    def __init__(
        self,
        params: Any = None,
        Q: Sequence | np.ndarray | None = None,
        R: float = 0.1,
        noise_std: float = 0.0,
    ):
        self.params = params
        self.Q = None if Q is None else np.asarray(Q, dtype=np.float64)
        self.R = finite_float(R, "R", positive=True)
        self.noise_std = finite_float(noise_std, "noise_std (N)", nonnegative=True)
        self.K: np.ndarray | None = None
        if params is not None:
            self._design(as_system(params))

    def _weights(self, cls: type[System]) -> np.ndarray:
        n = cls.state_dim
        default = np.ones(n) if cls.lqr_q is None else np.asarray(cls.lqr_q, dtype=np.float64)
        Q = np.diag(default) if self.Q is None else self.Q
        if Q.shape == (n,):
            Q = np.diag(Q)
        if Q.shape != (n, n) or not np.isfinite(Q).all() or not np.allclose(Q, Q.T):
            raise ValueError(f"Q must be a symmetric finite [{n}, {n}] matrix or a {n}-vector diagonal, got {Q.shape}")
        if np.linalg.eigvalsh(Q).min() < 0:
            raise ValueError("Q must be positive semi-definite")
        return Q

    def _design(self, system: System) -> None:
        cls = type(system)
        if cls.control_dim == 0:
            raise ValueError(f"{cls.__name__} is autonomous (no control): there is no LQR controller to design")
        field = cls(cls.Params.from_dict(system.params.to_dict()))  # plain floats, no learnable parameters
        self.Q = self._weights(cls)
        design = lqr(field, cls.control_period(field.params), self.Q, self.R * np.eye(cls.control_dim))
        self.params = field.params
        self.A, self.B, self.Ad, self.Bd, self.P, self.K = (
            design.A, design.B, design.Ad, design.Bd, design.P, design.K
        )
        self._angles = [i for i, q in enumerate(cls.states) if q.kind == "angle"]

    def bind(self, system: Any) -> LQRPolicy:
        if self.K is not None:
            return self
        return LQRPolicy(system, Q=self.Q, R=self.R, noise_std=self.noise_std)

    def __call__(self, state, rng):
        if self.K is None:
            raise RuntimeError("LQRPolicy has no gain yet: give params or call bind(system) first")
        s = np.asarray(state, dtype=np.float64).copy()
        s[self._angles] = wrap_angle(s[self._angles])
        u = -(self.K @ s)
        if self.noise_std > 0:
            u = u + self.noise_std * rng.standard_normal(u.shape)
        return float(u[0]) if u.shape == (1,) else u

    def config(self) -> dict:
        return {
            "name": self.name,
            "Q": None if self.Q is None else self.Q.tolist(),
            "R": self.R,
            "noise_std": self.noise_std,
            "K": None if self.K is None else self.K.tolist(),
        }


POLICIES: dict[str, type[Policy]] = {"random": RandomPolicy, "uniform": UniformPolicy, "lqr": LQRPolicy,
                                     "none": NoControl}  # fmt: skip


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Build a policy by name: ``"random"``, ``"uniform"``, ``"lqr"`` or ``"none"`` (kwargs go to its class;
    ``random`` and ``uniform`` become ``none`` on an autonomous system).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; valid: {sorted(POLICIES)}")
    return POLICIES[name](**kwargs)
