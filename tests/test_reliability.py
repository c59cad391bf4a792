"""No silent wrong answers, no hangs, no raw tracebacks (issue 13): one test per failure class.

Each test here failed on the code before the fix it guards (the numbers in comments are the issue's).
"""

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from timeouts import time_limit

import physwm  # noqa: F401  (registers the environments)
import physwm.cli
from physwm import RK4, CartPole, CartPoleParams, Euler, get_integrator
from physwm.cli import main
from physwm.data import Trajectories, collect
from physwm.evaluate import evaluate
from physwm.files import atomic_write_text
from physwm.integrators import SolverError
from physwm.models import DivergenceWarning, ODEModel, build
from physwm.train import fit, load_checkpoint, save_checkpoint

F64 = torch.float64


def cartpole_data(dt: float, episodes: int = 4, steps: int = 30) -> Trajectories:
    """RK4 CartPole episodes sampled every ``dt`` s under random forces."""
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(episodes, 4, generator=g, dtype=F64) - 0.5) * 0.2
    u = (torch.rand(episodes, steps, 1, generator=g, dtype=F64) - 0.5) * 10
    with torch.no_grad():
        states = RK4().rollout(CartPole(), x0, u, dt)
    return Trajectories(states, u, dt=dt)


# --- 1. dt mismatches are refused where data meets a model --------------------------------------------


def test_data_of_another_dt_is_refused_by_fit_and_evaluate():
    data = cartpole_data(0.05)
    model = build("explicit")  # default dt 0.02 s
    with pytest.raises(ValueError, match=r"recorded every 0.05 s but ODEModel steps dt = 0.02 s"):
        fit(model, data, progress=False)
    with pytest.raises(ValueError, match=r"recorded every 0.05 s .* dt = 0.02 s"):
        evaluate(model, data, horizons=[1, 5], max_windows=4)
    fit(build("explicit", dt=0.05).double(), data, epochs=1, progress=False)  # the matching model trains


# --- 2. a checkpoint loads only into the model it describes -------------------------------------------


def test_checkpoint_refuses_a_hand_built_model_of_another_dt_or_integrator(tmp_path):
    model = ODEModel(CartPole(learnable=["length"]), "rk4", dt=0.02)
    path = save_checkpoint(tmp_path / "m.pt", model)
    for other in (ODEModel(CartPole(learnable=["length"]), "rk4", dt=0.05),
                  ODEModel(CartPole(learnable=["length"]), "euler", dt=0.02)):  # fmt: skip
        with pytest.raises(ValueError, match="holds a different model than the one given"):
            load_checkpoint(path, other)
    same, _ = load_checkpoint(path, ODEModel(CartPole(learnable=["length"]), "rk4", dt=0.02))
    assert same.field.identified() == model.field.identified()


# --- 3. constants given as tensors are checked like numbers --------------------------------------------


def test_tensor_constants_are_validated():
    with pytest.raises(ValueError, match="gravity must be > 0"):
        CartPoleParams(gravity=torch.tensor(-9.8))
    with pytest.raises(ValueError, match="masscart must be > 0"):
        CartPoleParams(masscart=torch.tensor(0.0))
    with pytest.raises(TypeError, match="0-dim float tensor"):
        CartPoleParams(length=torch.ones(2))
    assert float(CartPoleParams(length=torch.tensor(0.7)).length) == pytest.approx(0.7)


# --- 4. an adaptive solve of a discontinuous field ends with an error that names the cause ---------------


def test_exact_coulomb_sign_with_dopri5_fails_fast_and_explains():
    field = CartPole(CartPoleParams(cart_coulomb=0.1, coulomb_smoothing=0.0))
    x = torch.tensor([0.0, 0.0, 0.1, 0.0], dtype=F64)
    u = torch.tensor([0.05], dtype=F64)  # below the friction force: the cart sticks, sign() chatters
    with time_limit(120), pytest.raises(SolverError, match="coulomb_smoothing"):
        get_integrator("dopri5", max_steps=100).step(field, x, u, 0.02)
    env = gym.make("physwm/CartPole-v0", params=field.base_params, integrator="dopri5")
    env.unwrapped.integrator.max_steps = 100
    env.reset(seed=0, options={"state": [0.0, 0.0, 0.1, 0.0]})
    with time_limit(120), pytest.raises(SolverError, match="max_steps"):
        env.step([0.05])


def test_tolerances_below_resolution_give_a_solver_error_not_an_assertion():
    model = build("explicit", integrator="dopri5", rtol=1e-30, atol=1e-30, max_steps=50).double()
    x0 = torch.tensor([[0.0, 1.0, 0.1, 0.0]], dtype=F64)
    with time_limit(120), pytest.raises(SolverError):
        model.rollout(x0, torch.zeros(1, 2, 1, dtype=F64))


# --- 5. a resumed study redoes what is missing -----------------------------------------------------------


def test_resumed_study_redoes_a_run_whose_checkpoint_was_deleted(tmp_path):
    from test_studies import tiny_config

    from physwm.studies import run_study

    cfg = tiny_config(data_efficiency=None)
    out = tmp_path / "s"
    run_study(cfg, out, progress=False)
    before = json.loads((out / "runs/tiny/mlp/n200_s0.json").read_text())["splits"]
    (out / "runs/tiny/mlp/n200_s0.pt").unlink()
    (out / "figures" / "stale.png").write_bytes(b"old")
    again = run_study(cfg, out, progress=False)
    assert again.runs_done == 1  # only the damaged run
    assert (out / "runs/tiny/mlp/n200_s0.pt").exists()
    assert json.loads((out / "runs/tiny/mlp/n200_s0.json").read_text())["splits"] == before  # same numbers
    assert not (out / "figures" / "stale.png").exists()  # figures are redrawn from what exists


