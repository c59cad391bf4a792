"""Deployment: an exported model runs in a fresh Python process that never imports physwm and gives physwm's
rollouts; int8 quantisation of implicit models keeps their predictions close and refuses ODE models."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import physwm
from physwm.models import build

# Runs in a fresh interpreter: torch only. Reads the exported file and the inputs, writes the outputs.
_CONSUMER = textwrap.dedent(
    """
    import sys, numpy as np, torch
    torch.set_num_threads(1)
    path, inputs, out = sys.argv[1:4]
    program = torch.export.load(path).module()
    d = np.load(inputs)
    x0, u = torch.from_numpy(d["x0"]), torch.from_numpy(d["u"])
    with torch.no_grad():
        if u.ndim == 3 and d["kind"] == "step":
            states, x = [x0], x0
            for t in range(u.shape[1]):
                x = program(x, u[:, t])
                states.append(x)
            states = torch.stack(states, 1)
        else:
            states = program(x0, u)
    assert "physwm" not in sys.modules, "the consumer imported physwm"
    np.save(out, states.numpy())
    """
)


def _run_without_physwm(tmp_path, exported, x0, u, kind: str) -> np.ndarray:
    inputs, out = tmp_path / "inputs.npz", tmp_path / "out.npy"
    np.savez(inputs, x0=x0.numpy(), u=u.numpy(), kind=kind)
    script = tmp_path / "consumer.py"
    script.write_text(_CONSUMER)
    # run from tmp_path, so the repository (and physwm) is not on sys.path by way of the working directory
    subprocess.run([sys.executable, str(script), str(exported), str(inputs), str(out)], check=True, cwd=tmp_path,
                   env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    return np.load(out)


def _trained_looking_hybrid() -> torch.nn.Module:
    """A hybrid with non-trivial statistics, constants and residual weights, of the size a fitted one has
    (identified constants a few percent off, a residual of about 1% of the accelerations)."""
    model = build("hybrid")
    g = torch.Generator().manual_seed(0)
    states = torch.randn(8, 6, 4, generator=g) * torch.tensor([0.5, 1.0, 0.3, 2.0])
    model.fit_normalization(states, torch.randn(8, 5, 1, generator=g) * 5)
    with torch.no_grad():
        model.field.residual.net[-1].weight.add_(0.01 * torch.randn(2, 32, generator=g))
        for p in model.field.physics.parameters():
            p.mul_(1.03)
    return model.eval()


def test_exported_hybrid_reproduces_physwms_rollouts_without_physwm(tmp_path):
    """In float64, so the comparison measures the export, not float32 round-off amplified by chaotic swings
    (physwm's own rollout and a loop of its step differ by up to 5e-6 after 100 float32 steps here)."""
    model = _trained_looking_hybrid().double()
    g = torch.Generator().manual_seed(1)
    x0 = (2 * torch.rand(16, 4, generator=g, dtype=torch.float64) - 1) * torch.tensor([0.5, 0.5, 3.0, 3.0])
    u = (2 * torch.rand(16, 100, 1, generator=g, dtype=torch.float64) - 1) * 10
    with torch.no_grad():
        expected = model.rollout(x0, u).numpy()
    assert np.abs(expected[:, -1] - expected[:, 0]).max() > 1.0  # the rollouts go somewhere
    # the one-step map, looped by the consumer, in a process without physwm, at a batch size never exported
    path = physwm.export(model, tmp_path / "hybrid.pt2")
    got = _run_without_physwm(tmp_path, path, x0, u, "step")
    assert got.shape == expected.shape == (16, 101, 4)
    assert np.abs(got - expected).max() < 1e-9
    # the description travels with the file; refusing to overwrite it
    _, meta = physwm.load_exported(path)
    assert meta["kind"] == "step" and meta["state_dim"] == 4 and meta["dt"] == 0.02 and meta["dtype"] == "float64"
    assert meta["build_spec"] == json.loads(json.dumps(model.build_spec))
    with pytest.raises(FileExistsError):
        physwm.export(model, path)


def test_exported_rollout_of_a_fixed_horizon_matches_step_by_step(tmp_path):
    model = build("mlp", hidden=[16, 16]).eval()
    path = physwm.export(model, tmp_path / "mlp.pt2", horizon=7)
    x0, u = torch.randn(3, 4), torch.randn(3, 7, 1)
    with torch.no_grad():
        expected = model.rollout(x0, u).numpy()
    got = _run_without_physwm(tmp_path, path, x0, u, "rollout")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="WorldModel"):
        physwm.export(torch.nn.Linear(4, 4), tmp_path / "x.pt2")


def test_quantize_keeps_an_mlps_predictions_close_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = build("mlp").eval()
    g = torch.Generator().manual_seed(2)
    states = torch.randn(16, 11, 4, generator=g)
    model.fit_normalization(states, torch.randn(16, 10, 1, generator=g))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = physwm.quantize(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert "DynamicQuantizedLinear" in repr(q) and "DynamicQuantizedLinear" not in repr(model)
    x, u = torch.randn(256, 4, generator=g), torch.randn(256, 1, generator=g)
    with torch.no_grad():
        change = model.step(x, u) - x
        err = (q.step(x, u) - model.step(x, u)).abs().max() / change.abs().max()
    assert 0 < float(err) < 0.05  # int8: a small, non-zero change of the predicted state change
    assert q.build_spec == model.build_spec
    with pytest.raises(TypeError, match="implicit"):
        physwm.quantize(build("hybrid"))
    with pytest.raises(ValueError, match="float32"):
        physwm.quantize(build("mlp").double())


def test_static_quantize_calibrates_every_layer_and_keeps_an_mlps_predictions_close():
    """Static int8 (``calibration=``): weights and activations int8 (Linear+ReLU fused), calibrated on states
    the model steps; the predictions stay close to the float model's. Dynamic is the default."""
    torch.manual_seed(0)
    model = build("mlp", activation="relu").eval()
    g = torch.Generator().manual_seed(2)
    states = torch.randn(16, 11, 4, generator=g)
    model.fit_normalization(states, torch.randn(16, 10, 1, generator=g))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, u = torch.randn(512, 4, generator=g), torch.randn(512, 1, generator=g)
    q = physwm.quantize(model, calibration=(x, u))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert "QuantizedLinearReLU" in repr(q) and "Dynamic" not in repr(q)
    x2, u2 = torch.randn(256, 4, generator=g), torch.randn(256, 1, generator=g)
    with torch.no_grad():
        change = model.step(x2, u2) - x2
        err = (q.step(x2, u2) - model.step(x2, u2)).abs().max() / change.abs().max()
    assert 0 < float(err) < 0.05, float(err)
    assert q.build_spec == model.build_spec
    with pytest.raises(ValueError, match="calibration"):
        physwm.quantize(model, calibration=(x, u[:10]))
    with pytest.raises(TypeError, match="feed-forward"):
        physwm.quantize(build("gru"), calibration=(x, u))
