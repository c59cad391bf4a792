"""Trajectory data: the :class:`Trajectories` container, collection from gymnasium, policies, .npz files.

* :class:`Trajectories` holds ``N`` episodes padded to a common length ``T``: ``states [N, T+1, n]``,
  ``controls [N, T, m]`` (forces in N) and ``lengths [N]``, the number of valid transitions of each
  episode (entries beyond are NaN). It cuts training windows that never cross an episode's end
  (:meth:`Trajectories.windows`), splits by episode (:meth:`Trajectories.split`) and saves to / loads
  from ``.npz`` files atomically, with a schema version.
* :func:`collect` runs a policy in a CartPole environment (gymnasium's ``CartPole-v1`` or physwm's
  ``physwm/CartPole-v0``) and records the exact float64 ``env.unwrapped.state`` and the force applied.
* :func:`make_policy` builds the data-collection policies ``"random"``, ``"uniform"`` and ``"lqr"``.

One integer seed makes a collection reproducible: equal seeds give identical data.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io import atomic_write
from .systems.cartpole import CartPole, CartPoleParams

__all__ = [
    "Trajectories",
    "collect",
    "make_policy",
    "Policy",
    "RandomPolicy",
    "UniformPolicy",
    "LQRPolicy",
    "POLICIES",
    "SCHEMA_VERSION",
]

#: Version of the .npz layout written by :meth:`Trajectories.save` (key ``physwm_schema``).
SCHEMA_VERSION = 1

_CARTPOLE_STATE_NAMES = ("x", "x_dot", "theta", "theta_dot")
_NPZ_KEYS = ("physwm_schema", "states", "controls", "lengths", "dt", "meta")


# --- the container --------------------------------------------------------------------------------


class Trajectories:
    """Episodes of states and controls, padded to a common length.

    Args:
        states: ``[N, T+1, n]`` float tensor (numpy arrays are converted, dtype kept), physical units.
        controls: ``[N, T, m]`` controls held over each step (forces in N), same dtype and device.
        lengths: int ``[N]``, valid transitions per episode, each in ``[0, T]`` (default: all ``T``).
            Episode ``i`` is ``states[i, :lengths[i] + 1]``, ``controls[i, :lengths[i]]``; entries
            beyond are padding (NaN from :func:`collect`) and are never used.
        dt: control period, s.
        meta: JSON-serialisable dict (env id, params, policy, seed, physwm version, ...); stored as a
            plain JSON copy.

    Raises:
        ValueError: naming the problem for wrong shapes, dtypes, lengths, NaN/inf inside the valid
            part of an episode, a bad ``dt`` or non-JSON ``meta``.
    """

    def __init__(
        self,
        states: torch.Tensor | np.ndarray,
        controls: torch.Tensor | np.ndarray,
        lengths: torch.Tensor | np.ndarray | Sequence[int] | None = None,
        dt: float = 0.02,
        meta: dict | None = None,
    ):
        states = _as_tensor(states, "states")
        controls = _as_tensor(controls, "controls")
        if states.ndim != 3:
            raise ValueError(f"states must have shape [N, T+1, n], got {tuple(states.shape)}")
        if controls.ndim != 3:
            raise ValueError(f"controls must have shape [N, T, m], got {tuple(controls.shape)}")
        if not states.is_floating_point() or not controls.is_floating_point():
            raise ValueError(f"states and controls must be floating point, got {states.dtype} and {controls.dtype}")
        if states.dtype != controls.dtype or states.device != controls.device:
            raise ValueError(
                f"states and controls must share dtype and device, got {states.dtype}/{states.device} "
                f"and {controls.dtype}/{controls.device}"
            )
        n_ep, t_plus_1 = states.shape[0], states.shape[1]
        if controls.shape[0] != n_ep or controls.shape[1] + 1 != t_plus_1:
            raise ValueError(
                f"states [N, T+1, n] and controls [N, T, m] disagree: {tuple(states.shape)} vs {tuple(controls.shape)}"
            )
        if controls.shape[1] < 1 or states.shape[2] < 1 or controls.shape[2] < 1:
            raise ValueError(
                f"need T >= 1 steps and non-empty state/control dims, got states {tuple(states.shape)}, "
                f"controls {tuple(controls.shape)}"
            )
        T = controls.shape[1]
        if lengths is None:
            lengths = torch.full((n_ep,), T, dtype=torch.int64)
        else:
            lengths = _as_tensor(lengths, "lengths")
            if lengths.is_floating_point() or lengths.dtype == torch.bool or lengths.is_complex():
                raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
            lengths = lengths.to(torch.int64).cpu()
        if lengths.shape != (n_ep,):
            raise ValueError(f"lengths must have shape [N={n_ep}], got {tuple(lengths.shape)}")
        if n_ep and (lengths.min() < 0 or lengths.max() > T):
            raise ValueError(f"lengths must lie in [0, T={T}], got min {int(lengths.min())}, max {int(lengths.max())}")
        dt = float(dt)
        if not math.isfinite(dt) or dt <= 0:
            raise ValueError(f"dt must be a positive, finite number of seconds, got {dt}")
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
        try:
            meta = json.loads(json.dumps(meta, allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ValueError(f"meta must be JSON-serialisable (plain numbers, strings, lists, dicts): {err}") from err

        lens = lengths.to(states.device)
        s_valid = torch.arange(t_plus_1, device=states.device)[None, :] <= lens[:, None]
        c_valid = torch.arange(T, device=states.device)[None, :] < lens[:, None]
        bad_states = (~torch.isfinite(states).all(-1) & s_valid).any(-1)
        bad_controls = (~torch.isfinite(controls).all(-1) & c_valid).any(-1)
        bad = bad_states | bad_controls
        if bad.any():
            first = int(torch.nonzero(bad)[0, 0])
            raise ValueError(
                f"NaN or inf inside the valid part of episode {first} (length {int(lengths[first])}); "
                "pass lengths so padding is excluded"
            )

        self.states = states
        self.controls = controls
        self.lengths = lengths
        self.dt = dt
        self.meta = meta

    # --- sizes ------------------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        """Number of episodes N."""
        return int(self.states.shape[0])

    @property
    def num_transitions(self) -> int:
        """Total number of valid transitions (sum of ``lengths``)."""
        return int(self.lengths.sum())

    @property
    def max_steps(self) -> int:
        """Padded episode length T (transitions)."""
        return int(self.controls.shape[1])

    @property
    def state_dim(self) -> int:
        return int(self.states.shape[-1])

    @property
    def control_dim(self) -> int:
        return int(self.controls.shape[-1])

    @property
    def dtype(self) -> torch.dtype:
        return self.states.dtype

    def __len__(self) -> int:
        return self.num_episodes

    def __repr__(self) -> str:
        return (
            f"Trajectories(episodes={self.num_episodes}, transitions={self.num_transitions}, "
            f"T={self.max_steps}, state_dim={self.state_dim}, control_dim={self.control_dim}, dt={self.dt}, "
            f"dtype={self.dtype})"
        )

    def _replace(self, states, controls, lengths) -> Trajectories:
        return Trajectories(states, controls, lengths, dt=self.dt, meta=self.meta)

    def __getitem__(self, idx) -> Trajectories:
        """Select episodes: an int (kept as a 1-episode Trajectories), slice, int sequence or bool mask."""
        n = self.num_episodes
        if isinstance(idx, (int, np.integer)) and not isinstance(idx, bool):
            i = int(idx)
            if not -n <= i < n:
                raise IndexError(f"episode index {i} out of range for {n} episodes")
            index = torch.tensor([i % n])
        elif isinstance(idx, slice):
            index = torch.arange(n)[idx]
        else:
            index = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
            if index.dtype == torch.bool:
                if index.shape != (n,):
                    raise IndexError(f"boolean episode mask must have shape [{n}], got {tuple(index.shape)}")
                index = torch.nonzero(index).flatten()
            elif index.numel() == 0:
                index = torch.zeros(0, dtype=torch.int64)
            elif index.is_floating_point() or index.ndim != 1:
                raise IndexError(f"episodes are selected by int, slice, 1-D int sequence or bool mask, got {idx!r}")
            if index.numel() and (index.min() < -n or index.max() >= n):
                raise IndexError(f"episode indices out of range for {n} episodes")
            index = index.to(torch.int64) % max(n, 1)
        dev = self.states.device
        return self._replace(self.states[index.to(dev)], self.controls[index.to(dev)], self.lengths[index])

    def to(self, *args, **kwargs) -> Trajectories:
        """Convert states and controls like ``Tensor.to`` (dtype and/or device); lengths stay int64."""
        states = self.states.to(*args, **kwargs)
        controls = self.controls.to(*args, **kwargs)
        return self._replace(states, controls, self.lengths)

    # --- training views ---------------------------------------------------------------------------

    def windows(self, horizon: int) -> dict[str, torch.Tensor]:
        """All windows of ``horizon`` transitions lying inside one episode.

        Args:
            horizon: H >= 1 transitions per window.

        Returns:
            ``{"states": [W, H+1, n], "controls": [W, H, m]}``: for each episode of length L, the
            ``L - H + 1`` windows starting at steps 0..L-H (episode order, then start order).

        Raises:
            ValueError: if ``horizon`` is not a positive int or no episode is long enough.
        """
        if not isinstance(horizon, (int, np.integer)) or isinstance(horizon, bool) or horizon < 1:
            raise ValueError(f"horizon must be a positive int, got {horizon!r}")
        H = int(horizon)
        longest = int(self.lengths.max()) if self.num_episodes else 0
        if H > longest:
            raise ValueError(f"no window of horizon {H} fits: the longest episode has {longest} transitions")
        s = self.states.unfold(1, H + 1, 1).permute(0, 1, 3, 2)  # [N, T-H+1, H+1, n]
        c = self.controls.unfold(1, H, 1).permute(0, 1, 3, 2)  # [N, T-H+1, H, m]
        starts = torch.arange(s.shape[1])
        valid = (starts[None, :] + H <= self.lengths[:, None]).to(self.states.device)
        return {"states": s[valid].contiguous(), "controls": c[valid].contiguous()}

    def split(self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple[Trajectories, ...]:
        """Partition the episodes at random into parts of the given fractions (e.g. train, val, test).

        Counts are rounded by largest remainder so they sum to N; every part with a positive fraction
        gets at least one episode (taken from the largest part). Within a part, episodes keep their order.

        Args:
            fractions: non-negative, summing to 1.
            seed: seed of the permutation.

        Returns:
            one Trajectories per fraction.
        """
        fr = np.asarray(fractions, dtype=np.float64)
        if fr.ndim != 1 or fr.size < 1 or not np.isfinite(fr).all() or (fr < 0).any() or abs(fr.sum() - 1) > 1e-6:
            raise ValueError(f"fractions must be non-negative numbers summing to 1, got {fractions!r}")
        n = self.num_episodes
        raw = fr * n
        counts = np.floor(raw).astype(np.int64)
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[: n - counts.sum()]] += 1
        for k in np.nonzero((fr > 0) & (counts == 0))[0]:
            donor = int(np.argmax(counts))
            if counts[donor] <= 1:
                raise ValueError(f"cannot split {n} episodes into {int((fr > 0).sum())} non-empty parts {fractions!r}")
            counts[donor] -= 1
            counts[k] += 1
        perm = np.random.default_rng(seed).permutation(n)
        parts, start = [], 0
        for c in counts:
            parts.append(self[np.sort(perm[start : start + c])])
            start += c
        return tuple(parts)

    # --- files ------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write a compressed ``.npz`` file atomically (temp file in the same directory + ``os.replace``).

        The file holds ``physwm_schema`` (int), ``states``, ``controls``, ``lengths``, ``dt`` and
        ``meta`` (a JSON string); it is written to exactly ``path`` (no suffix is added).

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is False.
            FileNotFoundError: if the directory does not exist.
        """
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory; give a file name such as data.npz")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise FileNotFoundError(f"directory {parent} does not exist")

        def write(f) -> None:
            np.savez_compressed(
                f,
                physwm_schema=np.asarray(SCHEMA_VERSION, dtype=np.int64),
                states=self.states.detach().cpu().numpy(),
                controls=self.controls.detach().cpu().numpy(),
                lengths=self.lengths.numpy(),
                dt=np.asarray(self.dt, dtype=np.float64),
                meta=np.asarray(json.dumps(self.meta)),
            )

        atomic_write(path, write, overwrite=overwrite)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectories:
        """Read a file written by :meth:`save` (dtype as saved).

        Raises:
            FileNotFoundError: no such file.
            ValueError: naming the problem: not an .npz / corrupt or truncated, missing or unknown
                ``physwm_schema``, missing arrays, inconsistent shapes.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no Trajectories file at {path}")
        try:
            z = np.load(path, allow_pickle=False)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
            raise ValueError(f"{path}: not a readable physwm .npz file (corrupt or truncated?): {err}") from err
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: a single .npy array, not a physwm .npz archive")
        try:
            with z:
                arrays = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError) as err:
            raise ValueError(f"{path}: not a readable physwm .npz file (corrupt or truncated?): {err}") from err
        if "physwm_schema" not in arrays:
            raise ValueError(
                f"{path}: no 'physwm_schema' key, so not a physwm Trajectories file (keys: {sorted(arrays)})"
            )
        schema = arrays["physwm_schema"]
        if schema.shape != () or schema.dtype.kind not in "iu" or int(schema) != SCHEMA_VERSION:
            raise ValueError(
                f"{path}: physwm_schema {schema.tolist()!r} is not supported; this physwm reads schema {SCHEMA_VERSION}"
            )
        missing = [k for k in _NPZ_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}")
        try:
            meta = json.loads(str(arrays["meta"]))
            dt = float(arrays["dt"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: bad 'meta' or 'dt' entry: {err}") from err
        try:
            return cls(
                torch.from_numpy(arrays["states"]),
                torch.from_numpy(arrays["controls"]),
                torch.from_numpy(arrays["lengths"]),
                dt=dt,
                meta=meta,
            )
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: inconsistent contents: {err}") from err

    # --- reporting --------------------------------------------------------------------------------

    def summary(self) -> str:
        """A few lines: sizes, episode lengths, per-dimension ranges, where the data came from."""
        L = self.lengths.double()
        lines = [
            f"Trajectories: {self.num_episodes} episodes, {self.num_transitions} transitions, dt = {self.dt} s, "
            f"{str(self.dtype).replace('torch.', '')}",
        ]
        if self.num_episodes:
            lines.append(
                f"  episode length: min {int(L.min())}, mean {float(L.mean()):.1f}, max {int(L.max())} "
                f"(padded to {self.max_steps})"
            )
        src = []
        for key in ("env_id", "policy", "seed"):
            if key in self.meta:
                v = self.meta[key]
                src.append(f"{key}: {v.get('name', v) if isinstance(v, dict) else v}")
        if src:
            lines.append("  " + ", ".join(src))
        if self.num_transitions:
            names = _CARTPOLE_STATE_NAMES if self.state_dim == 4 else tuple(f"s{i}" for i in range(self.state_dim))
            s_valid = torch.arange(self.max_steps + 1)[None, :] <= self.lengths[:, None]
            c_valid = torch.arange(self.max_steps)[None, :] < self.lengths[:, None]
            s = self.states.detach().cpu()[s_valid]
            c = self.controls.detach().cpu()[c_valid]
            lines.append(f"  {'':<10} {'min':>10} {'max':>10} {'mean':>10} {'std':>10}")
            for name, col in list(zip(names, s.T)) + [(f"u{i}", col) for i, col in enumerate(c.T)]:
                lines.append(
                    f"  {name:<10} {float(col.min()):>10.4g} {float(col.max()):>10.4g} "
                    f"{float(col.mean()):>10.4g} {float(col.std(unbiased=False)):>10.4g}"
                )
        return "\n".join(lines)


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a tensor or array, got {type(value).__name__}") from err


# --- policies -------------------------------------------------------------------------------------


class Policy:
    """A data-collection policy: ``policy(state, rng) -> force`` (N, float).

    ``state`` is the exact float64 CartPole state ``[4]``; ``rng`` is the ``numpy.random.Generator``
    that :func:`collect` seeds. :func:`collect` first calls :meth:`bind` with the environment's
    constants, so a policy can fill in what it was not given (force bound, model for LQR).
    Any plain callable ``f(state, rng) -> float`` works with :func:`collect` too.
    """

    name = "policy"

    def bind(self, params: CartPoleParams) -> Policy:
        """A copy ready for an environment with constants ``params`` (default: self)."""
        return self

    def __call__(self, state: np.ndarray, rng: np.random.Generator) -> float:  # pragma: no cover
        raise NotImplementedError

    def config(self) -> dict:
        """JSON-able description stored in the data's meta."""
        return {"name": self.name}


