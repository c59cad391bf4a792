"""A study's figures: the arrays they are drawn from (saved, so they can be redrawn) and the drawing.

:func:`write_figure_data` evaluates the trained models of the headline task (rollouts, energies, vector
fields, what the hybrid learned) into ``figures/figure_data.npz``; :func:`draw_figures` draws every figure
from that file and ``results.json`` alone (``physwm plot DIR``), with the task's system's labels.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import plot
from ..data import Trajectories
from ..evaluate import eval_windows, rollout_predictions, time_derivative
from ..files import atomic_write, read_json
from ..systems import DEFAULT_SYSTEM, get_system
from ..train import load_checkpoint
from .config import StudyConfig
from .paths import data_path, run_path
from .report import DISTRIBUTIONS, aggregated_rows, lookup, report_horizon

__all__ = ["write_figure_data", "draw_figures"]

_FIG_DATA = "figure_data.npz"


@torch.no_grad()
def write_figure_data(cfg: StudyConfig, out: Path) -> Path | None:
    """Arrays for the figures of the headline task (seed ``seeds[0]``, ``train_transitions``), from the runs'
    checkpoints: showcase rollouts, energies, vector fields on the system's phase-portrait slice, and what
    each hybrid learned along sweeps of the velocities."""
    task = cfg.task(cfg.headline_task())
    system = task.system_class
    seed, n = cfg.seeds[0], cfg.train_transitions
    models = {}
    for m in cfg.models:
        p = run_path(out, task.name, m.name, n, seed).with_suffix(".pt")
        if p.exists():
            models[m.name] = load_checkpoint(p)[0].eval()
    if not models:
        return None
    arrays: dict[str, np.ndarray] = {}
    train = Trajectories.load(data_path(out, task.name, "train")).head(n)
    tr_states = train.valid_states()
    step = max(1, tr_states.shape[0] // 2000)
    arrays["train_states"] = tr_states[::step].numpy()
    showcase = []
    for dist in DISTRIBUTIONS:
        s = next((s for s in task.tests if s.distribution == dist), None)
        if s is None:
            continue
        showcase.append(s.name)
        data = Trajectories.load(data_path(out, task.name, s.name))
        H = max(s.horizons or cfg.horizons)
        w = eval_windows(data, H, max_windows=cfg.max_windows, seed=0)
        one = {"states": w["states"][:1], "controls": w["controls"][:1]}
        truth = one["states"][0].double()
        arrays[f"rollout__{s.name}__truth"] = truth.numpy()
        arrays[f"controls__{s.name}"] = one["controls"][0].double().numpy()
        energy_fn = system(task.true_params(s)).energy if system.has_energy() else None
        if energy_fn is not None:
            arrays[f"energy__{s.name}__truth"] = energy_fn(truth).numpy()
        for name, model in models.items():
            pred = rollout_predictions(model, one)[0].double()
            arrays[f"rollout__{s.name}__{name}"] = pred.numpy()
            if energy_fn is not None:
                arrays[f"energy__{s.name}__{name}"] = energy_fn(pred).numpy()
    # vector field on the phase-portrait slice (other entries and the control zero); an angle's slice is
    # centred on the multiple of pi nearest the training data (CartPole's friction task: hanging)
    i, j = system.phase_dims
    centre = 0.0
    if system.states[i].kind == "angle":
        centre = float(round(float(tr_states[:, i].mean()) / math.pi) * math.pi)
        gx = np.linspace(centre - math.pi, centre + math.pi, 25)
    else:
        lo, hi = float(tr_states[:, i].min()), float(tr_states[:, i].max())
        gx = np.linspace(lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo), 25)
    gy = np.linspace(-6.0, 6.0, 25)
    GX, GY = np.meshgrid(gx, gy)
    x = torch.zeros(GX.size, system.state_dim, dtype=torch.float64)
    x[:, i], x[:, j] = torch.from_numpy(GX.ravel()), torch.from_numpy(GY.ravel())
    u = torch.zeros(GX.size, system.control_dim, dtype=torch.float64)
    true_field = system(task.true_params())
    arrays["field__grid_x"], arrays["field__grid_y"] = gx, gy
    arrays["field__truth"] = true_field(x, u)[:, [i, j]].reshape(GX.shape + (2,)).numpy()
    for name, model in models.items():
        f = time_derivative(model, x, u)
        arrays[f"field__{name}"] = f[:, [i, j]].double().reshape(GX.shape + (2,)).numpy()
    # what each hybrid learned (identified constants + residual) against the term the nominal physics misses,
    # along a sweep of each velocity (its own acceleration row)
    nominal = system(task.nominal_params())
    hybrids = [m.name for m in cfg.models if m.build_name == "hybrid" and m.name in models]
    sweeps = []
    for col in system.velocity_index or ():
        var = system.states[col].name
        grid = np.linspace(-3.0, 3.0, 121) if system.states[col].kind == "velocity" else np.linspace(-8.0, 8.0, 121)
        xs = torch.zeros(grid.size, system.state_dim, dtype=torch.float64)
        xs[:, i] = centre
        xs[:, col] = torch.from_numpy(grid)
        us = torch.zeros(grid.size, system.control_dim, dtype=torch.float64)
        sweeps.append(var)
        arrays[f"residual__{var}__x"] = grid
        arrays[f"residual__{var}__truth"] = (true_field(xs, us) - nominal(xs, us))[:, col].numpy()
        arrays[f"residual__{var}__train_range"] = np.array(
            [float(tr_states[:, col].min()), float(tr_states[:, col].max())]
        )
        for name in hybrids:
            learned = time_derivative(models[name], xs, us).double() - nominal(xs, us)
            arrays[f"residual__{var}__{name}"] = learned[:, col].numpy()
    meta = {
        "task": task.name,
        "system": system.name,
        "seed": seed,
        "n_train": n,
        "dt": float(train.dt),
        "showcase": showcase,
        "models": list(models),
        "families": {m.name: m.build_name for m in cfg.models},
        "hybrids": hybrids,
        "sweeps": sweeps,
        "theta_center": centre,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    # float32 is plenty for drawing and halves the file
    np.savez_compressed(buf, **{k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in arrays.items()})
    data = buf.getvalue()
    return atomic_write(out / "figures" / _FIG_DATA, lambda f: f.write(data), overwrite=True)


def draw_figures(out: str | os.PathLike) -> list[Path]:
    """(Re)draw every figure of a study directory from its results.json and figures/figure_data.npz.

    Returns:
        the PNG files written to ``out/figures``.

    Raises:
        FileNotFoundError: if ``out`` holds no results.json (not a study directory).
    """
    out = Path(out)
    res_path = out / "results.json"
    if not res_path.is_file():
        raise FileNotFoundError(f"{out} holds no results.json: not a study directory (run `physwm compare` first)")
    res = read_json(res_path, "study result")
    try:
        cfg = StudyConfig.from_dict(res["config"], validate=False)
        agg = aggregated_rows(res)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{res_path} is not a physwm study result: {err}") from err
    fams = {m.name: m.build_name for m in cfg.models}
    figdir = out / "figures"
    files: list[Path] = []

    def save(fig, name, dpi=110):
        files.append(Path(plot.save(fig, figdir / name, dpi=dpi)))

    # error vs horizon: per task, the first in- and out-of-distribution split
    for t in cfg.tasks:
        shown = [s for s in (next((s for s in t.tests if s.distribution == d), None) for d in DISTRIBUTIONS) if s]
        fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4.2), squeeze=False, layout="constrained")
        for ax, s in zip(axes.flat, shown):
            hs = s.horizons or cfg.horizons
            errors = {}
            for m in cfg.models:
                r = lookup(agg, t.name, m.name, cfg.train_transitions, s.name)
                if r is not None:
                    errors[m.name] = (
                        hs,
                        [r.get(f"rmse@{h}", math.nan) for h in hs],
                        [r.get(f"rmse@{h}_std", math.nan) for h in hs],
                    )
            plot.error_vs_horizon(
                errors,
                families=fams,
                ax=ax,
                title=f"{t.name}: {s.name} ({'in' if s.distribution == 'in' else 'out of'} distribution)",
            )
        save(fig, f"error_vs_horizon_{t.name}.png")
    # data efficiency
    de = cfg.data_efficiency
    if de is not None:
        t = cfg.task(de.task)
        sizes = sorted(set(de.sizes))
        shown = [s for s in (next((s for s in t.tests if s.distribution == d), None) for d in DISTRIBUTIONS) if s]
        fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4.2), squeeze=False, layout="constrained")
        for ax, s in zip(axes.flat, shown):
            k = f"rmse@{report_horizon(cfg, s)}"
            curves = {}
            for m in de.models or [m.name for m in cfg.models]:
                rows = [lookup(agg, t.name, m, n, s.name) or {} for n in sizes]
                curves[m] = (sizes, [r.get(k, math.nan) for r in rows], [r.get(k + "_std", math.nan) for r in rows])
            plot.data_efficiency(
                curves,
                families=fams,
                ax=ax,
                ylabel=f"{k.split('@')[1]}-step rollout RMSE (normalised)",
                title=f"{t.name}: {s.name}",
            )
        save(fig, "data_efficiency.png")
    # figures from the saved arrays
    fd_path = figdir / _FIG_DATA
    if fd_path.is_file():
        with np.load(fd_path, allow_pickle=False) as z:
            arr = {k: z[k] for k in z.files}
        meta = json.loads(str(arr["meta"]))
        fams = meta.get("families", fams)
        system = get_system(meta.get("system", DEFAULT_SYSTEM.name))
        train = arr.get("train_states")
        for s in meta["showcase"]:
            truth = arr[f"rollout__{s}__truth"]
            preds = {m: arr[f"rollout__{s}__{m}"] for m in meta["models"] if f"rollout__{s}__{m}" in arr}
            fig = plot.phase_portrait(
                truth,
                preds,
                train=train,
                families=fams,
                system=system,
                title=f"{meta['task']}: {s}, {truth.shape[0] - 1}-step open-loop rollouts",
            )
            save(fig, f"phase_portrait_{s}.png")
            if f"energy__{s}__truth" in arr:
                tt = np.arange(truth.shape[0]) * meta["dt"]
                epreds = {m: arr[f"energy__{s}__{m}"] for m in meta["models"] if f"energy__{s}__{m}" in arr}
                fig = plot.energy(tt, arr[f"energy__{s}__truth"], epreds, families=fams, title=f"{meta['task']}: {s}")
                save(fig, f"energy_{s}.png")
        learned = {m: arr[f"field__{m}"] for m in meta["models"] if f"field__{m}" in arr}
        i, j = system.phase_dims
        others = [q.name for k, q in enumerate(system.states) if k not in (i, j)]
        at = ", ".join(others + [q.name for q in system.controls]) + " = 0" if others or system.controls else ""
        where = f"{meta['task']}: ({system.states[i].name}, {system.states[j].name}) slice"
        where += f" at {at}" if at else ""
        fig = plot.vector_field(
            arr["field__grid_x"],
            arr["field__grid_y"],
            arr["field__truth"],
            learned,
            train=None if train is None else train[:, [i, j]],
            families=fams,
            system=system,
            title=where,
        )
        save(fig, "vector_field.png", dpi=80)
        if meta["hybrids"]:
            sweeps = []
            for var in meta.get("sweeps", []):
                q = next(q for q in system.states if q.name == var)
                rate = q.unit + "²" if q.unit.endswith("/s") else q.unit + "/s"  # m/s -> m/s²
                sweeps.append(
                    {
                        "x": arr[f"residual__{var}__x"],
                        "true": arr[f"residual__{var}__truth"],
                        "learned": {m: arr[f"residual__{var}__{m}"] for m in meta["hybrids"]},
                        "xlabel": q.label,
                        "ylabel": f"correction to d({q.name})/dt ({rate})",
                        "train_range": tuple(arr[f"residual__{var}__train_range"]),
                        "what": "learned correction",
                    }
                )
            fig = plot.residual(
                sweeps,
                families=fams,
                title=f"{meta['task']}: what the hybrid learned (constants + residual) vs what nominal physics misses",
            )
            save(fig, "residual.png")
    for stale in sorted(figdir.glob("*.png")):  # figures of models or splits the study no longer has
        if stale not in files:
            stale.unlink()
    return files