# --- 6, 7. outputs are checked before the work; expected failures end in one line ------------------------


def test_collect_checks_out_before_collecting(tmp_path, monkeypatch, capsys):
    def no_collect(*a, **k):
        raise AssertionError("collect ran although --out was unusable")

    monkeypatch.setattr(physwm.cli, "collect", no_collect)
    for out, why in ((tmp_path, "is a directory"), (tmp_path / "no" / "d.npz", "does not exist")):
        assert main(["collect", "--episodes", "1", "--max-steps", "5", "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0]


def test_permission_errors_name_the_file_not_a_temp_file(tmp_path, monkeypatch):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".ck.pt.x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError, match=r"cannot write .*ck\.pt: no permission") as err:
        atomic_write_text(tmp_path / "ck.pt", "x")
    assert ".tmp" not in str(err.value).split(":")[0]


def test_cli_reports_os_errors_in_one_line(tmp_path, monkeypatch, capsys):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(physwm.cli, "collect", denied)
    assert main(["collect", "--episodes", "1", "--max-steps", "5", "--out", str(tmp_path / "d.npz"),
                 "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("physwm collect: error: PermissionError")


# --- 8. dtype mismatches name both dtypes and the fix ----------------------------------------------------


def test_dtype_mismatch_names_both_dtypes_and_the_fix():
    mlp = build("mlp")  # float32
    x0, u = torch.zeros(2, 4, dtype=F64), torch.zeros(2, 3, 1, dtype=F64)
    expected = r"computes in torch.float32 but the states are torch.float64.*model.double\(\)"
    with pytest.raises(TypeError, match=expected):
        mlp.rollout(x0, u)
    with pytest.raises(TypeError, match=r"torch.float16"):
        build("hybrid").rollout(x0.half(), u.half())
    assert build("explicit").rollout(x0, u).dtype == F64  # physics alone computes in the input's dtype


# --- 9. one NaN policy: refuse non-finite inputs, report divergence with its step ----------------------


def test_nonfinite_inputs_are_refused_and_divergence_is_reported():
    nan = torch.tensor([float("nan"), 0.0, 0.0, 0.0], dtype=F64)
    u = torch.zeros(1, dtype=F64)
    with pytest.raises(ValueError, match="x contains NaN"):
        Euler().step(CartPole(), nan, u, 0.02)
    with pytest.raises(ValueError, match="states contain NaN"):
        build("mlp").rollout(nan[None].float(), torch.zeros(1, 3, 1))
    x0 = torch.tensor([[0.0, 0.0, 0.1, 1e200]], dtype=F64)
    with pytest.warns(DivergenceWarning, match=r"1 of 1 trajectories became NaN/inf, the first at step \d+"):
        out = RK4().rollout(CartPole(), x0, torch.zeros(1, 5, 1, dtype=F64), 0.02)
    assert not torch.isfinite(out).all()  # the values are kept for scoring
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RK4().rollout(CartPole(), x0, torch.zeros(1, 5, 1, dtype=F64), 0.02, warn_divergence=False)


# --- 11. smaller ones -------------------------------------------------------------------------------------


def test_smaller_errors_name_the_argument(tmp_path):
    ck = save_checkpoint(tmp_path / "m.pt", build("mlp", hidden=[4]))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load_checkpoint(ck, map_location="cuda")
    with pytest.raises(TypeError, match="list of constant names, got the string 'length'"):
        CartPole(learnable="length")
    with pytest.raises(ValueError, match="SemiImplicitEuler needs a field .* NeuralField"):
        build("node", integrator="semi_implicit_euler")
    with pytest.raises(TypeError, match="dt must be a number of seconds, got str"):
        Trajectories(torch.zeros(1, 3, 4), torch.zeros(1, 2, 1), dt="0.02")
    with pytest.raises(TypeError, match="x0 and u must be torch tensors, got ndarray"):
        RK4().rollout(CartPole(), np.zeros((1, 4)), np.zeros((1, 2, 1)), 0.02)
    env = gym.make("physwm/CartPole-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="boolean"):
        env.step(True)
    with pytest.raises(ValueError, match="the policy must return 1 number"):
        collect(env, lambda s, rng: "left", 1, 3, seed=0, progress=False)
    with pytest.raises(ValueError, match="the policy returned 2 numbers"):
        collect(env, lambda s, rng: [1.0, 2.0], 1, 3, seed=0, progress=False)
    with pytest.raises(ValueError, match="val data has no window of 10 steps"):
        data = cartpole_data(0.02)
        fit(build("mlp", hidden=[4]).double(), data, data[:1].head(5), progress=False)


def test_corrupt_or_binary_config_files_are_named(tmp_path, capsys):
    from test_studies import tiny_config

    from physwm.studies import run_study

    binary = tmp_path / "c.json"
    binary.write_bytes(b"\x89PNG\x00\xff")
    assert main(["compare", "--config", str(binary), "--out", str(tmp_path / "o")]) == 2
    assert "c.json" in capsys.readouterr().err
    out = tmp_path / "s"
    out.mkdir()
    (out / "config.json").write_text("{ truncated")
    with pytest.raises(ValueError, match=r"config.json is not valid JSON .*corrupt.*overwrite=True"):
        run_study(tiny_config(data_efficiency=None, figures=False), out, progress=False)
