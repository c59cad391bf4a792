"""The :class:`Trajectories` container: episodes of states and controls, their windows, splits and files.

:class:`Trajectories` holds ``N`` episodes padded to a common length ``T``: ``states [N, T+1, n]``,
``controls [N, T, m]`` (physical units) and ``lengths [N]``, the number of valid transitions of each
episode (entries beyond are NaN). It cuts training windows that never cross an episode's end
(:meth:`Trajectories.windows`, through :func:`windows`, the one window extraction of the package), splits
by episode (:meth:`Trajectories.split`) and saves to / loads from ``.npz`` files atomically, with a
schema version. :class:`EpisodeData` is what training and evaluation accept: Trajectories or a plain dict
of arrays, checked against a model's sizes.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checks import check_dt, positive_int
from ..files import atomic_write

__all__ = ["Trajectories", "EpisodeData", "windows", "SCHEMA_VERSION"]

#: Version of the .npz layout written by :meth:`Trajectories.save` (key ``physwm_schema``). Version 2 adds
#: the optional ``clean_states`` array (the exact states behind noisy observations); version 1 files are read.
SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)

_NPZ_KEYS = ("physwm_schema", "states", "controls", "lengths", "dt", "meta")


def windows(
    states: torch.Tensor, controls: torch.Tensor, lengths: torch.Tensor | None, horizon: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """All windows of ``horizon`` transitions inside the valid part of each episode.

    Args:
        states: ``[N, T+1, n]``; controls: ``[N, T, m]``.
        lengths: ``[N]`` valid transitions per episode (``None``: all ``T``).
        horizon: H >= 1.

    Returns:
        ``(states [W, H+1, n], controls [W, H, m])``, contiguous, in episode order then start order (empty
        if no episode is long enough).
    """
    N, T = controls.shape[:2]
    n, m = states.shape[-1], controls.shape[-1]
    if horizon > T:
        return states.new_zeros((0, horizon + 1, n)), controls.new_zeros((0, horizon, m))
    ws = states.unfold(1, horizon + 1, 1).permute(0, 1, 3, 2)  # [N, T-H+1, H+1, n]
    wc = controls.unfold(1, horizon, 1).permute(0, 1, 3, 2)[:, : ws.shape[1]]  # [N, T-H+1, H, m]
    if lengths is None:
        W = ws.shape[0] * ws.shape[1]  # explicit: a -1 is ambiguous for controls of width m = 0
        return ws.reshape(W, horizon + 1, n).contiguous(), wc.reshape(W, horizon, m).contiguous()
    start = torch.arange(ws.shape[1])
    valid = (start[None, :] + horizon <= lengths.cpu()[:, None].clamp(max=T)).to(states.device)
    return ws[valid].contiguous(), wc[valid].contiguous()


class Trajectories:
    """Episodes of states and controls, padded to a common length.

    Args:
        states: ``[N, T+1, n]`` float tensor (numpy arrays are converted, dtype kept), physical units.
        controls: ``[N, T, m]`` controls held over each step (forces in N), same dtype and device;
            ``m = 0`` (or ``None``, read as ``[N, T, 0]``) for an autonomous system.
        lengths: int ``[N]``, valid transitions per episode, each in ``[0, T]`` (default: all ``T``).
            Episode ``i`` is ``states[i, :lengths[i] + 1]``, ``controls[i, :lengths[i]]``; entries
            beyond are padding (NaN from :func:`collect`) and are never used.
        dt: control period, s.
        meta: JSON-serialisable dict (env id, params, policy, seed, physwm version, ...); stored as a
            plain JSON copy. Noisy data records its noise under ``meta["noise"]`` (see :attr:`obs_noise`).
        clean_states: for noisy data, the exact states ``[N, T+1, n]`` behind the observations ``states``
            (same shape, dtype and device), kept for scoring; ``None`` for exact data.

    Raises:
        ValueError: naming the problem for wrong shapes, dtypes, lengths, NaN/inf inside the valid
            part of an episode, a bad ``dt`` or non-JSON ``meta``.
    """

    def __init__(
        self,
        states: torch.Tensor | np.ndarray,
        controls: torch.Tensor | np.ndarray | None,
        lengths: torch.Tensor | np.ndarray | Sequence[int] | None = None,
        dt: float = 0.02,
        meta: dict | None = None,
        clean_states: torch.Tensor | np.ndarray | None = None,
    ):
        states = _as_tensor(states, "states")
        controls = _no_controls(states) if controls is None else _as_tensor(controls, "controls")
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
        if controls.shape[1] < 1 or states.shape[2] < 1:
            raise ValueError(
                f"need T >= 1 steps and a non-empty state, got states {tuple(states.shape)}, "
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
        dt = check_dt(dt)
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

        if clean_states is not None:
            clean_states = _as_tensor(clean_states, "clean_states")
            if clean_states.shape != states.shape or clean_states.dtype != states.dtype:
                raise ValueError(
                    f"clean_states must have the shape and dtype of states {tuple(states.shape)} {states.dtype}, "
                    f"got {tuple(clean_states.shape)} {clean_states.dtype}"
                )
            clean_states = clean_states.to(states.device)
            if (~torch.isfinite(clean_states).all(-1) & s_valid).any():
                raise ValueError("NaN or inf inside the valid part of clean_states")

        self.states = states
        self.controls = controls
        self.lengths = lengths
        self.dt = dt
        self.meta = meta
        self.clean_states = clean_states

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

    @property
    def obs_noise(self) -> np.ndarray | None:
        """The observation noise the data records (``meta["noise"]["obs_std"]``: standard deviations ``[n]`` in
        physical units), or ``None`` when it records none."""
        std = (self.meta.get("noise") or {}).get("obs_std")
        return None if std is None else np.asarray(std, dtype=np.float64)

    def _replace(self, states, controls, lengths, clean=None) -> Trajectories:
        return Trajectories(states, controls, lengths, dt=self.dt, meta=self.meta, clean_states=clean)

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
        clean = None if self.clean_states is None else self.clean_states[index.to(dev)]
        return self._replace(self.states[index.to(dev)], self.controls[index.to(dev)], self.lengths[index], clean)

    def to(self, *args, **kwargs) -> Trajectories:
        """Convert states and controls like ``Tensor.to`` (dtype and/or device); lengths stay int64."""
        states = self.states.to(*args, **kwargs)
        controls = self.controls.to(*args, **kwargs)
        clean = None if self.clean_states is None else self.clean_states.to(*args, **kwargs)
        return self._replace(states, controls, self.lengths, clean)

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
        H = positive_int(horizon, "horizon")
        longest = int(self.lengths.max()) if self.num_episodes else 0
        if H > longest:
            raise ValueError(f"no window of horizon {H} fits: the longest episode has {longest} transitions")
        s, c = windows(self.states, self.controls, self.lengths, H)
        return {"states": s, "controls": c}

    def head(self, transitions: int) -> Trajectories:
        """The first ``transitions`` transitions (whole episodes in order, the last one cut short).

        Raises:
            ValueError: if the data holds fewer transitions.
        """
        n = positive_int(transitions, "transitions")
        total = self.num_transitions
        if n > total:
            raise ValueError(f"asked for {n} transitions but the data holds only {total}")
        cum = torch.cumsum(self.lengths, 0)
        k = int((cum < n).sum()) + 1
        sub = self[:k]
        lengths = sub.lengths.clone()
        lengths[-1] -= int(cum[k - 1]) - n
        return sub._replace(sub.states, sub.controls, lengths, sub.clean_states)

    def valid_states(self) -> torch.Tensor:
        """Every valid state (NaN padding dropped), ``[sum(lengths + 1), n]``."""
        mask = torch.arange(self.max_steps + 1)[None, :] <= self.lengths[:, None]
        return self.states[mask.to(self.states.device)]

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

        The file holds ``physwm_schema`` (int), ``states``, ``controls``, ``lengths``, ``dt``, ``meta`` (a JSON
        string) and, for noisy data, ``clean_states``; it is written to exactly ``path`` (no suffix is added).

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

        extra = {} if self.clean_states is None else {"clean_states": self.clean_states.detach().cpu().numpy()}

        def write(f) -> None:
            np.savez_compressed(
                f,
                physwm_schema=np.asarray(SCHEMA_VERSION, dtype=np.int64),
                states=self.states.detach().cpu().numpy(),
                controls=self.controls.detach().cpu().numpy(),
                lengths=self.lengths.numpy(),
                dt=np.asarray(self.dt, dtype=np.float64),
                meta=np.asarray(json.dumps(self.meta)),
                **extra,
            )

        atomic_write(path, write, overwrite=overwrite)
        return path

    def to_minari(self, dataset_id: str, *, overwrite: bool = False, description: str | None = None) -> Any:
        """Write these episodes as a local Minari dataset (``pip install "physwm[minari]"``); returns it.

        See :func:`physwm.data.minari.to_minari` (the optional extra is imported on use).
        """
        from .minari import to_minari  # the optional extra's module, imported on use

        return to_minari(self, dataset_id, overwrite=overwrite, description=description)

    @classmethod
    def from_minari(cls, dataset_id: str, *, dt: float | None = None) -> Trajectories:
        """Read a local Minari dataset (states from its observations); see :func:`physwm.data.minari.from_minari`."""
        from .minari import from_minari  # the optional extra's module, imported on use

        return from_minari(dataset_id, dt=dt)

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
        if schema.shape != () or schema.dtype.kind not in "iu" or int(schema) not in READABLE_SCHEMAS:
            raise ValueError(
                f"{path}: physwm_schema {schema.tolist()!r} is not supported; this physwm reads schemas "
                f"{list(READABLE_SCHEMAS)}"
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
                clean_states=torch.from_numpy(arrays["clean_states"]) if "clean_states" in arrays else None,
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
            names = self.meta.get("state_names") or [f"s{i}" for i in range(self.state_dim)]
            cnames = self.meta.get("control_names") or [f"u{i}" for i in range(self.control_dim)]
            s_valid = torch.arange(self.max_steps + 1)[None, :] <= self.lengths[:, None]
            c_valid = torch.arange(self.max_steps)[None, :] < self.lengths[:, None]
            s = self.states.detach().cpu()[s_valid]
            c = self.controls.detach().cpu()[c_valid]
            lines.append(f"  {'':<10} {'min':>10} {'max':>10} {'mean':>10} {'std':>10}")
            for name, col in list(zip(names, s.T)) + list(zip(cnames, c.T)):
                lines.append(
                    f"  {name:<10} {float(col.min()):>10.4g} {float(col.max()):>10.4g} "
                    f"{float(col.mean()):>10.4g} {float(col.std(unbiased=False)):>10.4g}"
                )
        return "\n".join(lines)


def _no_controls(states: torch.Tensor) -> torch.Tensor:
    """The controls ``[N, T, 0]`` of an autonomous system's ``states [N, T+1, n]``."""
    if states.ndim != 3:
        raise ValueError(f"states must have shape [N, T+1, n], got {tuple(states.shape)}")
    return states.new_zeros((states.shape[0], max(states.shape[1] - 1, 0), 0))


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a tensor or array, got {type(value).__name__}") from err


