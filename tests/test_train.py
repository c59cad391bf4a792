"""fit(): learning, system identification, early stopping, checkpoints, exact resume, determinism, errors."""

from __future__ import annotations

import copy
import json
import math
import os

import pytest
import torch
from torch import nn

from physwm import CartPole, CartPoleParams
from physwm.evaluate import windows_rmse
from physwm.models import ODEModel, WorldModel
from physwm.train import (
    CHECKPOINT_VERSION,
    History,
    TrainingDiverged,
    TrainingDivergedWarning,
    fit,
    load_checkpoint,
    save_checkpoint,
)

F64 = torch.float64


def cartpole_data(episodes: int, steps: int, seed: int, params: CartPoleParams | None = None, dtype=F64) -> dict:
    """Open-loop RK4 CartPole episodes from random starts under uniform random forces (+-10 N)."""
    truth = ODEModel(CartPole(params), "rk4").to(dtype)
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand(episodes, 4, generator=g, dtype=dtype) - 0.5) * 0.4
    u = (torch.rand(episodes, steps, 1, generator=g, dtype=dtype) - 0.5) * 20
    with torch.no_grad():
        states = truth.rollout(x0, u)
    return {"states": states, "controls": u}


def explicit(length: float = 0.7) -> ODEModel:
    """CartPole-v1 equations with a learnable (wrong) half-length, float64."""
    return ODEModel(CartPole(CartPoleParams(length=length), learnable=("length",)), "rk4").double()


class TinyMLP(WorldModel):
    """Small delta-predicting MLP; ``noise > 0`` perturbs the inputs with torch's global RNG in the loss."""

    def __init__(self, state_dim=4, control_dim=1, dt=0.02, width=16, noise=0.0, linear=False):
        super().__init__(state_dim, control_dim, dt)
        self.width, self.noise, self.linear = width, noise, linear
        act = nn.Identity() if linear else nn.Tanh()
        self.net = nn.Sequential(nn.Linear(state_dim + control_dim, width), act, nn.Linear(width, state_dim))

    def step(self, x, u):
        z = torch.cat((self.state_norm.normalize(x), self.control_norm.normalize(u)), -1)
        return x + self.delta_norm.denormalize(self.net(z))

    def loss(self, batch):
        s, c = batch["states"], batch["controls"]
        if self.noise:
            s = s + self.noise * torch.randn_like(s) * self.state_norm.std
        pred = self.rollout(s[:, 0], c)[:, 1:]
        mse = ((pred - s[:, 1:]) / self.delta_norm.std).pow(2).mean()
        return mse, {"mse": float(mse.detach())}

    def config(self):
        return {"dt": self.dt, "width": self.width, "linear": self.linear}


def tiny(seed: int = 0, **kw) -> TinyMLP:
    torch.manual_seed(seed)
    return TinyMLP(**kw).double()


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


TRAIN = cartpole_data(12, 30, seed=1)
VAL = cartpole_data(4, 30, seed=2)


# --- learning ---------------------------------------------------------------------------------------


def test_loss_falls_and_val_error_improves():
    model = tiny()
    h = fit(model, TRAIN, VAL, epochs=15, batch_size=32, lr=1e-2, progress=False)
    assert len(h.epoch) == 15 and h.stop_reason == "epochs"
    assert h.train_loss[-1] < 0.05 * h.train_loss[0]
    assert h.best_val_error < 0.3 * h.val_error[0]
    assert h.metrics["mse"] == pytest.approx(h.train_loss)  # the model's metrics are averaged per epoch
    assert all(t2 >= t1 for t1, t2 in zip(h.time, h.time[1:]))


@pytest.mark.parametrize("horizon", [1, 8])
def test_system_identification_recovers_length(horizon):
    """Data from the true half-length 0.5 m; the model starts at 0.7 m and must find 0.5 m."""
    model = explicit(0.7)
    fit(model, TRAIN, VAL, horizon=horizon, epochs=15, batch_size=64, lr=0.05, progress=False)
    assert model.field.identified()["length"] == pytest.approx(0.5, abs=2e-3)