class RandomPolicy(Policy):
    """Gymnasium's random discrete policy: ``+force_mag`` or ``-force_mag`` with equal probability.

    Args:
        force_mag: force magnitude, N; ``None`` takes the environment's.
    """

    name = "random"

    def __init__(self, force_mag: float | None = None):
        self.force_mag = None if force_mag is None else _positive(force_mag, "force_mag")

    def bind(self, params: CartPoleParams) -> RandomPolicy:
        return self if self.force_mag is not None else type(self)(float(params.force_mag))

    def __call__(self, state, rng):
        fm = _bound(self.force_mag)
        return fm if rng.integers(2) == 1 else -fm

    def config(self) -> dict:
        return {"name": self.name, "force_mag": self.force_mag}


class UniformPolicy(RandomPolicy):
    """A force drawn uniformly from ``[-force_mag, force_mag]`` every step (N)."""

    name = "uniform"

    def __call__(self, state, rng):
        fm = _bound(self.force_mag)
        return float(rng.uniform(-fm, fm))


class LQRPolicy(Policy):
    """Noisy LQR that balances the pole upright: ``u = -K x + noise_std * N(0, 1)`` (N).

    The linearisation about upright rest (``x = 0``, ``u = 0``) is taken from the physwm
    :class:`~physwm.systems.CartPole` field itself with ``torch.autograd.functional.jacobian`` (one
    source of truth), discretised exactly for a zero-order-hold control over ``dt`` (matrix
    exponential), and the discrete algebraic Riccati equation is solved with
    ``scipy.linalg.solve_discrete_are``. The feedback uses theta wrapped to (-pi, pi]. On a discrete
    environment :func:`collect` applies the sign of ``u`` (bang-bang, +-force_mag).

    Args:
        params: constants to linearise; ``None`` takes the environment's (at :meth:`bind`).
        Q: state cost, ``[4, 4]`` or a 4-vector diagonal (default diag(1, 1, 10, 1)).
        R: control cost, scalar (default 0.1).
        noise_std: standard deviation of the Gaussian exploration noise added to ``u``, N.

    Attributes (after bind): ``A [4, 4]``, ``B [4, 1]`` (continuous), ``Ad``, ``Bd`` (discrete),
    ``P`` (Riccati solution), ``K [1, 4]`` (gain), numpy float64.
    """

    name = "lqr"

    def __init__(
        self,
        params: CartPoleParams | None = None,
        Q: Sequence | np.ndarray | None = None,
        R: float = 0.1,
        noise_std: float = 0.0,
    ):
        self.params = params
        Q = np.diag([1.0, 1.0, 10.0, 1.0]) if Q is None else np.asarray(Q, dtype=np.float64)
        if Q.shape == (4,):
            Q = np.diag(Q)
        if Q.shape != (4, 4) or not np.isfinite(Q).all() or not np.allclose(Q, Q.T):
            raise ValueError(f"Q must be a symmetric finite [4, 4] matrix or a 4-vector diagonal, got shape {Q.shape}")
        if np.linalg.eigvalsh(Q).min() < 0:
            raise ValueError("Q must be positive semi-definite")
        self.Q = Q
        self.R = _positive(R, "R")
        noise_std = float(noise_std)
        if not math.isfinite(noise_std) or noise_std < 0:
            raise ValueError(f"noise_std must be a finite number >= 0 (N), got {noise_std}")
        self.noise_std = noise_std
        self.K: np.ndarray | None = None
        if params is not None:
            self._design(params)

    def _design(self, params: CartPoleParams) -> None:
        import scipy.linalg

        A, B = _linearize_upright(params)
        dt = float(params.tau)
        n, m = B.shape
        M = np.zeros((n + m, n + m))
        M[:n, :n], M[:n, n:] = A, B
        E = scipy.linalg.expm(M * dt)
        Ad, Bd = E[:n, :n], E[:n, n:]
        R = np.array([[self.R]])
        P = scipy.linalg.solve_discrete_are(Ad, Bd, self.Q, R)
        K = np.linalg.solve(R + Bd.T @ P @ Bd, Bd.T @ P @ Ad)
        self.params, self.A, self.B, self.Ad, self.Bd, self.P, self.K = params, A, B, Ad, Bd, P, K

    def bind(self, params: CartPoleParams) -> LQRPolicy:
        if self.K is not None:
            return self
        return LQRPolicy(params, Q=self.Q, R=self.R, noise_std=self.noise_std)

    def __call__(self, state, rng):
        if self.K is None:
            raise RuntimeError("LQRPolicy has no gain yet: give params or call bind(params) first")
        s = np.asarray(state, dtype=np.float64).copy()
        s[2] = (s[2] + math.pi) % (2 * math.pi) - math.pi
        u = -float(self.K[0] @ s)
        if self.noise_std > 0:
            u += self.noise_std * float(rng.standard_normal())
        return u

    def config(self) -> dict:
        return {
            "name": self.name,
            "Q": self.Q.tolist(),
            "R": self.R,
            "noise_std": self.noise_std,
            "K": None if self.K is None else self.K.tolist(),
        }


