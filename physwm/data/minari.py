"""Minari datasets (Farama's offline-RL format) to and from :class:`~physwm.data.Trajectories`.

Needs the optional extra ``pip install "physwm[minari]"`` (Minari with its HDF5 storage). Datasets live
where Minari keeps them: ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``); nothing is
downloaded.

Mapping, per episode ``i`` of ``lengths[i] = L`` transitions:

* ``observations [L+1, n]``: the exact float64 states ``states[i, :L+1]``;
* ``actions [L, m]``: the controls applied ``controls[i, :L]`` (physical units, float64);
* ``rewards [L]``: the system's reward of each transition (``System.reward_batch``; zeros for a system
  physwm does not know); ``terminations``/``truncations [L]``: the last transition terminates when the
  data's environment terminates (``meta["terminate"]``) and the system's failure test holds at the last
  state, else it truncates;
* the dataset's metadata keeps ``dt`` and the data's ``meta`` (key ``physwm``), so
  :func:`from_minari` restores them. A dataset written by anyone else loads too, given ``dt``.
"""

from __future__ import annotations

import importlib
import json
import warnings
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from ..checks import check_dt
from ..systems import SYSTEMS
from .trajectories import Trajectories

__all__ = ["to_minari", "from_minari"]

_KEY = "physwm"


def _minari() -> Any:
    try:
        return importlib.import_module("minari")
    except ImportError as err:
        raise ImportError('Minari datasets need Minari: pip install "physwm[minari]"') from err


def to_minari(traj: Trajectories, dataset_id: str, *, overwrite: bool = False, description: str | None = None):
    """Write ``traj`` as the local Minari dataset ``dataset_id`` (see the module docstring for the mapping).

    Args:
        traj: the episodes (any float dtype; written as float64).
        dataset_id: Minari's ``(namespace/)name-vN`` id (e.g. ``"physwm/cartpole-friction-v0"``).
        overwrite: replace an existing dataset of that id (else FileExistsError).
        description: the dataset's description (default: a summary of the data).

    Returns:
        the ``minari.MinariDataset`` written.
    """
    minari = _minari()
    from minari.data_collector import EpisodeBuffer
    from minari.storage.datasets_root_dir import get_dataset_path

    if not isinstance(traj, Trajectories):
        raise TypeError(f"traj must be Trajectories, got {type(traj).__name__}")
    if not isinstance(dataset_id, str) or not dataset_id:
        raise ValueError(f"dataset_id must be a non-empty string, got {dataset_id!r}")
    if (get_dataset_path(dataset_id)).exists():
        if not overwrite:
            raise FileExistsError(f"the Minari dataset {dataset_id!r} exists; pass overwrite=True to replace it")
        minari.delete_dataset(dataset_id)
    system = SYSTEMS.get(traj.meta.get("system"))
    params = system.Params.from_dict(traj.meta["params"]) if system is not None and "params" in traj.meta else None
    states = traj.states.detach().cpu().to(torch.float64).numpy()
    controls = traj.controls.detach().cpu().to(torch.float64).numpy()
    n, m = traj.state_dim, traj.control_dim
    buffers = []
    for i, length in enumerate(traj.lengths.tolist()):
        obs, act = states[i, : length + 1], controls[i, :length]
        if system is not None:
            rewards = system.reward_batch(obs[:-1], act, obs[1:], np.zeros(length, dtype=bool))
            ends = bool(traj.meta.get("terminate")) and length > 0 and params is not None and \
                bool(system.failed_batch(obs[-1:], params)[0])  # fmt: skip
        else:
            rewards, ends = np.zeros(length), False
        term = np.zeros(length, dtype=bool)
        trunc = np.zeros(length, dtype=bool)
        if length:
            term[-1], trunc[-1] = ends, not ends
        buffers.append(EpisodeBuffer(id=i, observations=obs, actions=act, rewards=list(map(float, rewards)),
                                     terminations=term.tolist(), truncations=trunc.tolist(), infos={}))  # fmt: skip
    with warnings.catch_warnings():  # Minari's advice to name an author, an e-mail, an environment spec
        warnings.filterwarnings("ignore", message=r".*(is set to None|env_spec is None)", category=UserWarning)
        dataset = minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=spaces.Box(-np.inf, np.inf, (n,), np.float64),
            action_space=spaces.Box(-np.inf, np.inf, (m,), np.float64),
            algorithm_name=str(traj.meta.get("policy", {}).get("name", "unknown")),
            description=description or f"physwm {traj!r}",
            data_format="hdf5",
        )
    dataset.storage.update_metadata({_KEY: json.dumps({"dt": traj.dt, "meta": traj.meta})})
    return dataset


def from_minari(dataset_id: str, *, dt: float | None = None) -> Trajectories:
    """Read the local Minari dataset ``dataset_id`` as float64 :class:`Trajectories` (observations as states).

    Args:
        dataset_id: the dataset's id.
        dt: the control period (s) of a dataset physwm did not write (physwm's own keep theirs).

    Raises:
        ValueError: a dataset without physwm's metadata and no ``dt``; observations or actions that are not
            flat vectors.
    """
    minari = _minari()
    dataset = minari.load_dataset(dataset_id)
    raw = dataset.storage.metadata.get(_KEY)
    saved = json.loads(raw) if isinstance(raw, str) else {}
    if dt is None and "dt" not in saved:
        raise ValueError(f"{dataset_id!r} was not written by physwm: give its control period dt (s)")
    dt = check_dt(dt if dt is not None else saved["dt"])
    episodes = list(dataset.iterate_episodes())
    if not episodes:
        raise ValueError(f"{dataset_id!r} holds no episodes")
    obs = [np.asarray(e.observations, dtype=np.float64) for e in episodes]
    act = [np.asarray(e.actions, dtype=np.float64) for e in episodes]
    if any(o.ndim != 2 for o in obs) or any(a.ndim != 2 for a in act):
        raise ValueError(f"{dataset_id!r}: observations and actions must be vectors (Box spaces of one dimension)")
    lengths = np.array([len(a) for a in act], dtype=np.int64)
    T, n, m = int(lengths.max()), obs[0].shape[1], act[0].shape[1]
    states = np.full((len(episodes), T + 1, n), np.nan)
    controls = np.full((len(episodes), T, m), np.nan)
    for i, (o, a) in enumerate(zip(obs, act)):
        states[i, : len(o)], controls[i, : len(a)] = o, a
    meta = saved.get("meta", {"source": f"minari:{dataset_id}"})
    return Trajectories(torch.from_numpy(states), torch.from_numpy(controls), torch.from_numpy(lengths), dt=dt,
                        meta=meta)  # fmt: skip
