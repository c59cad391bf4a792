"""Studies: a tiny study runs end to end, resumes without redoing finished runs, and rejects bad input."""

import json
import math
import os

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import physwm.cli  # noqa: E402
from physwm.cli import main  # noqa: E402
from physwm.files import from_json_value, json_dumps  # noqa: E402
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

FREE = {"terminate": False}  # frictionless physwm env: fast to simulate


def tiny_config(**changes) -> StudyConfig:
    box = dict(start_low=[-0.1, -0.1, -0.3, -0.3], start_high=[0.1, 0.1, 0.3, 0.3])
    task = TaskConfig(
        name="tiny",
        description="frictionless CartPole, small swings",
        train=SplitConfig("train", "in", env_options=FREE, episodes=4, max_steps=50, seed=0, **box),
        val=SplitConfig("val", "in", env_options=FREE, episodes=1, max_steps=30, seed=1, **box),
        tests=[
            SplitConfig("in_dist", "in", env_options=FREE, episodes=2, max_steps=25, seed=2, **box),
            SplitConfig("big", "out", env_options=FREE, episodes=2, max_steps=25, seed=3,
                        start_low=[0, 0, 2.0, -3], start_high=[0, 0, 3.0, 3]),
            SplitConfig("heavy", "out", env_options=FREE, params={"masspole": 0.3}, episodes=1, max_steps=25,
                        seed=4, **box),
        ],
    )  # fmt: skip
    cfg = StudyConfig(
        name="tiny study",
        tasks=[task],
        models=[
            ModelConfig("hybrid", options={"learnable": [], "hidden": [8]}),
            ModelConfig("mlp", options={"hidden": [16]}),
        ],
        seeds=[0],
        train_transitions=200,
        data_efficiency=DataEfficiencyConfig(task="tiny", sizes=[50, 200]),
        headline=HeadlineConfig(task="tiny", horizon=20),
        horizons=[1, 10, 20],
        max_windows=8,
        fit=STUDY_FIT.replace(steps=12, epochs=4, batch_size=64, val_max_windows=16),
        workers=1,
    )
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg.validate()


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    res = run_study(tiny_config(), out, progress=False)
    return out, res


def _run_files(out):
    return sorted((out / "runs").glob("tiny/*/*.json"))


def test_study_runs_end_to_end(study_dir):
    out, res = study_dir
    # 2 models x (200 transitions + 50 transitions) x 1 seed; the 200-transition runs are shared by compare
    # and the data-efficiency sweep, so they are trained once
    assert res.runs_total == 4 and res.runs_done == 4 and res.data_collected == 5
    names = sorted(p.relative_to(out / "runs" / "tiny").as_posix() for p in _run_files(out))
    assert names == ["hybrid/n200_s0.json", "hybrid/n50_s0.json", "mlp/n200_s0.json", "mlp/n50_s0.json"]
    run = json.loads((out / "runs/tiny/hybrid/n50_s0.json").read_text())
    assert run["n_train"] == 50 and set(run["splits"]) == {"in_dist", "big", "heavy"}
    assert run["splits"]["big"]["distribution"] == "out"
    assert (out / "runs/tiny/hybrid/n50_s0.pt").is_file()
    # the report's numbers are the runs' numbers
    results = json.loads((out / "results.json").read_text())
    table = results["aggregated"]  # columns + rows
    rows = [dict(zip(table["columns"], r)) for r in table["rows"]]
    assert len(rows) == 4 * 3  # one row per (model, size, split)
    row = next(r for r in rows if (r["model"], r["n_train"], r["split"]) == ("mlp", 200, "big"))
    mlp = json.loads((out / "runs/tiny/mlp/n200_s0.json").read_text())["splits"]["big"]
    assert row["rmse@20"] == pytest.approx(mlp["rmse@20"], rel=1e-4) and row["seeds"] == 1
    head = results["headline"]
    hyb = json.loads((out / "runs/tiny/hybrid/n200_s0.json").read_text())["splits"]["big"]
    big = next(s for s in head["splits"] if s["split"] == "big")
    assert big["ratio"] == pytest.approx(mlp["rmse@20"] / hyb["rmse@20"])
    assert big["best_implicit"] == "mlp" and big["other_system"] is False
    assert next(s for s in head["splits"] if s["split"] == "heavy")["other_system"] is True
    md = (out / "results.md").read_text()
    assert "## Headline: hybrid vs the best implicit model" in md and "## Data efficiency" in md
    assert f"{hyb['rmse@20']:.3g}" in md
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("task,model,family,n_train,split,distribution,seeds,")
    assert len(csv) == 1 + 4 * 3  # one row per (model, size, split)
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    for name in ("error_vs_horizon_tiny.png", "data_efficiency.png", "phase_portrait_in_dist.png",
                 "phase_portrait_big.png", "vector_field.png", "residual.png", "energy_big.png"):  # fmt: skip
        assert name in pngs


