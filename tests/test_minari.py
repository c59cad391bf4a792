"""Minari datasets: physwm data round-trips through a locally created dataset (nothing is downloaded)."""

import numpy as np
import pytest
import torch

from physwm import Trajectories, collect
from physwm.envs import make_env

pytest.importorskip("minari", reason="the minari extra (pip install 'physwm[minari]') is part of the dev install")


@pytest.fixture
def minari_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_round_trip_keeps_states_controls_lengths_dt_and_meta(minari_home):
    env = make_env(params="friction", task="balance")  # terminates: episodes of different lengths
    data = collect(env, "random", episodes=5, max_steps=40, seed=0, progress=False)
    assert data.lengths.min() < 40
    ds = data.to_minari("physwm/cartpole-friction-v0")
    assert (minari_home / "physwm" / "cartpole-friction-v0").is_dir()  # in the temporary home, nowhere else
    assert ds.total_episodes == 5 and ds.total_steps == int(data.lengths.sum())
    ep = next(iter(ds.iterate_episodes([int(data.lengths.argmin())])))
    L = int(data.lengths.min())
    assert ep.rewards.tolist() == [1.0] * L  # CartPole-v1's reward of each transition
    assert ep.terminations[-1] and not ep.truncations[-1]  # it fell: termination, not truncation
    back = Trajectories.from_minari("physwm/cartpole-friction-v0")
    assert torch.equal(back.lengths, data.lengths) and back.dt == data.dt and back.meta == data.meta
    assert torch.equal(back.states.nan_to_num(9.0), data.states.nan_to_num(9.0))  # bit for bit, float64
    assert torch.equal(back.controls.nan_to_num(9.0), data.controls.nan_to_num(9.0))


def test_existing_datasets_are_not_overwritten_silently(minari_home):
    data = collect(make_env(params="friction", terminate=False), "uniform", 2, 5, seed=1, progress=False)
    data.to_minari("physwm/tiny-v0")
    with pytest.raises(FileExistsError, match="overwrite"):
        data.to_minari("physwm/tiny-v0")
    other = collect(make_env(params="friction", terminate=False), "uniform", 3, 5, seed=2, progress=False)
    other.to_minari("physwm/tiny-v0", overwrite=True)
    back = Trajectories.from_minari("physwm/tiny-v0")
    assert back.num_episodes == 3 and torch.equal(back.states, other.states)
    ep = next(iter(__import__("minari").load_dataset("physwm/tiny-v0").iterate_episodes()))
    assert ep.truncations[-1] and not ep.terminations.any()  # no termination without terminate


def test_a_foreign_dataset_needs_its_control_period(minari_home):
    import minari
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer

    obs = np.arange(12.0).reshape(4, 3)
    buf = EpisodeBuffer(id=0, observations=obs, actions=np.ones((3, 1)), rewards=[0.0] * 3,
                        terminations=[False] * 3, truncations=[False, False, True], infos={})
    minari.create_dataset_from_buffers("other/thing-v0", [buf], observation_space=spaces.Box(-9, 99, (3,)),
                                       action_space=spaces.Box(-1, 1, (1,)), data_format="hdf5")
    with pytest.raises(ValueError, match="dt"):
        Trajectories.from_minari("other/thing-v0")
    back = Trajectories.from_minari("other/thing-v0", dt=0.05)
    assert back.dt == 0.05 and np.array_equal(back.states[0].numpy(), obs) and back.lengths.tolist() == [3]
