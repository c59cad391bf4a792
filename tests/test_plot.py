"""Figures draw exactly the data they are given, with labelled axes and one colour per model family."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from physwm import plot  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _line(ax, label):
    lines = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(lines) == 1, f"expected one line labelled {label!r}, got {[ln.get_label() for ln in ax.get_lines()]}"
    return lines[0]


def test_phase_portrait_draws_truth_and_predictions():
    t = np.linspace(0, 1, 11)
    true = np.stack([t, t, np.sin(t), np.cos(t)], -1)  # [T+1, 4]
    pred = true + 0.1
    train = np.random.default_rng(0).normal(size=(50, 4))
    fig = plot.phase_portrait(
        true, {"my_hybrid": torch.from_numpy(pred)}, families={"my_hybrid": "hybrid"}, train=train
    )
    ax = fig.axes[0]
    truth = _line(ax, "truth")
    np.testing.assert_allclose(truth.get_xdata(), true[:, 2])
    np.testing.assert_allclose(truth.get_ydata(), true[:, 3])
    model = _line(ax, "my_hybrid")
    np.testing.assert_allclose(model.get_xdata(), pred[:, 2])
    np.testing.assert_allclose(model.get_ydata(), pred[:, 3])
    assert to_hex(model.get_color()) == plot.PALETTE["hybrid"]  # colour of the family, not of the name
    assert to_hex(truth.get_color()) == plot.PALETTE["truth"]
    np.testing.assert_allclose(_line(ax, "training data").get_xdata(), train[:, 2])
    assert "rad" in ax.get_xlabel() and "rad/s" in ax.get_ylabel()
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"truth", "my_hybrid", "training data"}


def test_phase_portrait_other_dims_batches_and_bad_shapes():
    true = np.arange(2 * 5 * 4, dtype=float).reshape(2, 5, 4)
    fig = plot.phase_portrait(true, {"mlp": true * 2}, dims=(0, 1))
    ax = fig.axes[0]
    truth_lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert len(truth_lines) == 2  # one per trajectory
    np.testing.assert_allclose(truth_lines[1].get_xdata(), true[1, :, 0])
    assert "(m)" in ax.get_xlabel() and "(m/s)" in ax.get_ylabel()
    with pytest.raises(ValueError, match="shape"):
        plot.phase_portrait(true, {"mlp": true[:, :3]})
    with pytest.raises(ValueError, match="dims"):
        plot.phase_portrait(true, dims=(0, 7))


def test_error_vs_horizon_log_scale_and_divergence():
    hs = [1, 10, 100]
    fig = plot.error_vs_horizon({"hybrid": (hs, [1e-3, 1e-2, 1e-1], [1e-4, 1e-3, 1e-2]),
                                 "mlp": (hs, [1e-2, 1.0, float("inf")])})  # fmt: skip
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    h = _line(ax, "hybrid")
    np.testing.assert_allclose(h.get_xdata(), hs)
    np.testing.assert_allclose(h.get_ydata(), [1e-3, 1e-2, 1e-1])
    m = _line(ax, "mlp (diverged)")  # a diverged model is marked, its infinite point not drawn
    y = np.asarray(m.get_ydata(), dtype=float)
    assert y[1] == 1.0 and np.isnan(y[2])
    assert to_hex(m.get_color()) == plot.PALETTE["mlp"]
    assert len(ax.collections) == 1  # the std band of the hybrid only
    assert "horizon" in ax.get_xlabel()


def test_data_efficiency_log_log():
    fig = plot.data_efficiency({"hybrid": ([100, 1000], [0.1, 0.01]), "vae": ([100, 1000], [1.0, 0.5])})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    np.testing.assert_allclose(_line(ax, "vae").get_ydata(), [1.0, 0.5])
    np.testing.assert_allclose(_line(ax, "hybrid").get_xdata(), [100, 1000])
    assert "transitions" in ax.get_xlabel()
    with pytest.raises(ValueError, match="equal length"):
        plot.data_efficiency({"x": ([1, 2, 3], [1.0, 2.0])})


def test_vector_field_panels_and_rms_difference():
    gx, gy = np.linspace(-3, 3, 9), np.linspace(-2, 2, 7)
    TH, TD = np.meshgrid(gx, gy)
    true = np.stack([TD, -np.sin(TH)], -1)  # a pendulum: [Gy, Gx, 2]
    fig = plot.vector_field(gx, gy, true, {"node": true + 1.0, "mlp": true}, families={"node": "node"})
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 3
    assert axes[0].get_title() == "truth"
    assert "RMS diff. 1" in axes[1].get_title()  # every component off by exactly 1
    assert "RMS diff. 0" in axes[2].get_title()
    for a in axes:
        assert a.collections, "streamplot draws a LineCollection"
        assert a.get_xlim() == (-3.0, 3.0)
        assert "θ" in a.get_xlabel()
    assert to_hex(axes[1].collections[0].get_color()[0]) == plot.PALETTE["node"]
    with pytest.raises(ValueError, match=r"\[Gy=7, Gx=9, 2\]"):
        plot.vector_field(gx, gy, true[:, :5], {})


def test_residual_draws_each_sweep():
    x = np.linspace(-2, 2, 21)
    sweeps = [
        {"x": x, "true": -0.1 * x, "learned": {"hybrid": -0.09 * x}, "xlabel": "v (m/s)", "ylabel": "a (m/s^2)",
         "train_range": (-1, 1)},
        {"x": x, "true": -0.2 * x, "learned": {"hybrid": -0.2 * x}},
    ]  # fmt: skip
    fig = plot.residual(sweeps)
    a0, a1 = fig.axes
    np.testing.assert_allclose(_line(a0, "true missing term").get_ydata(), -0.1 * x)
    np.testing.assert_allclose(_line(a0, "hybrid residual").get_ydata(), -0.09 * x)
    np.testing.assert_allclose(_line(a1, "true missing term").get_ydata(), -0.2 * x)
    assert a0.get_xlabel() == "v (m/s)"
    assert any(p.get_label() == "training range" for p in a0.patches)
    with pytest.raises(ValueError, match="missing"):
        plot.residual([{"x": x}])


def test_energy_plot():
    t = np.arange(5) * 0.02
    fig = plot.energy(t, np.ones(5), {"explicit": np.ones(5) * 1.01, "vae": np.array([1, 2, np.nan, 3, 4.0])})
    ax = fig.axes[0]
    np.testing.assert_allclose(_line(ax, "truth").get_xdata(), t)
    np.testing.assert_allclose(_line(ax, "explicit").get_ydata(), np.ones(5) * 1.01)
    assert _line(ax, "vae (diverged)")
    assert "(J)" in ax.get_ylabel() and "(s)" in ax.get_xlabel()


def test_palette_is_consistent():
    assert plot.color("hybrid") == plot.color("hybrid_v2") == plot.color("x", family="hybrid") == plot.PALETTE["hybrid"]
    assert plot.color("something") == plot.color("something")  # stable fallback
    assert len(set(plot.PALETTE.values())) == len(plot.PALETTE)  # no two families share a colour


def test_draw_into_given_axes(tmp_path):
    fig, (a, b) = plt.subplots(1, 2)
    out = plot.error_vs_horizon({"mlp": ([1, 2], [0.1, 0.2])}, ax=b)
    assert out is fig and len(b.get_lines()) == 1 and len(a.get_lines()) == 0
    path = plot.save(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000 and path.endswith("f.png")