class EpisodeData:
    """Episodes for training or evaluating a model: a :class:`Trajectories` or a dict of arrays, checked.

    Args:
        data: a :class:`Trajectories`, or a dict ``{"states": [N, T+1, n], "controls": [N, T, m]}`` with
            optional ``"lengths": [N]`` valid transitions per NaN-padded episode (``"controls"`` may be
            missing or ``None`` for an autonomous system).
        name: what the data is called in error messages (``"train"``, ``"val"``).
        state_dim, control_dim: the model's sizes, which the data must have.
        owner: the model's class name, for error messages.
        dt: the model's control period (s); data that records another ``dt`` (a Trajectories, or a dict with
            a ``"dt"`` entry) is refused: a model of one control period fitted to data of another learns
            wrong dynamics without a word.

    Raises:
        TypeError: ``data`` is neither.
        ValueError: naming ``name``: wrong dimensions, shapes that disagree, no data, another ``dt``.
    """

    def __init__(
        self, data: Any, name: str, state_dim: int, control_dim: int, owner: str = "the model",
        dt: float | None = None,
    ):  # fmt: skip
        self.name = name
        if isinstance(data, Mapping):
            if "states" not in data or ("controls" not in data and control_dim > 0):
                raise ValueError(
                    f"{name} data as a dict needs 'states' [N, T+1, n] and 'controls' [N, T, m], "
                    f"got keys {sorted(data)}"
                )
            self.source = None
            states, controls, lengths = data["states"], data.get("controls"), data.get("lengths")
            if controls is None:
                controls = _no_controls(_as_tensor(states, f"{name} states"))
            self.dt = data.get("dt")
        elif isinstance(data, Trajectories):
            self.source = data
            states, controls, lengths, self.dt = data.states, data.controls, data.lengths, data.dt
        else:
            raise TypeError(
                f"{name} data must be a physwm.data.Trajectories or a dict with 'states' and 'controls', "
                f"got {type(data).__name__}"
            )
        self.states = _as_tensor(states, f"{name} states")
        self.controls = _as_tensor(controls, f"{name} controls")
        self.lengths = None if lengths is None else _as_tensor(lengths, f"{name} lengths").long().cpu()
        s, c, n, m = self.states, self.controls, state_dim, control_dim
        if s.ndim != 3:
            raise ValueError(f"{name} states must have shape [N, T+1, {n}], got {tuple(s.shape)}")
        if c.ndim != 3:
            raise ValueError(f"{name} controls must have shape [N, T, {m}], got {tuple(c.shape)}")
        if s.shape[-1] != n:
            raise ValueError(f"{name} states have dimension {s.shape[-1]} but {owner} expects state_dim={n}")
        if c.shape[-1] != m:
            raise ValueError(f"{name} controls have dimension {c.shape[-1]} but {owner} expects control_dim={m}")
        if s.shape[0] != c.shape[0] or s.shape[1] != c.shape[1] + 1:
            raise ValueError(
                f"{name} states [N, T+1, n] and controls [N, T, m] disagree: {tuple(s.shape)} vs {tuple(c.shape)}"
            )
        if s.shape[0] == 0 or c.shape[1] == 0:
            raise ValueError(f"{name} data is empty: {s.shape[0]} episodes of {c.shape[1]} transitions")
        if self.lengths is not None and self.lengths.shape != (s.shape[0],):
            raise ValueError(f"{name} lengths must have shape [N={s.shape[0]}], got {tuple(self.lengths.shape)}")
        if dt is not None and self.dt is not None and abs(float(self.dt) - float(dt)) > 1e-9 * max(1.0, float(dt)):
            raise ValueError(
                f"{name} data was recorded every {float(self.dt)} s but {owner} steps dt = {float(dt)} s; build the "
                f"model with dt={float(self.dt)} (e.g. build(name, dt=data.dt)) or resample the data"
            )

    def windows(self, horizon: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """All valid windows ``([W, H+1, n], [W, H, m])`` in ``dtype`` on ``device``, checked finite.

        Raises:
            ValueError: naming the data: no window of ``horizon`` steps, or NaN/inf (or values beyond the
                dtype's range) in some windows, with their count.
        """
        s, c = windows(self.states, self.controls, self.lengths, horizon)
        if s.shape[0] == 0:
            longest = int(self.lengths.max()) if self.lengths is not None else self.controls.shape[1]
            raise ValueError(
                f"{self.name} data has no window of {horizon} steps: {self.states.shape[0]} episodes, "
                f"the longest with {longest} transitions"
            )
        s = s.to(device=device, dtype=dtype)
        c = c.to(device=device, dtype=dtype)
        bad = ~(torch.isfinite(s).flatten(1).all(1) & torch.isfinite(c).flatten(1).all(1))
        if bool(bad.any()):
            hint = " (pass 'lengths' for NaN-padded episodes)" if self.source is None and self.lengths is None else ""
            raise ValueError(
                f"{self.name} data contains NaN or inf (or values beyond {dtype}'s range) in "
                f"{int(bad.sum())} of its {s.shape[0]} windows of horizon {horizon}{hint}"
            )
        return s, c

    def normalization_data(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """What ``model.fit_normalization`` is given: whole episodes if none is padded, else every valid
        transition once (``[N, T+1, n]``, ``[N, T, m]``)."""
        full = self.lengths is None or bool((self.lengths == self.controls.shape[1]).all())
        if full and bool(torch.isfinite(self.states).all() and torch.isfinite(self.controls).all()):
            return self.states.to(device=device, dtype=dtype), self.controls.to(device=device, dtype=dtype)
        return self.windows(1, dtype, device)
