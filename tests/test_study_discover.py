"""Studies with per-task model lists and a discovered row (ModelConfig.discover): runs, results, checks."""

import json

import pytest

from physwm.models import SymbolicField
from physwm.studies import STUDY_FIT, HeadlineConfig, ModelConfig, SplitConfig, StudyConfig, TaskConfig, compare
from physwm.train import load_checkpoint

DRAG = {"cart_viscous": 0.1, "cart_coulomb": 0.1, "pole_damping": 0.005, "cart_drag": 0.15, "pole_drag": 0.005}
FREE = {"terminate": False}


def drag_config(**changes) -> StudyConfig:
    box = dict(start_low=[-0.5, -2.0, 2.0, -3.0], start_high=[0.5, 2.0, 4.2, 3.0])
    split = dict(env_options=FREE, policy="uniform", policy_options={"force_mag": 10.0}, **box)
    task = TaskConfig(
        name="drag", params=DRAG, description="CartPole with drag", models=["hybrid_symbolic", "mlp"],
        train=SplitConfig("train", "in", episodes=6, max_steps=100, seed=0, **split),
        val=SplitConfig("val", "in", episodes=1, max_steps=30, seed=1, **split),
        tests=[SplitConfig("in_dist", "in", episodes=1, max_steps=30, seed=2, **split)],
    )  # fmt: skip
    other = TaskConfig(
        name="plain", description="frictionless", models=["mlp"],
        train=SplitConfig("train", "in", env_options=FREE, episodes=6, max_steps=100, seed=0),
        tests=[SplitConfig("in_dist", "in", env_options=FREE, episodes=1, max_steps=25, seed=2)],
    )  # fmt: skip
    cfg = StudyConfig(
        name="discover study", tasks=[task, other],
        models=[ModelConfig("mlp", options={"hidden": [16]}),
                ModelConfig("hybrid_symbolic", family="hybrid", options={"residual": "symbolic"},
                            discover={"start": "built", "bootstrap_samples": 0, "refit_epochs": 1})],
        seeds=[0], train_transitions=600, headline=HeadlineConfig(task="drag", hybrid="hybrid_symbolic", horizon=20),
        horizons=[1, 10, 20], max_windows=8, fit=STUDY_FIT.replace(steps=12, epochs=4, batch_size=64,
                                                                   val_max_windows=16), workers=1, figures=False,
    )  # fmt: skip
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg.validate()


def test_a_task_runs_only_its_models_and_a_discovered_row_stores_its_equations(tmp_path):
    cfg = drag_config()
    compare(cfg, tmp_path, progress=False)
    runs = sorted(str(p.relative_to(tmp_path / "runs")) for p in (tmp_path / "runs").glob("*/*/*.json"))
    assert runs == ["drag/hybrid_symbolic/n600_s0.json", "drag/mlp/n600_s0.json", "plain/mlp/n600_s0.json"]
    r = json.loads((tmp_path / "runs/drag/hybrid_symbolic/n600_s0.json").read_text())
    d = r["discovery"]
    assert r["stop_reason"] == "discovered" and d["space"] == "force" and d["kept"] == "symbolic"
    # drag and friction found as forces on the cart, with the true drag coefficient within 10%
    assert d["coefficients"]["Q_x"]["x_dot*|x_dot|"] == pytest.approx(-0.15, rel=0.1)
    model, _ = load_checkpoint(tmp_path / "runs/drag/hybrid_symbolic/n600_s0.pt")
    assert isinstance(model.field.residual, SymbolicField) and model.field.residual.space == "force"
    assert "discovery" not in json.loads((tmp_path / "runs/drag/mlp/n600_s0.json").read_text())
    report = (tmp_path / "results.md").read_text()
    drag_table = report.split("## Task `drag`")[1].split("Valid prediction time")[0]
    assert "| hybrid_symbolic |" in drag_table and "| mlp |" in drag_table
    assert "Equations discovered by `hybrid_symbolic` (seed 0, missing generalised forces" in drag_table
    assert "    Q_x = " in drag_table and "x_dot*|x_dot|" in drag_table
    assert "Equations discovered" not in report.split("## Task `plain`")[1]
    meta = json.loads((tmp_path / "results.json").read_text())["meta"]
    assert meta["discovered"]["drag/hybrid_symbolic"]["space"] == "force"


def test_task_models_and_discover_are_checked():
    cfg = drag_config()
    cfg.tasks[0].models = ["nope"]
    with pytest.raises(ValueError, match=r"models \['nope'\] are not models of the study"):
        cfg.validate()
    cfg = drag_config()
    cfg.tasks[0].models = []
    with pytest.raises(ValueError, match="non-empty list"):
        cfg.validate()
    for bad, match in (({"steps": 3}, "unknown options"), ({"start": "later"}, "'fitted' or 'built'")):
        with pytest.raises(ValueError, match=match):
            ModelConfig("h", family="hybrid", discover=bad).validate("models[0]")
    with pytest.raises(ValueError, match="explicit or hybrid"):
        ModelConfig("m", family="mlp", discover={}).validate("models[0]")
    assert StudyConfig.from_dict(drag_config().to_dict()) == drag_config()
