"""Reference table: the symbolic hybrid of ``physwm.discover`` against the network hybrid, explicit and implicit
models, over several seeds and two truths, and a figure of the discovered terms far beyond the training data.

Protocol (issue 10). Truths (``bench/discover.py``): ``additive``, nominal CartPole plus ``-0.2 x_dot|x_dot|``
on ``x_ddot`` and ``-0.3 theta_dot|theta_dot|`` on ``theta_ddot`` (terms outside the friction family, inside
the library as accelerations); ``drag``, CartPole with ``DRAG_PARAMS`` (cart friction, pole damping and
aerodynamic drag, ``0.15 x_dot|x_dot|`` N on the cart and ``0.005 theta_dot|theta_dot|`` N m at the pole,
entering through the mass matrix: as accelerations they are *not* library terms, as generalised forces they
are). Per seed ``s``: 5,000 noiseless training transitions (``truth_data(s)``: 50 episodes x 100 steps of
random +-10 N forces from ``|theta| < 0.3``, ``|theta_dot| < 3``), split 90/10 for the fitted models; the test
is the same for every seed: 100-step open-loop rollouts under random +-10 N forces from 64 large-angle starts
(``|theta| < pi``, ``|theta_dot| < 6``, ``|x_dot| < 3``), RMSE in units of the training data's state spread,
over every step and state entry. Models, each with ``fit``'s recipe (``steps`` capped by ``--steps``) and
seed ``s``: ``hybrid`` (network residual), ``hybrid symbolic`` (``physwm.discover(data, seed=s)``, its
default ``space="auto"``), on the drag truth also ``hybrid symbolic (accel.)`` (``space="acceleration"``:
what the library gives without the mass matrix), ``explicit`` (constants only), ``mlp`` and ``vae``
(implicit). Mean +- standard deviation over the seeds; fit CPU seconds (``time.process_time``, one thread).

The figure (``discovery_figures/discovered_terms.png`` beside ``--out``): what each model adds to nominal
CartPole's accelerations (``field(x, 0) - CartPole()(x, 0)``) along ``x_dot`` and ``theta_dot`` sweeps at
``theta = 0`` up to four times the training range, for the truth, the symbolic and the network hybrid (seed
of ``--seeds``' first).

    .venv/bin/python bench/discovery_table.py --out data/reference/discovery.md --overwrite
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from discover import TRUE, TRUE_FORCES, TRUTHS, truth_data, truth_model  # noqa: E402  (bench/discover.py)

import physwm  # noqa: E402
from physwm import plot  # noqa: E402
from physwm.evaluate.model import windows_rmse  # noqa: E402
from physwm.files import atomic_write_text  # noqa: E402
from physwm.models import build  # noqa: E402
from physwm.systems import CartPole  # noqa: E402

IMPLICIT = ("mlp", "vae")


def large_angle_test(truth: str, seed: int = 1, starts: int = 64, steps: int = 100) -> tuple[torch.Tensor, ...]:
    """``(states [B, T+1, 4], controls [B, T, 1])`` of the truth from large-angle starts."""
    g = torch.Generator().manual_seed(seed)
    box = torch.tensor([0.5, 3.0, math.pi, 6.0], dtype=torch.float64)
    x0 = (torch.rand(starts, 4, generator=g, dtype=torch.float64) * 2 - 1) * box
    u = (torch.rand(starts, steps, 1, generator=g, dtype=torch.float64) * 2 - 1) * 10
    with torch.no_grad():
        return truth_model(truth).rollout(x0, u).float(), u.float()


def run_seed(truth: str, seed: int, steps: int) -> dict:
    """Every model of one truth and seed: ``{"errors": {name: rmse}, "cpu": {name: s}, "models": {...}}``."""
    data = truth_data(seed, truth=truth)
    train, val = data.split((0.9, 0.1), seed=seed)
    states, controls = large_angle_test(truth)
    scale = data.states.reshape(-1, 4).std(0)
    names = ["hybrid", "hybrid symbolic", *(["hybrid symbolic (accel.)"] if truth == "drag" else []), "explicit",
             *IMPLICIT]  # fmt: skip
    out: dict = {"errors": {}, "cpu": {}, "models": {}}
    for name in names:
        c = time.process_time()
        if name.startswith("hybrid symbolic"):
            space = "acceleration" if "accel" in name else "auto"
            model = physwm.discover(data, seed=seed, space=space)
        else:
            model = build(name, seed=seed)
            physwm.fit(model, train, val, steps=steps, progress=False)
        out["cpu"][name] = time.process_time() - c
        out["errors"][name] = windows_rmse(model, states, controls, scale)
        out["models"][name] = model
        print(f"{truth:9} seed {seed} {name:26} {out['errors'][name]:.3g} ({out['cpu'][name]:.0f} s cpu)", flush=True)
    return out


def _ms(values: list[float]) -> str:
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.3g} ± {s:.2g}"


def model_table(runs: list[dict]) -> list[str]:
    names = list(runs[0]["errors"])
    lines = ["| model | RMSE (100 steps, large angles) | fit CPU s |", "|---|---|---|"]
    lines += [f"| {n} | {_ms([r['errors'][n] for r in runs])} | {statistics.fmean(r['cpu'][n] for r in runs):.0f} |"
              for n in names]  # fmt: skip
    sym = [r["errors"]["hybrid symbolic"] for r in runs]
    ratio = {n: [r["errors"][n] / s for r, s in zip(runs, sym)] for n in names}
    best_implicit = [min(r["errors"][n] for n in IMPLICIT) / s for r, s in zip(runs, sym)]
    lines += [
        "",
        "Error of each model / the symbolic hybrid's, per seed (min, geometric mean, max): "
        + "; ".join(f"{n} {_range(ratio[n])}" for n in names if n != "hybrid symbolic")
        + f"; best implicit ({'/'.join(IMPLICIT)}) {_range(best_implicit)}.",
    ]
    return lines


def _range(v: list[float]) -> str:
    gm = math.exp(statistics.fmean(math.log(max(x, 1e-300)) for x in v))
    return f"{min(v):.3g}x / {gm:.3g}x / {max(v):.3g}x"


def coefficient_table(runs: list[dict], true: dict) -> list[str]:
    """Each true term's coefficient over the seeds, and how many seeds found exactly the true terms."""
    ds = [r["models"]["hybrid symbolic"].discovery for r in runs]
    exact = sum(all(set(d.coefficients.get(row, {})) == set(terms) for row, terms in true.items())
                and set(d.coefficients) == set(true) for d in ds)  # fmt: skip
    lines = ["| row | term | true | discovered (mean ± std over seeds) | max relative error |", "|---|---|---|---|---|"]
    for row, terms in true.items():
        for term, value in terms.items():
            got = [d.coefficients.get(row, {}).get(term, 0.0) for d in ds]
            err = max(abs(g - value) / abs(value) for g in got)
            lines.append(f"| {row} | `{term}` | {value:g} | {_ms(got)} | {err:.2%} |")
    extra = sorted({(row, t) for d in ds for row, c in d.coefficients.items() for t in c
                    if t not in true.get(row, {})})  # fmt: skip
    left = {row: [d.residual_left.get(row, math.nan) for d in ds] for row in ds[0].residual_left}
    spaces = sorted({d.space for d in ds})
    return [
        *lines,
        "",
        f"Seeds whose equation holds exactly the true terms (none missed, none false): {exact} of {len(ds)}. "
        f"False terms found in any seed: {', '.join(f'{r}: `{t}`' for r, t in extra) or 'none'}. "
        f"Space chosen: {', '.join(spaces)}. Held-out residual left (RMS fraction, mean over seeds): "
        + ", ".join(f"{row} {statistics.fmean(v):.3g}" for row, v in left.items())
        + ".",
    ]