def test_the_hybrid_starts_as_the_physics(study_dir):
    # On a frictionless system the nominal physics is exact: the hybrid (its residual zero at the start and
    # kept small by its penalty) stays far more accurate than an MLP after the same short training.
    out, _ = study_dir
    hyb = json.loads((out / "runs/tiny/hybrid/n200_s0.json").read_text())["splits"]["in_dist"]
    mlp = json.loads((out / "runs/tiny/mlp/n200_s0.json").read_text())["splits"]["in_dist"]
    assert hyb["rmse@20"] < 0.05 and hyb["rmse@20"] < 0.1 * mlp["rmse@20"]


def test_resume_does_not_redo_finished_runs(study_dir, tmp_path):
    out, _ = study_dir
    before = {p: p.stat().st_mtime_ns for p in _run_files(out)}
    data_before = {p: p.stat().st_mtime_ns for p in (out / "runs" / "data").rglob("*.npz")}
    # workers/threads/figures change how a study runs, not its results: it still resumes
    res = run_study(tiny_config(figures=False, threads=2), out, progress=False)
    assert res.runs_done == 0 and res.data_collected == 0 and res.runs_total == 4
    assert {p: p.stat().st_mtime_ns for p in _run_files(out)} == before
    assert {p: p.stat().st_mtime_ns for p in (out / "runs" / "data").rglob("*.npz")} == data_before
    # an interrupted study: one run never wrote its result -> only that run is redone
    victim = out / "runs/tiny/mlp/n50_s0.json"
    victim.unlink()
    res = run_study(tiny_config(figures=False), out, progress=False)
    assert res.runs_done == 1 and victim.exists()
    assert {p: t for p, t in before.items() if p != victim} == {
        p: p.stat().st_mtime_ns for p in _run_files(out) if p != victim
    }