def test_normalization_fitted_on_train_data_and_dtype_kept():
    model = explicit(0.6)
    fit(model, TRAIN, epochs=1, progress=False)
    flat = TRAIN["states"].reshape(-1, 4)
    torch.testing.assert_close(model.state_norm.mean, flat.mean(0))
    torch.testing.assert_close(model.state_norm.std, flat.std(0, unbiased=False))
    # a float32 model trained on float64 data stays float32 (the data is converted, never the model)
    m32 = TinyMLP()
    fit(m32, TRAIN, epochs=1, progress=False)
    assert all(p.dtype == torch.float32 for p in m32.parameters())
    assert m32.state_norm.mean.dtype == torch.float32


def test_trajectories_with_padding():
    """NaN-padded episodes (early termination): windows and statistics use only the valid part."""
    Trajectories = pytest.importorskip("physwm.data", reason="physwm.data not written yet").Trajectories
    s, c = TRAIN["states"].clone(), TRAIN["controls"].clone()
    lengths = torch.tensor([30, 10, 20, 30, 5, 30, 30, 12, 30, 30, 30, 8])
    for i, n in enumerate(lengths.tolist()):
        s[i, n + 1 :] = float("nan")
        c[i, n:] = float("nan")
    traj = Trajectories(s, c, lengths)
    model = tiny()
    h = fit(model, traj, traj, horizon=3, val_horizon=5, epochs=2, progress=False)
    assert all(math.isfinite(v) for v in h.train_loss + h.val_error)
    pairs = traj.windows(1)
    torch.testing.assert_close(model.delta_norm.mean, (pairs["states"][:, 1] - pairs["states"][:, 0]).mean(0))


# --- early stopping ---------------------------------------------------------------------------------


def test_early_stopping_restores_best_weights():
    """Train on length 0.5 m, validate on 0.62 m, start at 0.75 m: the val error falls, then rises."""
    val = cartpole_data(4, 30, seed=2, params=CartPoleParams(length=0.62))
    model = explicit(0.75)
    seen = {}

    def record(epoch, history, m):
        seen[epoch] = (copy.deepcopy(m.state_dict()), m.field.identified()["length"])

    h = fit(model, TRAIN, val, epochs=60, batch_size=64, lr=0.01, early_stopping=3, callback=record, progress=False)
    assert h.stop_reason == "early_stopping" and h.stopped_early
    last = h.epoch[-1]
    assert last < 60 and h.best_epoch == last - 3
    assert h.val_error[-1] > h.best_val_error == min(h.val_error)
    best_state, best_length = seen[h.best_epoch]
    assert seen[last][1] < best_length  # training went on past the best epoch ...
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best_state.items())  # ... and came back
    assert abs(best_length - 0.62) < abs(seen[last][1] - 0.62)
    windows = {k: v for k, v in zip(("states", "controls"), _windows(val, 10))}
    err = windows_rmse(model, windows["states"], windows["controls"], model.state_norm.std)
    assert err == pytest.approx(h.best_val_error, rel=1e-12)


def _windows(data, h):
    s = data["states"].unfold(1, h + 1, 1).permute(0, 1, 3, 2).reshape(-1, h + 1, 4)
    c = data["controls"].unfold(1, h, 1).permute(0, 1, 3, 2)[:, : 30 - h + 1].reshape(-1, h, 1)
    return s, c


# --- checkpoints --------------------------------------------------------------------------------------


def test_checkpoint_round_trip_identical_predictions(tmp_path):
    model = explicit(0.7)
    fit(model, TRAIN, epochs=2, lr=0.05, progress=False)
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=2)
    fresh = explicit(0.9)  # different weights and no normalisation: both must come from the file
    loaded, state = load_checkpoint(path, fresh)
    assert loaded is fresh and state["epoch"] == 2 and state["model_class"].endswith("ODEModel")
    x0, u = VAL["states"][:, 0], VAL["controls"]
    assert torch.equal(loaded.rollout(x0, u), model.rollout(x0, u))
    assert torch.equal(loaded.state_norm.std, model.state_norm.std)
    assert loaded.state_norm.std.dtype == F64
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name,dtype", [("mlp", torch.float32), ("explicit", F64)])
def test_checkpoint_rebuilds_model_from_build_spec(tmp_path, name, dtype):
    models = pytest.importorskip("physwm.models")
    if not hasattr(models, "build"):
        pytest.skip("physwm.models.build not written yet")
    opts = {"hidden": [8, 8]} if name == "mlp" else {"learnable": ["length"]}
    model = models.build(name, seed=3, **opts).to(dtype)
    fit(model, TRAIN, epochs=1, batch_size=64, progress=False)
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, state = load_checkpoint(tmp_path / "m.pt")
    assert type(loaded) is type(model) and state["build_spec"] == model.build_spec
    assert next(loaded.parameters()).dtype == dtype
    x0, u = VAL["states"][:, 0].to(dtype), VAL["controls"].to(dtype)
    assert torch.equal(loaded.rollout(x0, u), model.rollout(x0, u))
    with pytest.raises(ValueError, match="build_spec differs .*(hidden|learnable): saved"):  # refused
        other = models.build(name, **({"hidden": [8, 4]} if name == "mlp" else {"learnable": ["masspole"]}))
        load_checkpoint(tmp_path / "m.pt", other)