def _linearize_upright(params: CartPoleParams) -> tuple[np.ndarray, np.ndarray]:
    """``A = df/dx``, ``B = df/du`` of the CartPole field at upright rest, float64 numpy."""
    field = CartPole(CartPoleParams.from_dict(params.to_dict()))
    x0 = torch.zeros(4, dtype=torch.float64)
    u0 = torch.zeros(1, dtype=torch.float64)
    A, B = torch.autograd.functional.jacobian(lambda x, u: field(x, u), (x0, u0))
    return A.numpy(), B.numpy()


def _positive(v: Any, name: str) -> float:
    v = float(v)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {v}")
    return v


def _bound(force_mag: float | None) -> float:
    if force_mag is None:
        raise RuntimeError("the policy has no force_mag: give one or call bind(params) first")
    return force_mag


POLICIES: dict[str, type[Policy]] = {"random": RandomPolicy, "uniform": UniformPolicy, "lqr": LQRPolicy}


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Build a policy by name: ``"random"``, ``"uniform"`` or ``"lqr"`` (kwargs go to its class).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; valid: {sorted(POLICIES)}")
    return POLICIES[name](**kwargs)


# --- collection -----------------------------------------------------------------------------------


def _env_params(unwrapped) -> CartPoleParams:
    from .envs import CartPoleEnv

    if isinstance(unwrapped, CartPoleEnv):
        return unwrapped.params
    names = ("gravity", "masscart", "masspole", "length", "force_mag", "tau")
    if all(hasattr(unwrapped, k) for k in names) and hasattr(unwrapped, "state"):
        return CartPoleParams(**{k: float(getattr(unwrapped, k)) for k in names})
    raise ValueError(
        f"collect needs a CartPole environment (physwm/CartPole-v0 or gymnasium's CartPole-v1) exposing the "
        f"exact state as env.unwrapped.state; {type(unwrapped).__name__} is not one"
    )


