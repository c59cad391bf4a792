"""physwm.data: Trajectories (windows, split, .npz I/O), collect, policies, and the collect CLI."""

import json
import math
import os

import gymnasium as gym
import numpy as np
import pytest
import scipy.linalg
import torch

import physwm
from physwm.cli import main
from physwm.data import SCHEMA_VERSION, LQRPolicy, Trajectories, collect, make_policy
from physwm.data import trajectories as data_mod
from physwm.envs import ENV_ID


def _tagged(lengths, T=5, n=4, m=1):
    """Hand-built data: states[i, t] = 100 i + t (+ 0.1 k per dim), controls[i, t] = 100 i + t; NaN padding."""
    N = len(lengths)
    i = torch.arange(N, dtype=torch.float64)[:, None, None]
    t = torch.arange(T + 1, dtype=torch.float64)[None, :, None]
    states = (100 * i + t + 0.1 * torch.arange(n, dtype=torch.float64)).clone()
    controls = (100 * i + t[:, :T]).expand(N, T, m).clone()
    for k, L in enumerate(lengths):
        states[k, L + 1 :] = float("nan")
        controls[k, L:] = float("nan")
    return Trajectories(states, controls, torch.tensor(lengths), dt=0.05, meta={"tag": "hand"})


def _assert_same(a: Trajectories, b: Trajectories):
    np.testing.assert_array_equal(a.states.numpy(), b.states.numpy())  # NaN == NaN here
    np.testing.assert_array_equal(a.controls.numpy(), b.controls.numpy())
    assert torch.equal(a.lengths, b.lengths)
    assert a.states.dtype == b.states.dtype and a.dt == b.dt and a.meta == b.meta


# --- container ------------------------------------------------------------------------------------


def test_container_sizes_select_and_dtype():
    tr = _tagged([3, 1, 5])
    assert (len(tr), tr.num_episodes, tr.num_transitions, tr.state_dim, tr.control_dim) == (3, 3, 9, 4, 1)
    assert tr[2].states[0, 0, 0].item() == 200.0 and len(tr[-1]) == 1 and tr[-1].lengths.tolist() == [5]
    assert tr[[2, 0]].lengths.tolist() == [5, 3]
    assert tr[torch.tensor([False, True, True])].lengths.tolist() == [1, 5]
    assert tr[1:].lengths.tolist() == [1, 5]
    with pytest.raises(IndexError):
        tr[3]
    f32 = tr.to(torch.float32)
    assert f32.states.dtype == torch.float32 and f32.controls.dtype == torch.float32
    assert f32.lengths.dtype == torch.int64 and tr.states.dtype == torch.float64
    text = tr.summary()
    assert "3 episodes, 9 transitions" in text and "min 1, mean 3.0, max 5" in text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"states": torch.zeros(2, 4, 4), "controls": torch.zeros(2, 4, 1)}, "disagree"),
        ({"states": torch.zeros(2, 5, 4), "controls": torch.zeros(3, 4, 1)}, "disagree"),
        ({"states": torch.zeros(5, 4), "controls": torch.zeros(4, 1)}, "shape"),
        ({"states": torch.zeros(2, 5, 4), "controls": torch.zeros(2, 4, 1, dtype=torch.float64)}, "dtype"),
        ({"states": torch.zeros(2, 5, 4), "controls": torch.zeros(2, 4, 1), "lengths": [4, 5]}, "lengths"),
        ({"states": torch.zeros(2, 5, 4), "controls": torch.zeros(2, 4, 1), "lengths": [4]}, "lengths"),
        ({"states": torch.zeros(2, 5, 4), "controls": torch.zeros(2, 4, 1), "dt": 0.0}, "dt"),
        ({"states": torch.zeros(2, 5, 4), "controls": torch.zeros(2, 4, 1), "meta": {"x": object()}}, "JSON"),
    ],
)
def test_container_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trajectories(**kwargs)