def test_cli_compare_resumes_and_plot_redraws(study_dir, tmp_path, capsys):
    out, _ = study_dir
    cfg_file = tmp_path / "tiny.json"
    tiny_config(figures=False).to_json(cfg_file)
    assert StudyConfig.from_json(cfg_file) == tiny_config(figures=False)  # JSON round trip
    before = {p: p.stat().st_mtime_ns for p in _run_files(out)}
    assert main(["compare", "--config", str(cfg_file), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "4 runs (0 trained now, 4 found finished)" in printed and "results.md" in printed
    assert {p: p.stat().st_mtime_ns for p in _run_files(out)} == before
    png = out / "figures" / "vector_field.png"
    png.unlink()
    assert main(["plot", str(out)]) == 0
    assert png.is_file()
    assert main(["plot", str(tmp_path)]) == 2  # not a study directory: a clear error, exit code 2
    assert "no results.json" in capsys.readouterr().err


def test_a_different_study_in_the_same_directory_is_refused(study_dir, tmp_path):
    out, _ = study_dir
    other = tiny_config(seeds=[1])
    with pytest.raises(FileExistsError, match="different study"):
        run_study(other, out, progress=False)
    # overwrite=True replaces it (in a copy, to keep the module's directory intact)
    fresh = tmp_path / "fresh"
    run_study(tiny_config(data_efficiency=None, figures=False), fresh, progress=False)
    res = run_study(tiny_config(data_efficiency=None, figures=False, seeds=[1]), fresh, overwrite=True,
                    progress=False)  # fmt: skip
    assert res.runs_done == 2
    assert sorted(p.name for p in fresh.glob("runs/tiny/*/*.json")) == ["n200_s1.json", "n200_s1.json"]


def test_demo_cli_runs_the_default_study(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_default(quick=False, systems=False):
        seen["quick"], seen["systems"] = quick, systems
        return tiny_config(data_efficiency=None, figures=False)

    monkeypatch.setattr(physwm.cli, "default_config", fake_default)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quick", "--no-progress"]) == 0
    assert seen == {"quick": True, "systems": False}
    printed = capsys.readouterr().out
    assert "table: " in printed and (tmp_path / "demo" / "results.md").is_file()


def test_default_configs_are_valid():
    full, quick = default_config(), default_config(quick=True)
    assert [m.name for m in full.models] == ["explicit", "node", "hybrid", "mlp", "vae", "gan", "pinn_mlp",
                                             "hybrid_symbolic"]  # fmt: skip
    # the symbolic hybrid runs only on the drag task, beside the rows that matter there (the study's time)
    assert [m.name for m in full.task_models(full.task("drag"))] == ["explicit", "hybrid", "mlp", "hybrid_symbolic"]
    assert "hybrid_symbolic" not in [m.name for m in full.task_models(full.task("friction"))]
    # issue 15's families train on a small budget and stay out of the data-efficiency sweep (the study's time)
    assert full.data_efficiency.models == ["explicit", "node", "hybrid", "mlp", "vae"]
    assert full.train_transitions <= 5000 and full.headline.task == "friction" and full.headline.horizon == 100
    assert {t.name for t in full.tasks} == {"cartpole", "friction", "drag"}
    assert full.tasks[0].train.env == "CartPole-v1"
    assert any(s.distribution == "out" and not s.env_options.get("terminate", True) for s in full.tasks[1].tests)
    assert StudyConfig.from_dict(full.to_dict()) == full
    assert quick.train_transitions < full.train_transitions and len(quick.seeds) == 1


def test_studies_train_each_family_with_its_recipe():
    # the studies hold no private learning rates: each family's come from its recipe (physwm.models.RECIPES)
    from physwm.models import recipe

    full = default_config()
    assert all(set(m.fit) <= {"steps"} for m in full.models)  # a row may have its own budget, never its own rates
    for m in full.models:
        cfg, rec = full.fit_for(m), recipe(m.build_name)
        assert (cfg.lr, cfg.constants_lr, cfg.prefit_steps) == (rec["lr"], rec.get("constants_lr"),
                                                                rec.get("prefit_steps", 0))  # fmt: skip
        steps = 300 if m.name in ("gan", "pinn_mlp") else 1000  # the study's budget; the new families' smaller
        assert (cfg.steps, cfg.keep_initial, cfg.val_max_windows) == (steps, True, 128)
    assert full.fit_for(full.model("explicit")).lr == 0.03
    # a study that sets a field, or a model's own fit, still wins over the recipe
    assert full.fit_for(ModelConfig("hybrid", fit={"lr": 0.1})).lr == 0.1
    tuned = StudyConfig.from_dict({**full.to_dict(), "fit": {**full.to_dict()["fit"], "lr": 0.02}})
    assert tuned.fit_for(tuned.model("hybrid")).lr == 0.02


# --- bad input -----------------------------------------------------------------------------------------


def test_unknown_model_name_lists_the_valid_ones():
    d = tiny_config().to_dict()
    d["models"][1]["name"] = "resnet"
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; valid: \['explicit', 'node', 'hybrid'"):
        StudyConfig.from_dict(d)
    d = tiny_config().to_dict()
    d["models"][1]["options"] = {"hiddne": [8]}
    with pytest.raises(ValueError, match=r"model 'mlp' on task 'tiny': unknown options \['hiddne'\]"):
        StudyConfig.from_dict(d)


def test_unknown_fields_and_bad_json(tmp_path):
    d = tiny_config().to_dict()
    d["sedds"] = [0]
    with pytest.raises(ValueError, match=r"unknown study config fields \['sedds'\]; valid:"):
        StudyConfig.from_dict(d)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        StudyConfig.from_json(bad)
    with pytest.raises(FileNotFoundError):
        StudyConfig.from_json(tmp_path / "missing.json")
    assert main(["compare", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2


def test_a_split_with_no_data_is_a_clear_error(tmp_path):
    cfg = tiny_config()
    cfg.tasks[0].tests[0].horizons = [40]  # more than its 25 steps: caught before collecting
    with pytest.raises(ValueError, match="in_dist.*exceed max_steps 25.*no window"):
        cfg.validate()
    # episodes that terminate early (gymnasium CartPole-v1 under a random policy) leave no window of 100
    # steps: caught after collection, naming the split and its longest episode
    cfg = tiny_config(data_efficiency=None, figures=False)
    cfg.tasks[0].tests[0] = SplitConfig("short", "in", env="CartPole-v1", policy="random", episodes=2,
                                        max_steps=200, seed=0, horizons=[100])  # fmt: skip
    with pytest.raises(ValueError, match=r"split 'short' has no window of 100 steps.*longest episode has \d+"):
        run_study(cfg, tmp_path / "s", progress=False)
    cfg = tiny_config()
    cfg.tasks[0].tests[1].episodes = 0
    with pytest.raises(ValueError, match="episodes must be an integer >= 1"):
        cfg.validate()


def test_a_model_whose_state_dim_does_not_match_the_data():
    from physwm.data import EpisodeData, Trajectories

    data = Trajectories(torch.zeros(1, 3, 4, dtype=torch.float64), torch.zeros(1, 2, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="train states have dimension 4 but model 'x' expects state_dim=3"):
        EpisodeData(data, "train", 3, 1, "model 'x'")
    with pytest.raises(ValueError, match="recorded every 0.02 s but model 'x' steps dt = 0.05 s"):
        EpisodeData(data, "train", 4, 1, "model 'x'", dt=0.05)


def test_training_pool_too_small(tmp_path):
    cfg = tiny_config(data_efficiency=None, figures=False, train_transitions=10_000)
    with pytest.raises(ValueError, match="training pool holds 200 transitions, fewer than the 10000"):
        run_study(cfg, tmp_path / "p", progress=False)


def test_first_transitions_cuts_the_last_episode():
    from physwm.data import Trajectories

    traj = Trajectories(torch.randn(3, 11, 4, dtype=torch.float64), torch.randn(3, 10, 1, dtype=torch.float64),
                        lengths=[10, 4, 10])  # fmt: skip
    sub = traj.head(12)
    assert sub.lengths.tolist() == [10, 2] and sub.num_transitions == 12
    assert torch.equal(sub.states[1, :3], traj.states[1, :3])
    assert math.isclose(sub.dt, traj.dt)
    with pytest.raises(ValueError, match="holds only 24"):
        traj.head(25)


def test_json_keeps_infinities():
    s = json_dumps({"a": float("inf"), "b": [float("nan"), 1.0]})
    json.loads(s)  # strict JSON
    back = from_json_value(json.loads(s))
    assert back["a"] == math.inf and math.isnan(back["b"][0]) and back["b"][1] == 1.0
    assert os.linesep  # keep os imported for readability of mtime checks above


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    """The tiny study (no figures, no data-efficiency sweep) run on the process pool (spawned workers)."""
    out = tmp_path_factory.mktemp("pool")
    res = run_study(tiny_config(workers=2, figures=False, data_efficiency=None), out, progress=False)
    return out, res


def test_worker_processes_give_the_same_results(study_dir, pool_dir):
    # the process pool (spawned workers) must compute exactly what the in-process run computed
    out, _ = study_dir
    par, res = pool_dir
    assert res.runs_done == 2 and res.data_collected == 5
    for model in ("hybrid", "mlp"):
        a = json.loads((out / f"runs/tiny/{model}/n200_s0.json").read_text())["splits"]
        b = json.loads((par / f"runs/tiny/{model}/n200_s0.json").read_text())["splits"]
        assert a == b


def _numbers(results_json):
    """results.json without what measures time (wall and training times differ from run to run)."""
    d = json.loads(results_json.read_text())
    table = d["aggregated"]
    keep = [i for i, c in enumerate(table["columns"]) if "time" not in c]
    rows = [[row[i] for i in keep] for row in table["rows"]]
    return d["headline"], [table["columns"][i] for i in keep], rows, d["config"]


def test_a_study_on_ray_gives_the_process_pools_results_bit_for_bit(pool_dir, tmp_path):
    from physwm.studies import RayExecutor

    try:
        executor = RayExecutor(num_cpus=2, object_store_memory=100 * 2**20)
    except Exception as err:  # noqa: BLE001 - whatever stops a local Ray instance from starting
        pytest.skip(f"a local Ray instance could not start here: {type(err).__name__}: {err}")
    try:
        res = run_study(tiny_config(workers=2, figures=False, data_efficiency=None), tmp_path / "ray",
                        progress=False, executor=executor)  # fmt: skip
    finally:
        executor.shutdown()
    par, _ = pool_dir
    assert res.runs_done == 2 and res.data_collected == 5
    headline, cols, rows, config = _numbers(tmp_path / "ray" / "results.json")
    assert (headline, cols, rows, config) == _numbers(par / "results.json")
    assert any("rmse" in c for c in cols) and len(rows) >= 6


def test_executors_by_name():
    from physwm.studies import EXECUTORS, make_executor

    assert EXECUTORS == ("process", "ray")
    assert make_executor("process", 2) is None
    with pytest.raises(ValueError, match="valid"):
        make_executor("dask", 2)
    with pytest.raises(ValueError, match="--executor ray"):
        make_executor("process", 2, address="auto")
    with pytest.raises(SystemExit):
        main(["compare", "--out", "x", "--executor", "slurm"])


def test_progress_moves_as_each_job_finishes(monkeypatch):
    # the bar must advance per finished job, not once all are done: the second job finishes only once the
    # first was counted (or gives up after 5 s, which the old wait-for-all loop would have made it do)
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import physwm.studies.runner as runner

    counted = threading.Event()
    waited = []

    class Bar:
        def __init__(self, *args, **kwargs):
            self.n = 0

        def update(self, k):
            self.n += k
            counted.set()

        def close(self):
            pass

    monkeypatch.setattr(runner, "tqdm", Bar)
    with ThreadPoolExecutor(2) as ex:
        runner._Jobs(2, ex).run([(lambda: None, ()), (lambda: waited.append(counted.wait(5)), ())], True, "jobs")
    assert waited == [True]


def test_systems_study_configs_and_a_tiny_run_on_pendulum_and_acrobot(tmp_path):
    full, quick = default_config(systems=True), default_config(quick=True, systems=True)
    pend = full.task("pendulum")
    assert pend.system == "damped_pendulum" and pend.train.episodes == 25 and pend.tests[0].episodes == 25
    assert pend.train.start_radius == [1.3, 2.3] and pend.train.max_steps == 39  # 40 states every 0.5 s
    assert pend.true_params().alpha == 0.2 and pend.true_params().omega0 == pytest.approx(2 * math.pi / 6)
    assert full.task("acrobot").lyapunov and quick.train_transitions < full.train_transitions
    # a tiny version of it, in this process: every split collected, Lyapunov times reported for the acrobot
    tasks = []
    for t in quick.tasks:
        tests = [SplitConfig(**{**s.__dict__, "episodes": 1, "max_steps": min(s.max_steps, 12),
                                "horizons": [1, 10]}) for s in t.tests[:2]]  # fmt: skip
        train = SplitConfig(**{**t.train.__dict__, "episodes": 3, "max_steps": 12})
        tasks.append(TaskConfig(**{**t.__dict__, "train": train, "tests": tests, "val": None}))
    cfg = StudyConfig(name="tiny systems", tasks=tasks, models=[ModelConfig("explicit"), ModelConfig("mlp")],
                      seeds=[0], train_transitions=30, headline=HeadlineConfig(task="pendulum", horizon=10),
                      horizons=[1, 10], max_windows=4, fit=STUDY_FIT.replace(steps=4, epochs=2, val_max_windows=4),
                      workers=1, figures=False).validate()  # fmt: skip
    res = run_study(cfg, tmp_path / "sys", progress=False)
    assert res.runs_total == 4
    run = json.loads((tmp_path / "sys" / "runs" / "acrobot" / "mlp" / "n30_s0.json").read_text())
    split = run["splits"]["in_dist"]
    assert split["lyapunov_exponent"] > 0 and split["vpt_lyapunov"] == pytest.approx(
        split["vpt_s"] * split["lyapunov_exponent"])
    pend_run = json.loads((tmp_path / "sys" / "runs" / "pendulum" / "explicit" / "n30_s0.json").read_text())
    assert "lyapunov_exponent" not in pend_run["splits"]["in_dist"]
    assert set(pend_run["identified"]) == {"omega0", "alpha"}
    assert "Valid prediction time in Lyapunov times" in (tmp_path / "sys" / "results.md").read_text()