def test_checkpoint_errors_name_the_problem(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny())
    with pytest.raises(FileExistsError, match="overwrite"):
        save_checkpoint(path, tiny())
    save_checkpoint(path, tiny(seed=1), overwrite=True)
    with pytest.raises(ValueError, match="holds a .*TinyMLP.* but the model given is a .*ODEModel"):
        load_checkpoint(path, explicit())
    with pytest.raises(ValueError, match=r"config differs .*width: saved 16 vs model 8"):
        load_checkpoint(path, TinyMLP(width=8).double())
    with pytest.raises(ValueError, match=r"missing from the checkpoint: \['field.raw.length'\]"):
        load_checkpoint(save_checkpoint(tmp_path / "plain.pt", ODEModel(CartPole())), explicit())
    with pytest.raises(ValueError, match="no build_spec"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", tiny())

    payload = torch.load(path, weights_only=True)
    payload["format_version"] = CHECKPOINT_VERSION + 98
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=f"format version {CHECKPOINT_VERSION + 98}"):
        load_checkpoint(tmp_path / "future.pt", tiny())
    torch.save({"weights": torch.ones(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a physwm checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt", tiny())
    raw = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage" * 100)
    for bad in ("truncated.pt", "garbage.pt"):
        with pytest.raises(ValueError, match="corrupt or truncated"):
            load_checkpoint(tmp_path / bad, tiny())


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A save that fails half-way leaves the previous file intact and no temporary file behind."""
    model = tiny()
    path = save_checkpoint(tmp_path / "m.pt", model)
    before = path.read_bytes()

    def failing_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny(seed=5), overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


# --- resume and determinism ---------------------------------------------------------------------------


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, schedule):
    kw = dict(epochs=4, batch_size=32, lr=1e-2, lr_schedule=schedule, seed=7, progress=False)
    reference = tiny(noise=0.05)  # stochastic loss: the global RNG state must be resumed too
    h_ref = fit(reference, TRAIN, VAL, **kw)

    def interrupt_at_2(epoch, history, model):
        if epoch == 2:
            raise Interrupt

    model = tiny(noise=0.05)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        fit(model, TRAIN, VAL, checkpoint=ckpt, callback=interrupt_at_2, **kw)
    assert load_checkpoint(ckpt, tiny(noise=0.05))[1]["epoch"] == 2
    resumed = tiny(seed=99, noise=0.05)  # a fresh process: different initial weights, all restored
    h = fit(resumed, TRAIN, VAL, checkpoint=ckpt, resume=True, **kw)
    assert h.epoch == [1, 2, 3, 4]
    assert h.train_loss == h_ref.train_loss and h.val_error == h_ref.val_error and h.lr == h_ref.lr
    assert same_weights(resumed, reference)
    # the finished run's checkpoint holds the returned weights; resuming it again trains no more
    again = tiny(seed=5, noise=0.05)
    assert fit(again, TRAIN, VAL, checkpoint=ckpt, resume=True, **kw).epoch == [1, 2, 3, 4]
    assert same_weights(again, reference)


def test_max_time_slices_resume_to_the_uninterrupted_result(tmp_path):
    """max_time stops after an epoch; resuming slice by slice ends where one long run ends."""
    kw = dict(epochs=3, batch_size=64, lr=1e-2, progress=False)
    reference = tiny()
    h_ref = fit(reference, TRAIN, VAL, **kw)
    sessions, h = 0, None
    while h is None or h.stop_reason == "max_time":
        model = tiny(seed=0 if sessions == 0 else sessions + 10)  # later sessions load the checkpoint
        h = fit(model, TRAIN, VAL, checkpoint=tmp_path / "run.pt", resume=True, max_time=1e-9, **kw)
        sessions += 1
        assert sessions <= 3
    assert sessions == 3 and h.stop_reason == "epochs" and h.train_loss == h_ref.train_loss
    assert same_weights(model, reference)


def test_resume_checks(tmp_path):
    ckpt = tmp_path / "run.pt"
    fit(tiny(), TRAIN, epochs=1, checkpoint=ckpt, progress=False)
    with pytest.raises(FileExistsError, match="resume=True"):
        fit(tiny(), TRAIN, epochs=1, checkpoint=ckpt, progress=False)
    untouched = tiny(seed=3)
    with pytest.raises(ValueError, match="fit arguments differ.*batch_size: saved 256 vs now 7"):
        fit(untouched, TRAIN, epochs=2, batch_size=7, checkpoint=ckpt, resume=True, progress=False)
    assert same_weights(untouched, tiny(seed=3))  # a refused resume does not load the checkpoint's weights
    with pytest.raises(ValueError, match="validation: saved False vs now True"):
        fit(tiny(), TRAIN, VAL, epochs=2, checkpoint=ckpt, resume=True, progress=False)
    with pytest.raises(ValueError, match="training data differs"):
        fit(tiny(), VAL, epochs=2, checkpoint=ckpt, resume=True, progress=False)
    with pytest.raises(ValueError, match="cosine schedule anneals over epochs=1"):
        fit(tiny(), TRAIN, epochs=1, lr_schedule="cosine", checkpoint=tmp_path / "cos.pt", progress=False)
        fit(tiny(), TRAIN, epochs=2, lr_schedule="cosine", checkpoint=tmp_path / "cos.pt", resume=True)
    h = fit(tiny(), TRAIN, epochs=3, checkpoint=ckpt, resume=True, progress=False)  # extend a finished run
    assert h.epoch == [1, 2, 3]
    fit(tiny(), TRAIN, epochs=1, checkpoint=ckpt, overwrite=True, progress=False)


def test_same_seed_same_result_bitwise():
    runs = []
    for i, seed in enumerate((0, 0, 1)):
        model = tiny(noise=0.05)  # stochastic loss: fit must seed torch's global RNG too ...
        torch.manual_seed(1000 + i)  # ... whatever the caller's RNG state
        runs.append((model, fit(model, TRAIN, VAL, epochs=3, batch_size=32, lr=1e-2, seed=seed, progress=False)))
    (a, ha), (b, hb), (c, hc) = runs
    assert same_weights(a, b) and ha.train_loss == hb.train_loss and ha.val_error == hb.val_error
    assert not same_weights(a, c) and ha.train_loss != hc.train_loss  # the seed matters


def test_fit_leaves_the_callers_rng_stream_alone():
    model = tiny(noise=0.05)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    fit(model, TRAIN, epochs=1, progress=False)
    assert torch.equal(torch.get_rng_state(), before)


# --- bad input --------------------------------------------------------------------------------------


def test_bad_input_errors():
    model = tiny()
    s, c = TRAIN["states"], TRAIN["controls"]
    with pytest.raises(ValueError, match="states have dimension 3 but TinyMLP expects state_dim=4"):
        fit(model, {"states": s[..., :3], "controls": c}, progress=False)
    with pytest.raises(ValueError, match="controls have dimension 2 .* control_dim=1"):
        fit(model, {"states": s, "controls": c.repeat(1, 1, 2)}, progress=False)
    with pytest.raises(ValueError, match="disagree"):
        fit(model, {"states": s, "controls": c[:, :-2]}, progress=False)
    nan = s.clone()
    nan[3, 7, 2] = float("nan")
    with pytest.raises(ValueError, match="train data contains NaN .* in 2 of its 360 windows"):
        fit(model, {"states": nan, "controls": c}, progress=False)
    with pytest.raises(ValueError, match="val data contains NaN"):
        fit(model, TRAIN, {"states": nan, "controls": c}, progress=False)
    with pytest.raises(ValueError, match="train data is empty"):
        fit(model, {"states": s[:0], "controls": c[:0]}, progress=False)
    with pytest.raises(ValueError, match="no window of 40 steps"):
        fit(model, TRAIN, horizon=40, progress=False)
    with pytest.raises(ValueError, match="no window of 31 steps"):
        fit(model, TRAIN, VAL, val_horizon=31, progress=False)
    with pytest.raises(ValueError, match="lr must be > 0"):
        fit(model, TRAIN, lr=0.0, progress=False)
    with pytest.raises(ValueError, match=r"unknown lr_schedule 'linear'; valid: \[None, 'cosine', 'plateau'\]"):
        fit(model, TRAIN, lr_schedule="linear", progress=False)
    with pytest.raises(ValueError, match="constants_lr must be > 0"):
        fit(model, TRAIN, constants_lr=0.0, progress=False)
    with pytest.raises(ValueError, match="polish_steps must be an integer >= 0"):
        fit(model, TRAIN, polish_steps=-1, progress=False)
    with pytest.raises(ValueError, match=r"unknown optimizer 'sgd'; valid: \['adam', 'lbfgs'\]"):
        fit(model, TRAIN, optimizer="sgd", progress=False)
    with pytest.raises(ValueError, match="weight_decay is not supported with optimizer='lbfgs'"):
        fit(model, TRAIN, optimizer="lbfgs", weight_decay=1e-4, progress=False)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        fit(model, TRAIN, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        fit(model, TRAIN, resume=True, progress=False)
    with pytest.raises(TypeError, match="Trajectories or a dict"):
        fit(model, [s, c], progress=False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(ODEModel(CartPole()), TRAIN, progress=False)
    assert same_weights(model, tiny())  # nothing was trained by the failed calls


# --- divergence ---------------------------------------------------------------------------------------


class NaNAfter(TinyMLP):
    """Its loss turns NaN at the ``after``-th call (a stand-in for a run that blows up)."""

    def __init__(self, after: int):
        super().__init__()
        self.after, self.calls = after, 0

    def loss(self, batch):
        self.calls += 1
        loss, metrics = super().loss(batch)
        return (loss * float("nan") if self.calls >= self.after else loss), metrics


@pytest.mark.parametrize("on_divergence", ["warn", "raise"])
def test_divergence_stops_and_restores_best_weights(tmp_path, on_divergence):
    torch.manual_seed(0)
    model = NaNAfter(after=4 * 3 + 2).double()  # 4 batches per epoch: NaN in epoch 4
    seen = {}
    ckpt = tmp_path / "run.pt"

    def record(epoch, history, m):
        seen[epoch] = copy.deepcopy(m.state_dict())

    kw = dict(epochs=10, batch_size=96, lr=1e-2, checkpoint=ckpt, callback=record, on_divergence=on_divergence)
    if on_divergence == "warn":
        with pytest.warns(TrainingDivergedWarning, match="training loss became nan at epoch 4, batch 2"):
            h = fit(model, TRAIN, VAL, progress=False, **kw)
    else:
        with pytest.raises(TrainingDiverged, match="epoch 4") as info:
            fit(model, TRAIN, VAL, progress=False, **kw)
        h = info.value.history
    assert h.diverged and h.stop_reason == "diverged" and h.epoch == [1, 2, 3, 4]
    assert math.isnan(h.train_loss[-1]) and h.val_error[-1] is None
    assert h.best_epoch == min(range(1, 4), key=lambda e: h.val_error[e - 1])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in seen[h.best_epoch].items())
    loaded, state = load_checkpoint(ckpt, NaNAfter(after=1).double())
    assert same_weights(loaded, model) and state["history"]["stop_reason"] == "diverged"


def test_huge_learning_rate_diverges_cleanly():
    """lr = 1e6 on a float32 linear model overflows within a few steps; the run ends with its initial weights."""
    torch.manual_seed(0)
    model = TinyMLP(linear=True)
    start = copy.deepcopy(model)
    data = {k: v.float() for k, v in TRAIN.items()}
    with pytest.warns(TrainingDivergedWarning, match="diverged"):
        h = fit(model, data, epochs=5, batch_size=16, lr=1e6, horizon=10, progress=False)
    assert h.diverged and "restored the initial weights" in h.message
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), start.parameters()))
    assert all(torch.isfinite(p).all() for p in model.parameters())


# --- history -------------------------------------------------------------------------------------------


def test_history_json_round_trip(tmp_path):
    h = History(epoch=[1, 2], train_loss=[1.0, float("nan")], val_error=[0.5, None], lr=[0.1, 0.1],
                time=[0.1, 0.2], metrics={"mse": [1.0, float("nan")]}, best_epoch=1, best_value=0.5,
                stop_reason="diverged", diverged=True)  # fmt: skip
    path = h.save(tmp_path / "h.json")
    assert json.loads(path.read_text())["train_loss"] == [1.0, None]  # strict JSON
    back = History.load(path)
    assert back.epoch == [1, 2] and math.isnan(back.train_loss[1]) and back.best_val_error == 0.5
    with pytest.raises(FileExistsError):
        h.save(path)


# --- CLI -------------------------------------------------------------------------------------------------


def test_cli_train_end_to_end(tmp_path, capsys):
    data_mod = pytest.importorskip("physwm.data", reason="physwm.data not written yet")
    models = pytest.importorskip("physwm.models")
    if not hasattr(models, "build"):
        pytest.skip("physwm.models.build not written yet")
    from physwm.cli import main

    d = cartpole_data(10, 25, seed=4, params=CartPoleParams(length=0.6))
    lengths = torch.tensor([25, 25, 18, 25, 25, 12, 25, 25, 25, 25])
    for i, n in enumerate(lengths.tolist()):
        d["states"][i, n + 1 :] = float("nan")
        d["controls"][i, n:] = float("nan")
    npz = data_mod.Trajectories(d["states"], d["controls"], lengths, dt=0.02).save(tmp_path / "d.npz")
    out = tmp_path / "run"
    args = ["train", "--data", str(npz), "--model", "explicit", "--out", str(out), "--epochs", "6", "--lr", "0.02",
            "--batch-size", "64", "--quiet"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "best val rollout RMSE" in printed and str(out / "model.pt") in printed
    history = json.loads((out / "history.json").read_text())
    # the explicit model's recipe fits its constants by Gauss-Newton first; they explain the (noise-free) data,
    # so no epoch is needed (--epochs only caps the epochs)
    assert history["epoch"] == [] and history["stop_reason"] == "explained" and history["prefit"]["kept"]
    assert "converged" in printed
    model, state = load_checkpoint(out / "model.pt")  # rebuilt from its build_spec
    length = model.field.identified()["length"]
    assert abs(length - 0.6) < 1e-4  # from the nominal 0.5 m to the true 0.6 m
    assert state["history"]["best_epoch"] == history["best_epoch"]

    assert main(args) == 2  # no silent overwrite
    assert "exists" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--epochs", "1"]) == 0
    with pytest.raises(SystemExit):
        main(["train", "--data", str(npz), "--model", "lstm", "--out", str(out)])
    err = capsys.readouterr().err
    assert "invalid choice: 'lstm'" in err and "explicit" in err and "transformer" in err


def test_cli_train_matches_the_data_discretisation(tmp_path):
    """Data made by Euler steps (gymnasium CartPole-v1) get an Euler model by default, other data RK4."""
    import gymnasium as gym

    from physwm.cli import main
    from physwm.data import collect, make_policy

    runs = {}
    for env_id, kwargs in (("CartPole-v1", {}), ("physwm/CartPole-v0", {"terminate": True})):
        data = collect(gym.make(env_id, **kwargs), make_policy("random"), episodes=6, max_steps=30, seed=0,
                       progress=False)  # fmt: skip
        npz = data.save(tmp_path / f"{len(runs)}.npz")
        out = tmp_path / f"run{len(runs)}"
        args = ["train", "--data", str(npz), "--model", "hybrid", "--out", str(out), "--epochs", "1", "--quiet"]
        assert main(args) == 0
        runs[env_id] = load_checkpoint(out / "model.pt")[0].build_spec["options"]["integrator"]
    assert runs == {"CartPole-v1": "euler", "physwm/CartPole-v0": "rk4"}
    bad = ["train", "--data", str(npz), "--model", "mlp", "--out", str(tmp_path / "x"), "--integrator", "rk4"]
    assert main(bad) == 2