def test_nan_only_allowed_in_padding():
    states, controls = torch.zeros(2, 5, 4), torch.zeros(2, 4, 1)
    states[1, 3:] = float("nan")
    controls[1, 2:] = float("nan")
    Trajectories(states, controls, lengths=[4, 2])  # padding: fine
    with pytest.raises(ValueError, match="episode 1"):
        Trajectories(states, controls, lengths=[4, 3])
    with pytest.raises(ValueError, match="episode 1"):
        Trajectories(states, controls)


def test_windows_never_cross_episode_ends():
    tr = _tagged([3, 1, 5])
    w = tr.windows(2)
    expected = [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2), (2, 3)]  # (episode, start): starts 0..L-H
    assert w["states"].shape == (6, 3, 4) and w["controls"].shape == (6, 2, 1)
    for k, (ep, s) in enumerate(expected):
        ramp = torch.tensor([100.0 * ep + s + j for j in range(3)], dtype=torch.float64)
        assert torch.equal(w["states"][k, :, 0], ramp) and torch.equal(w["controls"][k, :, 0], ramp[:2])
    assert torch.isfinite(w["states"]).all() and torch.isfinite(w["controls"]).all()
    assert tr.windows(1)["states"].shape[0] == tr.num_transitions
    w5 = tr.windows(5)
    assert w5["states"].shape[0] == 1 and w5["states"][0, 0, 0] == 200.0
    with pytest.raises(ValueError, match="longest episode has 5"):
        tr.windows(6)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="horizon"):
            tr.windows(bad)


def test_split_is_a_partition_by_episode():
    tr = _tagged([5] * 10)
    parts = tr.split((0.8, 0.1, 0.1), seed=3)
    ids = [sorted((p.states[:, 0, 0] / 100).round().long().tolist()) for p in parts]
    assert [len(i) for i in ids] == [8, 1, 1]
    assert sorted(sum(ids, [])) == list(range(10))
    again = [sorted((p.states[:, 0, 0] / 100).round().long().tolist()) for p in tr.split((0.8, 0.1, 0.1), seed=3)]
    other = [sorted((p.states[:, 0, 0] / 100).round().long().tolist()) for p in tr.split((0.8, 0.1, 0.1), seed=4)]
    assert again == ids and other != ids
    assert [len(p) for p in _tagged([5] * 5).split((0.8, 0.1, 0.1))] == [3, 1, 1]  # no empty part
    for p in parts:  # episodes keep their data and lengths
        for k in range(len(p)):
            ep = int(round(p.states[k, 0, 0].item() / 100))
            assert torch.equal(p.states[k], tr.states[ep]) or torch.isnan(p.states[k]).any()
    with pytest.raises(ValueError, match="fractions"):
        tr.split((0.5, 0.4))
    with pytest.raises(ValueError, match="cannot split"):
        _tagged([5, 5]).split((0.5, 0.25, 0.25))


# --- files ----------------------------------------------------------------------------------------


def test_save_load_roundtrip_exact(tmp_path):
    tr = _tagged([3, 1, 5])
    path = tr.save(tmp_path / "d.npz")
    back = Trajectories.load(path)
    _assert_same(tr, back)
    tr32 = tr.to(torch.float32)
    back32 = Trajectories.load(tr32.save(tmp_path / "f.npz"))
    _assert_same(tr32, back32)
    with np.load(path) as z:
        assert int(z["physwm_schema"]) == SCHEMA_VERSION and json.loads(str(z["meta"])) == {"tag": "hand"}


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "d.npz"
    _tagged([3]).save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        _tagged([5]).save(path)
    assert path.read_bytes() == before
    _tagged([5]).save(path, overwrite=True)
    assert Trajectories.load(path).lengths.tolist() == [5]


