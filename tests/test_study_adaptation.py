"""The adaptation split of the studies: a changed-system split scored again after each model adapts to K of
its transitions (``SplitConfig.adapt``), and clear errors for bad K."""

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from physwm.data import Trajectories  # noqa: E402
from physwm.files import read_json  # noqa: E402
from physwm.studies import (  # noqa: E402
    STUDY_FIT,
    DataEfficiencyConfig,
    HeadlineConfig,
    ModelConfig,
    SplitConfig,
    StudyConfig,
    TaskConfig,
    default_config,
    run_study,
)
from physwm.studies.adaptation import ADAPT_SEED_OFFSET, adapted_name, adapted_of, pool_name  # noqa: E402
from physwm.studies.paths import data_path  # noqa: E402
from physwm.studies.report import aggregated_rows  # noqa: E402

FREE = {"terminate": False}
BOX = dict(start_low=[-0.1, -0.1, -0.3, -0.3], start_high=[0.1, 0.1, 0.3, 0.3])


def adapt_config(adapt=(30,), **split_changes) -> StudyConfig:
    heavy = dict(name="heavy", distribution="out", env_options=FREE, params={"masspole": 0.3}, episodes=2,
                 max_steps=40, seed=4, adapt=list(adapt), **BOX)  # fmt: skip
    heavy.update(split_changes)
    task = TaskConfig(
        name="tiny",
        train=SplitConfig("train", "in", env_options=FREE, episodes=4, max_steps=50, seed=0, **BOX),
        val=SplitConfig("val", "in", env_options=FREE, episodes=1, max_steps=30, seed=1, **BOX),
        tests=[SplitConfig("in_dist", "in", env_options=FREE, episodes=1, max_steps=40, seed=2, **BOX),
               SplitConfig(**heavy)],
    )  # fmt: skip
    return StudyConfig(
        name="tiny adaptation study",
        tasks=[task],
        models=[ModelConfig("hybrid", options={"hidden": [8]}), ModelConfig("mlp", options={"hidden": [16]})],
        seeds=[0],
        train_transitions=200,
        data_efficiency=DataEfficiencyConfig(task="tiny", sizes=[100, 200], models=["hybrid"]),
        headline=HeadlineConfig(task="tiny", horizon=20),
        horizons=[1, 20],
        max_windows=8,
        fit=STUDY_FIT.replace(steps=12, epochs=4, batch_size=64, val_max_windows=16),
        workers=1,
        figures=False,
    ).validate()


@pytest.fixture(scope="module")
def adapted_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("adapt_study")
    res = run_study(adapt_config(), out, progress=False)
    return out, res


def test_the_runner_adapts_each_model_and_the_adapted_hybrid_beats_the_fixed_one(adapted_study):
    out, res = adapted_study
    pool = Trajectories.load(data_path(out, "tiny", pool_name("heavy")))
    test = Trajectories.load(data_path(out, "tiny", "heavy"))
    assert pool.num_transitions == 30 and pool.num_episodes == 1
    assert not (pool.states[0, 0] == test.states[0, 0]).all()  # its own seed, not the first test episode
    hybrid = read_json(out / "runs" / "tiny" / "hybrid" / "n200_s0.json")
    fixed, adapted = hybrid["splits"]["heavy"], hybrid["splits"][adapted_name("heavy", 30)]
    assert adapted["adapt_k"] == 30 and adapted["adapt_loss_after"] < adapted["adapt_loss_before"]
    # the pole is 3x heavier than the hybrid's physics: re-identifying the constants removes most of the error
    assert adapted["rmse@20"] < 0.2 * fixed["rmse@20"], (adapted["rmse@20"], fixed["rmse@20"])
    assert set(read_json(out / "runs" / "tiny" / "mlp" / "n200_s0.json")["splits"]) == {"in_dist", "heavy",
                                                                                           "heavy+adapt30"}
    # the data-efficiency runs (other sizes) are not adapted; splits without adapt neither
    assert "heavy+adapt30" not in read_json(out / "runs" / "tiny" / "hybrid" / "n100_s0.json")["splits"]
    assert "in_dist+adapt30" not in hybrid["splits"]
    # the report: an adapted headline row and ratio, and the adapted split as a column of the task's tables
    head = res.headline
    (row,) = head["adapted"]
    assert (row["split"], row["k"], row["best_implicit"]) == ("heavy+adapt30", 30, "mlp")
    assert math.isclose(row["hybrid"], adapted["rmse@20"], rel_tol=1e-9)
    assert head["ratio_out_other_system_adapted"][30] == pytest.approx(row["ratio"])
    md = (out / "results.md").read_text()
    assert "heavy+adapt30 @20" in md and "after every model adapts to 30 transitions" in md
    splits = {r["split"] for r in aggregated_rows(read_json(out / "results.json"))}
    assert "heavy+adapt30" in splits


def test_adapted_names_round_trip():
    assert adapted_of(adapted_name("heavier_pole", 30)) == ("heavier_pole", 30)
    assert adapted_of("heavier_pole") is None
    assert ADAPT_SEED_OFFSET > 100  # far from the seeds the studies give their splits


@pytest.mark.parametrize(
    "adapt, match",
    [
        ((3,), "cannot determine the 6 constants"),
        ((30.0,), "must be an int"),
        ((True,), "must be an int"),
        ((30, 30), "twice"),
    ],
)
def test_bad_adapt_values_are_clear_errors(adapt, match):
    with pytest.raises(ValueError, match=match):
        adapt_config(adapt)


def test_adapt_must_be_a_non_empty_list_on_a_test_split():
    with pytest.raises(ValueError, match="non-empty list"):
        adapt_config(())
    cfg = adapt_config()
    cfg.tasks[0].train.adapt = [30]
    with pytest.raises(ValueError, match="test splits only"):
        cfg.validate()


def test_adapt_survives_the_json_round_trip(tmp_path):
    cfg = adapt_config((30, 50))
    cfg.to_json(tmp_path / "c.json")
    again = StudyConfig.from_json(tmp_path / "c.json")
    assert again.tasks[0].tests[1].adapt == [30, 50] and again.tasks[0].tests[0].adapt is None


def test_the_default_study_adapts_to_30_transitions_on_exactly_the_changed_systems():
    full, quick = default_config(), default_config(quick=True)
    adapted = {(t.name, s.name): s.adapt for t in full.tasks for s in t.tests if s.adapt}
    assert adapted == {("friction", n): [30] for n in ("heavier_pole", "longer_pole", "more_friction")}
    friction = full.task("friction")
    assert all(friction.true_params(s) != friction.true_params() for s in friction.tests if s.adapt)
    assert not any(s.adapt for t in quick.tasks for s in t.tests)  # the quick study keeps its minute