def _env_config(env, unwrapped, params: CartPoleParams) -> dict:
    from .envs import CartPoleEnv

    spec = getattr(env, "spec", None)
    cfg: dict[str, Any] = {
        "env_id": spec.id if spec is not None else type(unwrapped).__name__,
        "max_episode_steps": None if spec is None else spec.max_episode_steps,
        "params": params.to_dict(),
    }
    if isinstance(unwrapped, CartPoleEnv):
        cfg["integrator"] = repr(unwrapped.integrator)
        cfg["terminate"] = unwrapped.terminate
    else:
        cfg["integrator"] = str(getattr(unwrapped, "kinematics_integrator", "unknown"))
        cfg["terminate"] = True
    return cfg


def _box(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(4, float(arr))
    if arr.shape != (4,) or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a finite scalar or 4-vector [x, x_dot, theta, theta_dot], got {value!r}")
    return arr


def collect(
    env,
    policy: Policy | Callable[[np.ndarray, np.random.Generator], float] | str,
    episodes: int,
    max_steps: int,
    seed: int,
    start_low: float | Sequence[float] | None = None,
    start_high: float | Sequence[float] | None = None,
    progress: bool = True,
) -> Trajectories:
    """Run ``policy`` in a CartPole environment and record exact states and applied forces.

    Args:
        env: a gymnasium env (or id string, made with ``gymnasium.make``): ``"CartPole-v1"`` (discrete
            actions: the policy's force ``u`` becomes action 1 (+force_mag) if ``u >= 0`` else 0
            (-force_mag)) or ``"physwm/CartPole-v0"`` (continuous; the force actually applied,
            after clipping and float32 rounding, is recorded).
        policy: a :class:`Policy`, a name for :func:`make_policy`, or a callable
            ``f(state float64 [4], rng) -> force N``.
        episodes: number of episodes N >= 1.
        max_steps: maximum transitions per episode T >= 1; episodes end earlier on termination or
            the env's time limit.
        seed: seeds the env (first reset), the policy's generator and the start states, from
            independent streams (``numpy.random.SeedSequence(seed).spawn``).
        start_low, start_high: optional box (scalars or 4-vectors) of uniformly random start states,
            given to physwm envs as ``reset(options={"state": ...})`` and written to
            ``env.unwrapped.state`` after reset for gymnasium's CartPole. Default: the env's own reset.
        progress: show a tqdm progress bar over episodes.

    Returns:
        float64 :class:`Trajectories` with ``states [N, T+1, 4]`` (``env.unwrapped.state``),
        ``controls [N, T, 1]`` (N), ``lengths [N]``, ``dt = params.tau`` and ``meta`` (env id and
        config, policy, seed, start box, physwm version).
    """
    import gymnasium
    from gymnasium import spaces
    from tqdm.auto import tqdm

    from . import __version__
    from .envs import CartPoleEnv

    if isinstance(env, str):
        env = gymnasium.make(env)
    for name, v in (("episodes", episodes), ("max_steps", max_steps)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if (start_low is None) != (start_high is None):
        raise ValueError("give both start_low and start_high, or neither")
    box = None
    if start_low is not None:
        box = (_box(start_low, "start_low"), _box(start_high, "start_high"))
        if (box[0] > box[1]).any():
            raise ValueError(f"start_low {box[0].tolist()} must be <= start_high {box[1].tolist()}")

    unwrapped = env.unwrapped
    params = _env_params(unwrapped)
    force_mag = float(unwrapped.force_mag)
    space = env.action_space
    if isinstance(space, spaces.Discrete) and space.n == 2:
        discrete = True
    elif isinstance(space, spaces.Box) and space.shape == (1,):
        discrete = False
    else:
        raise ValueError(f"collect supports Discrete(2) or Box(shape=(1,)) action spaces, got {space}")

    if isinstance(policy, str):
        policy = make_policy(policy)
    if isinstance(policy, Policy):
        policy = policy.bind(params)
        policy_cfg = policy.config()
    elif callable(policy):
        policy_cfg = {"name": getattr(policy, "__name__", type(policy).__name__)}
    else:
        raise ValueError(f"policy must be a Policy, a policy name {sorted(POLICIES)} or a callable")

    env_ss, policy_ss, start_ss = np.random.SeedSequence(int(seed)).spawn(3)
    env_seed = int(env_ss.generate_state(1)[0])
    policy_rng = np.random.default_rng(policy_ss)
    start_rng = np.random.default_rng(start_ss)

    T = int(max_steps)
    states = np.full((episodes, T + 1, 4), np.nan)
    controls = np.full((episodes, T, 1), np.nan)
    lengths = np.zeros(episodes, dtype=np.int64)
    bar = tqdm(range(episodes), desc="collect", unit="ep", disable=not progress)
    for ep in bar:
        reset_seed = env_seed if ep == 0 else None
        start = None if box is None else start_rng.uniform(box[0], box[1])
        if start is not None and isinstance(unwrapped, CartPoleEnv):
            env.reset(seed=reset_seed, options={"state": start})
        else:
            env.reset(seed=reset_seed)
            if start is not None:
                unwrapped.state = start.copy()
        states[ep, 0] = _read_state(unwrapped)
        for t in range(T):
            u = float(policy(states[ep, t].copy(), policy_rng))
            if not math.isfinite(u):
                raise ValueError(f"the policy returned a non-finite force {u} at episode {ep}, step {t}")
            if discrete:
                action = 1 if u >= 0 else 0
                force = force_mag if action == 1 else -force_mag
                _, _, terminated, truncated, info = env.step(action)
            else:
                action = np.asarray([u], dtype=space.dtype)
                _, _, terminated, truncated, info = env.step(action)
                force = float(info["force"]) if "force" in info else float(np.clip(action, space.low, space.high)[0])
            controls[ep, t, 0] = force
            states[ep, t + 1] = _read_state(unwrapped)
            lengths[ep] = t + 1
            if terminated or truncated:
                break
        if progress:
            bar.set_postfix(mean_len=f"{lengths[: ep + 1].mean():.1f}")
    bar.close()

    meta = {
        **_env_config(env, unwrapped, params),
        "policy": policy_cfg,
        "seed": int(seed),
        "episodes": int(episodes),
        "max_steps": T,
        "start_low": None if box is None else box[0].tolist(),
        "start_high": None if box is None else box[1].tolist(),
        "physwm_version": __version__,
    }
    return Trajectories(
        torch.from_numpy(states), torch.from_numpy(controls), torch.from_numpy(lengths), dt=params.tau, meta=meta
    )


def _read_state(unwrapped) -> np.ndarray:
    s = np.asarray(unwrapped.state, dtype=np.float64)
    if s.shape != (4,):
        raise ValueError(f"env.unwrapped.state must have shape (4,), got {s.shape}")
    return s