def test_atomic_save_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "d.npz"
    _tagged([3]).save(path)
    assert sorted(os.listdir(tmp_path)) == ["d.npz"]  # no temp files left by a good save
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(data_mod.np, "savez_compressed", failing_savez)
    with pytest.raises(OSError, match="simulated"):
        _tagged([5]).save(path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["d.npz"]
    monkeypatch.undo()

    def failing_replace(src, dst):
        raise OSError("replace failed (simulated)")

    monkeypatch.setattr(data_mod.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        _tagged([5]).save(path, overwrite=True)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["d.npz"]


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        Trajectories.load(tmp_path / "missing.npz")
    good = _tagged([3, 1, 5])
    raw = good.save(tmp_path / "good.npz").read_bytes()

    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        Trajectories.load(tmp_path / "trunc.npz")

    corrupt = bytearray(raw)
    mid = len(corrupt) // 3
    corrupt[mid : mid + 64] = bytes(b ^ 0xFF for b in corrupt[mid : mid + 64])
    (tmp_path / "corrupt.npz").write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="corrupt or truncated"):
        Trajectories.load(tmp_path / "corrupt.npz")

    (tmp_path / "text.npz").write_text("not a numpy file at all")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        Trajectories.load(tmp_path / "text.npz")

    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(ValueError, match="npy"):
        Trajectories.load(tmp_path / "arr.npy")

    arrays = {
        "states": good.states.numpy(),
        "controls": good.controls.numpy(),
        "lengths": good.lengths.numpy(),
        "dt": np.asarray(0.05),
        "meta": np.asarray("{}"),
    }
    np.savez(tmp_path / "noschema.npz", **arrays)
    with pytest.raises(ValueError, match="no 'physwm_schema'"):
        Trajectories.load(tmp_path / "noschema.npz")
    np.savez(tmp_path / "future.npz", physwm_schema=np.asarray(99), **arrays)
    with pytest.raises(ValueError, match="physwm_schema 99 is not supported"):
        Trajectories.load(tmp_path / "future.npz")
    no_lengths = {k: v for k, v in arrays.items() if k != "lengths"}
    np.savez(tmp_path / "nolen.npz", physwm_schema=np.asarray(SCHEMA_VERSION), **no_lengths)
    with pytest.raises(ValueError, match=r"missing arrays \['lengths'\]"):
        Trajectories.load(tmp_path / "nolen.npz")
    bad_shape = {**arrays, "controls": arrays["controls"][:, :3]}
    np.savez(tmp_path / "shape.npz", physwm_schema=np.asarray(SCHEMA_VERSION), **bad_shape)
    with pytest.raises(ValueError, match="inconsistent contents.*disagree"):
        Trajectories.load(tmp_path / "shape.npz")
    bad_meta = {**arrays, "meta": np.asarray("{not json")}
    np.savez(tmp_path / "meta.npz", physwm_schema=np.asarray(SCHEMA_VERSION), **bad_meta)
    with pytest.raises(ValueError, match="meta"):
        Trajectories.load(tmp_path / "meta.npz")


# --- collection -----------------------------------------------------------------------------------


def test_same_seed_identical_data():
    def run(seed, env_id="CartPole-v1", **kw):
        return collect(gym.make(env_id), make_policy("random"), 6, 40, seed=seed, progress=False, **kw)

    a, b, c = run(7), run(7), run(8)
    _assert_same(a, b)
    assert not np.array_equal(a.states.numpy(), c.states.numpy(), equal_nan=True)
    box = {"start_low": [-0.5, -0.1, -0.1, -0.5], "start_high": [0.5, 0.1, 0.1, 0.5]}
    p1 = collect(gym.make(ENV_ID), make_policy("lqr", noise_std=1.0), 3, 20, seed=2, progress=False, **box)
    p2 = collect(gym.make(ENV_ID), make_policy("lqr", noise_std=1.0), 3, 20, seed=2, progress=False, **box)
    _assert_same(p1, p2)


def test_collect_records_exact_states_and_forces():
    tr = collect(gym.make("CartPole-v1"), "random", episodes=5, max_steps=200, seed=0, progress=False)
    assert tr.states.dtype == torch.float64 and tr.dt == 0.02
    assert set(tr.controls[~torch.isnan(tr.controls)].tolist()) == {-10.0, 10.0}
    assert tr.lengths.max() < 200  # the random policy drops the pole: early termination is recorded
    assert tr.meta["env_id"] == "CartPole-v1" and tr.meta["policy"]["name"] == "random" and tr.meta["seed"] == 0
    # replaying the recorded forces with the physwm field + Euler gives the recorded states (exactness)
    field, euler = physwm.CartPole(), physwm.Euler()
    for i in range(len(tr)):
        L = int(tr.lengths[i])
        replay = euler.rollout(field, tr.states[i : i + 1, 0], tr.controls[i : i + 1, :L], 0.02)
        assert (replay[0] - tr.states[i, : L + 1]).abs().max() <= 1e-12
        assert torch.isnan(tr.states[i, L + 1 :]).all() and torch.isnan(tr.controls[i, L:]).all()

    env = gym.make(ENV_ID, terminate=False)
    tr = collect(env, "uniform", episodes=2, max_steps=30, seed=1, progress=False)
    u = tr.controls[..., 0]
    assert u.abs().max() <= 10.0 and len(set(u.flatten().tolist())) == 60  # continuous forces
    assert torch.equal(u, u.to(torch.float32).to(torch.float64))  # float32 actions, recorded as applied
    replay = physwm.RK4().rollout(physwm.CartPole(), tr.states[:, 0], tr.controls, 0.02)
    assert (replay - tr.states).abs().max() <= 1e-12


def test_collect_start_box():
    low, high = [-1.0, -0.5, 2.5, -1.0], [1.0, 0.5, 3.5, 1.0]
    for env in (gym.make(ENV_ID, terminate=False), gym.make("CartPole-v1")):
        tr = collect(env, "uniform", episodes=20, max_steps=3, seed=0, start_low=low, start_high=high, progress=False)
        s0 = tr.states[:, 0].numpy()
        assert np.all(s0 >= low) and np.all(s0 <= high)
        assert s0[:, 2].std() > 0.2  # spread over the box, not the env's +-0.05 default
    with pytest.raises(ValueError, match="both"):
        collect(gym.make(ENV_ID), "random", 1, 3, seed=0, start_low=0.0, progress=False)
    with pytest.raises(ValueError, match="start_low"):
        collect(gym.make(ENV_ID), "random", 1, 3, seed=0, start_low=[0, 0, 0], start_high=1.0, progress=False)


def test_progress_bar_can_be_silenced(capsys):
    collect(gym.make("CartPole-v1"), "random", 2, 5, seed=0, progress=False)
    assert capsys.readouterr().err == ""
    collect(gym.make("CartPole-v1"), "random", 2, 5, seed=0, progress=True)
    assert "collect" in capsys.readouterr().err


def test_make_policy_and_collect_errors():
    with pytest.raises(ValueError, match=r"unknown policy 'greedy'; valid: \['lqr', 'none', 'random', 'uniform'\]"):
        make_policy("greedy")
    with pytest.raises(ValueError, match="episodes"):
        collect(gym.make("CartPole-v1"), "random", 0, 5, seed=0, progress=False)
    with pytest.raises(ValueError, match="does not know the environment MountainCarContinuous-v0"):
        collect(gym.make("MountainCarContinuous-v0"), "random", 1, 5, seed=0, progress=False)
    with pytest.raises(ValueError, match="noise_std"):
        make_policy("lqr", noise_std=-1.0)


# --- LQR ------------------------------------------------------------------------------------------


def test_lqr_gain_matches_linearisation():
    p = physwm.CartPoleParams()
    pol = LQRPolicy(p)
    g, l, m, M = p.gravity, p.length, p.masspole, p.total_mass
    denom = l * (4.0 / 3.0 - m / M)
    A = np.zeros((4, 4))
    A[0, 1] = A[2, 3] = 1.0
    A[3, 2] = g / denom
    A[1, 2] = -m * l * A[3, 2] / M
    B = np.array([[0.0], [1.0 / M + m * l / (M * M * denom)], [0.0], [-1.0 / (M * denom)]])
    np.testing.assert_allclose(pol.A, A, atol=1e-12)
    np.testing.assert_allclose(pol.B, B, atol=1e-12)
    # the gain solves the discrete Riccati equation of the ZOH-discretised model
    Ad, Bd, P, K, R = pol.Ad, pol.Bd, pol.P, pol.K, np.array([[pol.R]])
    np.testing.assert_allclose(Ad, scipy.linalg.expm(A * p.tau), rtol=1e-12)
    residual = Ad.T @ P @ Ad - P - Ad.T @ P @ Bd @ np.linalg.solve(R + Bd.T @ P @ Bd, Bd.T @ P @ Ad) + pol.Q
    assert np.abs(residual).max() < 1e-6 * np.abs(P).max()
    assert np.abs(np.linalg.eigvals(Ad)).max() > 1.0  # upright is unstable open loop ...
    assert np.abs(np.linalg.eigvals(Ad - Bd @ K)).max() < 1.0  # ... and stable in closed loop
    assert np.linalg.eigvals(A - B @ K).real.max() < 0.0


def test_lqr_keeps_the_pole_up():
    tr = collect(gym.make("CartPole-v1"), make_policy("lqr"), episodes=5, max_steps=500, seed=0, progress=False)
    assert tr.lengths.tolist() == [500] * 5
    assert tr.states[..., 2].abs().max() < 12 * math.pi / 180
    rnd = collect(gym.make("CartPole-v1"), "random", episodes=5, max_steps=500, seed=0, progress=False)
    assert rnd.lengths.max() < 500  # the check above can fail
    noisy = collect(gym.make(ENV_ID), make_policy("lqr", noise_std=2.0), 2, max_steps=500, seed=0, progress=False)
    assert noisy.lengths.tolist() == [500, 500]
    assert noisy.controls.abs().max() < 10.0 and noisy.controls.std() > 1.0  # continuous, noisy forces


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_collect_writes_loadable_file(tmp_path, capsys):
    out = tmp_path / "d.npz"
    args = ["collect", "--env", ENV_ID, "--policy", "lqr", "--noise-std", "0.5", "--episodes", "3"]
    args += ["--max-steps", "20", "--seed", "4", "--out", str(out), "--no-progress", "--no-terminate"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "3 episodes, 60 transitions" in printed and str(out) in printed
    tr = Trajectories.load(out)
    assert tr.num_transitions == 60 and tr.meta["seed"] == 4 and tr.meta["terminate"] is False
    assert tr.meta["policy"]["noise_std"] == 0.5
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--friction", "--max-steps", "2"]) == 0
    assert Trajectories.load(out).meta["params"]["cart_viscous"] > 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--env", "MountainCar-v0"], "choose from 'CartPole-v1', 'physwm/CartPole-v0'"),
        (["--policy", "greedy"], "choose from 'random', 'uniform', 'lqr'"),
    ],
)
def test_cli_collect_unknown_names_exit_2(tmp_path, capsys, args, expected):
    with pytest.raises(SystemExit) as exc:
        main(["collect", *args, "--out", str(tmp_path / "x.npz")])
    assert exc.value.code == 2 and expected in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_cli_collect_rejects_physwm_only_flags_for_gym_env(tmp_path, capsys):
    rc = main(["collect", "--env", "CartPole-v1", "--friction", "--out", str(tmp_path / "x.npz"), "--no-progress"])
    assert rc == 2 and "--friction" in capsys.readouterr().err
    rc = main(["collect", "--env", ENV_ID, "--integrator", "leapfrog", "--out", str(tmp_path / "x.npz")])
    assert rc == 2 and "valid" in capsys.readouterr().err