def figure(results: dict, path: Path) -> Path:
    """The missing accelerations along velocity sweeps far beyond the training data (see the module doc)."""
    sweeps = {"x_ddot": (1, "x_dot (m/s)", 10.0, 2.5), "theta_ddot": (3, "theta_dot (rad/s)", 28.0, 7.0)}
    fig, axes = plt.subplots(len(results), 2, figsize=(11, 4 * len(results)), squeeze=False, layout="constrained")
    nominal = CartPole().double()
    for axrow, (truth, runs) in zip(axes, results.items()):
        models = runs[0]["models"]
        for ax, (row, (i, label, top, seen)) in zip(axrow, sweeps.items()):
            v = torch.linspace(-top, top, 201, dtype=torch.float64)
            x = torch.zeros(201, 4, dtype=torch.float64)
            x[:, i] = v
            u = torch.zeros(201, 1, dtype=torch.float64)
            with torch.no_grad():
                base = nominal(x, u)[:, i]
                curves = {"truth": truth_model(truth).field(x, u)[:, i] - base}
                for name in ("hybrid symbolic", "hybrid"):
                    f = models[name].field
                    dtype = next(f.parameters()).dtype
                    curves[name] = f(x.to(dtype), u.to(dtype))[:, i].double() - base
            for (name, c), style in zip(curves.items(), ("-", "--", ":")):
                ax.plot(v, c, style, lw=2 if name == "truth" else 1.6, label=name)
            ax.axvspan(-seen, seen, color="0.9", zorder=0, label="training range")
            ax.set(xlabel=label, ylabel=f"missing {row}", title=f"{truth} truth: {row} along {label.split()[0]}")
            ax.legend(fontsize=8)
    return Path(plot.save(fig, path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--steps", type=int, default=500, help="gradient-step cap of each fit (default 500)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--truths", nargs="+", choices=TRUTHS, default=list(TRUTHS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it")
    c0 = time.process_time()
    results = {truth: [run_seed(truth, s, args.steps) for s in args.seeds] for truth in args.truths}
    fig_path = figure(results, out.parent / "discovery_figures" / "discovered_terms.png")
    lines = [
        "# Discovering missing physics: 100-step open-loop error from large-angle starts",
        "",
        "Regenerate: `.venv/bin/python bench/discovery_table.py --out data/reference/discovery.md --overwrite`",
        f"(protocol in the script's docstring; seeds {args.seeds}, fits capped at {args.steps} steps). RMSE in "
        "units of the training data's state spread, mean ± standard deviation over the seeds.",
        "",
    ]
    titles = {"additive": "Truth `additive`: the missing terms added to the accelerations (library terms)",
              "drag": "Truth `drag`: friction and aerodynamic drag through the equations of motion (DRAG_PARAMS)"}
    for truth, runs in results.items():
        true = TRUE if truth == "additive" else TRUE_FORCES
        lines += [f"## {titles[truth]}", "", *model_table(runs), "", "Discovered terms (`hybrid symbolic`):", "",
                  *coefficient_table(runs, true), "", f"Equations of seed {args.seeds[0]}:", "", "```",
                  runs[0]["models"]["hybrid symbolic"].discovery.format(), "```", ""]  # fmt: skip
    lines += [f"Figure: [`{fig_path.relative_to(out.parent)}`]({fig_path.relative_to(out.parent)}). "
              f"Total CPU time {time.process_time() - c0:.0f} s.", ""]  # fmt: skip
    atomic_write_text(out, "\n".join(lines), overwrite=args.overwrite)
    print(f"wrote {out} and {fig_path}")


if __name__ == "__main__":
    main()
