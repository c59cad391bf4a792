"""A study's report: aggregate the runs over seeds, the headline comparison, Markdown, CSV and JSON.

Metrics come from :mod:`physwm.evaluate` (normalised errors are in units of each split's own per-dimension
state standard deviation, the same for every model on that split).
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write_text, json_dumps, read_json
from ..version import __version__
from .adaptation import ADAPT_SEED_OFFSET, adapted_name, result_columns
from .config import IMPLICIT_FAMILIES, SplitConfig, StudyConfig, TaskConfig
from .paths import all_runs, run_path

__all__ = ["load_results", "aggregate", "headline", "write_report", "aggregated_rows", "lookup", "report_horizon",
           "discovered_equations", "DISTRIBUTIONS"]  # fmt: skip

DISTRIBUTIONS = ("in", "out")
#: Metrics kept in the aggregated results (per-dimension and per-level details stay in the run files).
_CORE_PREFIXES = ("rmse@", "energy_rmse@")
_CORE_METRICS = (
    "one_step_mse_norm",
    "vpt_steps",
    "vpt_s",
    "nll",
    "calibration_error",
    "coverage@0.9",
    "vpt_lyapunov",
    "lyapunov_exponent",
)
_RUN_METRICS = ("train_time_s", "epochs", "param_err_mean")


def load_results(out: str | os.PathLike, config: StudyConfig | None = None) -> list[dict]:
    """The finished runs of a study directory, as a list of run dicts (see the run JSON files).

    Args:
        out: the study directory.
        config: only runs of this config (default: every run file found).
    """
    out = Path(out)
    if config is None:
        paths = sorted((out / "runs").glob("*/*/n*_s*.json"))
    else:
        paths = [p for p in (run_path(out, *r) for r in all_runs(config)) if p.exists()]
    return [read_json(p, "run result") for p in paths]


def _core(metric: str) -> bool:
    return metric in _CORE_METRICS or (metric.startswith(_CORE_PREFIXES) and "[" not in metric)


def _stats(values: list[float]) -> tuple[float, float]:
    v = np.asarray([np.nan if x is None else float(x) for x in values], dtype=np.float64)
    if v.size == 0 or np.isnan(v).all():
        return math.nan, math.nan
    if np.isinf(v).any():
        return math.inf, math.nan
    v = v[~np.isnan(v)]
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds of every core metric, per (task, model, n_train, split).

    Returns:
        rows ``{"task", "model", "family", "n_train", "split", "distribution", "seeds", METRIC: mean,
        METRIC + "_std": std, ...}`` (a divergent run makes the mean ``inf``).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        for split, m in r["splits"].items():
            groups.setdefault((r["task"], r["model"], r["n_train"], split), []).append((r, m))
    outr = []
    for (task, model, n, split), items in groups.items():
        metrics = sorted({k for _, m in items for k in m if _core(k)}, key=_metric_order)
        row = {
            "task": task,
            "model": model,
            "family": items[0][0]["family"],
            "n_train": n,
            "split": split,
            "distribution": items[0][1]["distribution"],
            "seeds": len(items),
        }
        for k in metrics:
            row[k], row[k + "_std"] = _stats([m.get(k) for _, m in items])
        for k in _RUN_METRICS:
            vals = [r.get(k) for r, _ in items if r.get(k) is not None]
            if vals:
                row[k], row[k + "_std"] = _stats(vals)
        outr.append(row)
    return outr


def _metric_order(k: str) -> tuple:
    m = re.match(r"^(\w+)@(\d+)$", k)
    return (k.split("@")[0], int(m.group(2))) if m else (k, 0)


def lookup(agg: list[dict], task: str, model: str, n: int, split: str) -> dict | None:
    for r in agg:
        if (r["task"], r["model"], r["n_train"], r["split"]) == (task, model, n, split):
            return r
    return None


def _geomean(vals: list[float]) -> float:
    v = [x for x in vals if x is not None and not math.isnan(x)]
    if not v or len(v) != len(vals):
        return math.nan
    if any(math.isinf(x) for x in v):
        return math.inf
    if any(x <= 0 for x in v):
        return 0.0
    return float(math.exp(sum(math.log(x) for x in v) / len(v)))


def _ratio(a: float, b: float) -> float:
    """a / b with the limits a diverged (inf) model calls for."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if math.isinf(b):
        return 0.0 if not math.isinf(a) else math.nan
    if b == 0:
        return math.inf
    return a / b


def headline(cfg: StudyConfig, agg: list[dict]) -> dict:
    """The hybrid against the best implicit model on the headline task (see :class:`HeadlineConfig`).

    Returns a dict with, for the comparison size ``n = train_transitions``: per split the hybrid's
    ``rmse@h``, the best implicit model and its error, and their ratio (``> 1``: the hybrid is more
    accurate); the geometric mean of the ratios over in- and out-of-distribution splits; and, if the
    data-efficiency sweep covers them, the fewest transitions at which the hybrid reaches the best error
    any implicit model reached at any size (``transitions_ratio``, a lower bound if already at the smallest).
    """
    h = cfg.headline
    task = cfg.task(cfg.headline_task())
    key = f"rmse@{h.horizon}"
    mnames = [m.name for m in cfg.models]
    implicit = h.implicit or [m.name for m in cfg.models if m.build_name in IMPLICIT_FAMILIES]
    res: dict[str, Any] = {
        "task": task.name,
        "metric": key,
        "hybrid": h.hybrid,
        "implicit": implicit,
        "n_train": cfg.train_transitions,
        "splits": [],
    }
    if h.hybrid not in mnames or not implicit:
        res["note"] = "the study has no hybrid or no implicit model to compare"
        return res
    for s in task.tests:
        hyb = lookup(agg, task.name, h.hybrid, cfg.train_transitions, s.name)
        if hyb is None or key not in hyb:
            continue
        best, best_err = None, math.inf
        for m in implicit:
            r = lookup(agg, task.name, m, cfg.train_transitions, s.name)
            if r is not None and key in r and (best is None or r[key] < best_err):
                best, best_err = m, r[key]
        res["splits"].append(
            {
                "split": s.name,
                "distribution": s.distribution,
                "other_system": _system_shift(task, s),
                "hybrid": hyb[key],
                "hybrid_std": hyb.get(key + "_std"),
                "best_implicit": best,
                "best_implicit_err": best_err,
                "ratio": _ratio(best_err, hyb[key]),
                "explicit": {
                    m.name: (lookup(agg, task.name, m.name, cfg.train_transitions, s.name) or {}).get(key)
                    for m in cfg.models
                    if m.build_name == "explicit"
                },
            }
        )
    for dist in DISTRIBUTIONS:
        ratios = [r["ratio"] for r in res["splits"] if r["distribution"] == dist]
        res[f"ratio_{dist}"] = _geomean(ratios) if ratios else math.nan
        res[f"min_ratio_{dist}"] = min(ratios) if ratios else math.nan
    for label, shifted in (("same_system", False), ("other_system", True)):
        ratios = [r["ratio"] for r in res["splits"] if r["distribution"] == "out" and r["other_system"] == shifted]
        res[f"ratio_out_{label}"] = _geomean(ratios) if ratios else math.nan
    res.update(_adapted_headline(cfg, agg, task, implicit))
    de = cfg.data_efficiency
    if de is not None and de.task == task.name:
        models = de.models or mnames
        sizes = sorted(set(de.sizes) | {cfg.train_transitions})
        for dist in DISTRIBUTIONS:
            splits = [
                s.name for s in task.tests if s.distribution == dist and key in _split_keys(agg, task.name, s.name)
            ]
            if not splits or h.hybrid not in models:
                continue

            def err(model, n, splits=splits):
                vals = [(lookup(agg, task.name, model, n, sp) or {}).get(key) for sp in splits]
                return _geomean([math.nan if v is None else v for v in vals])

            best = (None, None, math.inf)
            for m in implicit:
                if m not in models:
                    continue
                for n in sizes:
                    e = err(m, n)
                    if not math.isnan(e) and e < best[2]:
                        best = (m, n, e)
            if best[0] is None:
                continue
            reach = [n for n in sizes if not math.isnan(err(h.hybrid, n)) and err(h.hybrid, n) <= best[2]]
            n_h = min(reach) if reach else None
            res[f"efficiency_{dist}"] = {
                "splits": splits,
                "best_implicit": best[0],
                "best_implicit_n": best[1],
                "best_implicit_err": best[2],
                "hybrid_n_to_reach": n_h,
                "transitions_ratio": (best[1] / n_h) if n_h else None,
                "lower_bound": bool(n_h is not None and n_h == min(sizes)),
                "hybrid_curve": {n: err(h.hybrid, n) for n in sizes},
            }
    return res


def _adapted_headline(cfg: StudyConfig, agg: list[dict], task: TaskConfig, implicit: list[str]) -> dict:
    """The headline's adaptation split: on each test split with other physical constants and ``adapt``, the
    hybrid and the best implicit model after adapting to K transitions of that split's system (see
    :mod:`physwm.studies.adaptation`); ``{"adapted": [rows], "ratio_out_other_system_adapted": {K: geomean}}``
    (empty without such splits)."""
    h, key, n = cfg.headline, f"rmse@{cfg.headline.horizon}", cfg.train_transitions
    rows = []
    for s in task.tests:
        for k in (s.adapt or []) if _system_shift(task, s) else []:
            name = adapted_name(s.name, k)
            hyb = lookup(agg, task.name, h.hybrid, n, name)
            if hyb is None or key not in hyb:
                continue
            errs = {m: (lookup(agg, task.name, m, n, name) or {}).get(key) for m in implicit}
            errs = {m: e for m, e in errs.items() if e is not None}
            best = min(errs, key=errs.get) if errs else None
            best_err = errs[best] if best else math.nan
            rows.append({"split": name, "base_split": s.name, "k": k, "distribution": s.distribution,
                         "hybrid": hyb[key], "hybrid_std": hyb.get(key + "_std"), "best_implicit": best,
                         "best_implicit_err": best_err, "ratio": _ratio(best_err, hyb[key])})  # fmt: skip
    if not rows:
        return {}
    ks = sorted({r["k"] for r in rows})
    return {"adapted": rows,
            "ratio_out_other_system_adapted": {k: _geomean([r["ratio"] for r in rows if r["k"] == k]) for k in ks}}


def _system_shift(task: TaskConfig, split: SplitConfig) -> bool:
    """True if the split's true system has other physical constants than the training system's (the force
    bound ``force_mag`` only limits the inputs, it does not change the equations)."""
    a, b = task.true_params().to_dict(), task.true_params(split).to_dict()
    return any(a[k] != b[k] for k in a if k != "force_mag")


def _split_keys(agg: list[dict], task: str, split: str) -> set[str]:
    return {k for r in agg if r["task"] == task and r["split"] == split for k in r}


def _fmt(v: Any, std: Any = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "diverged"
    s = f"{v:.3g}"
    if std is not None and isinstance(std, float) and math.isfinite(std) and std > 0:
        s += f" ± {std:.2g}"
    return s


def _fmt_ratio(v: float) -> str:
    if v is None or math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞"
    return f"{v:.3g}x" if v < 100 else f"{v:.0f}x"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(v: str) -> str:
        return str(v).replace("|", "\\|")  # a literal | would split the cell

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def write_report(
    cfg: StudyConfig,
    rows: list[dict],
    out: str | os.PathLike,
    wall_time_s: float | None = None,
    runs_done: int | None = None,
) -> tuple[dict, list[Path]]:
    """Write results.md, results.json and results.csv from the finished runs; returns (headline, paths).

    Args:
        cfg: the study.
        rows: the finished runs (:func:`load_results`).
        out: the study directory.
        wall_time_s: seconds the call that produced them took (reported).
        runs_done: how many of the runs that call trained (the others were resumed from their files).
    """
    out = Path(out)
    agg = aggregate(rows)
    head = headline(cfg, agg)
    files = []
    meta = {
        "physwm_version": __version__,
        "runs": len(rows),
        "wall_time_s": wall_time_s,
        "runs_done": runs_done,
        "run_compute_s": float(sum(r.get("train_time_s", 0.0) + r.get("eval_time_s", 0.0) for r in rows)),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "discovered": discovered_equations(rows, cfg.train_transitions),
    }
    rounded = [{k: (float(f"{v:.5g}") if isinstance(v, float) and math.isfinite(v) else v) for k, v in r.items()}
               for r in agg]  # fmt: skip
    cols = _columns(agg)
    # the aggregated table as columns + rows, one row per line: a third of the size of one dict per row
    table = {"columns": cols, "rows": [[r.get(c) for c in cols] for r in rounded]}
    data = {"study": cfg.name, "meta": meta, "headline": head, "config": cfg.to_dict(), "aggregated": table}
    files.append(atomic_write_text(out / "results.json", json_dumps(data, compact_arrays=True), overwrite=True))
    files.append(atomic_write_text(out / "results.csv", _csv(agg), overwrite=True))
    files.append(atomic_write_text(out / "results.md", _markdown(cfg, agg, head, meta), overwrite=True))
    return head, files


_KEYS = ["task", "model", "family", "n_train", "split", "distribution", "seeds"]


def discovered_equations(rows: list[dict], n_train: int) -> dict[str, dict]:
    """``"task/model" -> {"seed", "space", "kept", "equations"}`` of the discovered runs (a model with
    ``discover``) at ``n_train`` transitions, the lowest seed's."""
    out: dict[str, dict] = {}
    for r in sorted((r for r in rows if r.get("discovery") and r["n_train"] == n_train), key=lambda r: r["seed"]):
        d = r["discovery"]
        out.setdefault(f"{r['task']}/{r['model']}", {"seed": r["seed"], "space": d.get("space"), "kept": d.get("kept"),
                                                      "equations": d.get("equations", {})})  # fmt: skip
    return out


def _equations_lines(meta: dict, task: str) -> list[str]:
    lines = []
    for key, d in (meta.get("discovered") or {}).items():
        if key.split("/", 1)[0] != task:
            continue
        what = "generalised forces" if d["space"] == "force" else "accelerations"
        eqs = [f"    {row} = {eq}" for row, eq in d["equations"].items()]
        lines += [f"Equations discovered by `{key.split('/', 1)[1]}` (seed {d['seed']}, missing {what}; kept: "
                  f"{d['kept']}):", "", *eqs, ""]  # fmt: skip
    return lines


def _columns(agg: list[dict]) -> list[str]:
    metrics = sorted({k for r in agg for k in r if k not in _KEYS and not k.endswith("_std")}, key=_metric_order)
    return _KEYS + [c for k in metrics for c in (k, k + "_std")]


def aggregated_rows(results: dict) -> list[dict]:
    """The aggregated rows of a results.json (stored as columns + rows)."""
    a = results["aggregated"]
    if isinstance(a, list):
        return a
    return [{c: v for c, v in zip(a["columns"], row) if v is not None} for row in a["rows"]]


def _csv(agg: list[dict]) -> str:
    import csv
    import io

    cols = _columns(agg)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in sorted(agg, key=lambda r: (r["task"], r["model"], r["n_train"], r["split"])):
        w.writerow([_csv_value(r.get(c)) for c in cols])
    return buf.getvalue()


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.5g}" if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return str(v)


def report_horizon(cfg: StudyConfig, s: SplitConfig) -> int:
    hs = s.horizons or cfg.horizons
    return cfg.headline.horizon if cfg.headline.horizon in hs else max(h for h in hs if h <= max(hs))


def _lyapunov_table(cfg: StudyConfig, agg: list[dict], t: TaskConfig) -> list[str]:
    """Valid prediction times in Lyapunov times, for a task whose splits carry the true system's exponent."""
    tr = cfg.train_transitions
    lams = {}
    for s in t.tests:
        for m in cfg.task_models(t):
            r = lookup(agg, t.name, m.name, tr, s.name) or {}
            if r.get("lyapunov_exponent") is not None:
                lams[s.name] = r["lyapunov_exponent"]
    if not lams:
        return []
    rows = []
    for m in cfg.task_models(t):
        row = [m.name]
        for s in t.tests:
            r = lookup(agg, t.name, m.name, tr, s.name) or {}
            row.append(_fmt(r.get("vpt_lyapunov"), r.get("vpt_lyapunov_std")))
        rows.append(row)
    exps = ", ".join(f"`{k}` {_fmt(v)}/s (Lyapunov time {_fmt(1 / v) if v > 0 else '∞'} s)" for k, v in lams.items())
    return [
        "Valid prediction time in Lyapunov times (the true system's largest finite-time Lyapunov exponent "
        f"along each split's evaluation windows, times the VPT in seconds; exponents: {exps}):",
        "",
        _md_table(["model"] + [s.name for s in t.tests], rows),
        "",
    ]


def _markdown(cfg: StudyConfig, agg: list[dict], head: dict, meta: dict) -> str:
    L = [f"# {cfg.name}", ""]
    wt = meta.get("wall_time_s")
    L.append(
        f"physwm {meta['physwm_version']}"
        + f", {meta['runs']} runs, written {meta['written']}"
        + (f", {wt:.0f} s wall time ({cfg.workers} worker processes" if wt else "")
        + (
            f"; {meta['runs_done']} of the runs trained in that call, the others resumed"
            if wt and meta.get("runs_done") is not None and meta["runs_done"] < meta["runs"]
            else ""
        )
        + (")" if wt else "")
        + f", {meta['run_compute_s']:.0f} s of training and evaluation in the runs"
        + ". Configuration: `config.json`; per-run metrics: `runs/`; aggregated: `results.csv`, `results.json`."
    )
    L += [
        "",
        "Errors are open-loop rollout RMSEs from held-out starts under the recorded controls, in units of "
        "each split's per-dimension state standard deviation (the same units for every model on a split), "
        f'averaged over {len(cfg.seeds)} seed(s) (± standard deviation over seeds). "diverged": the '
        "prediction became NaN/inf. VPT: valid prediction time, steps until the normalised error first "
        f"exceeds {cfg.vpt_threshold}.",
        "",
    ]
    # headline
    if head.get("splits"):
        h = cfg.headline
        L += [
            f"## Headline: {head['hybrid']} vs the best implicit model, task `{head['task']}`",
            "",
            f"{head['metric']} ({h.horizon}-step open-loop RMSE), {head['n_train']} training transitions. "
            f"Implicit models: {', '.join(head['implicit'])}. Ratio = best implicit error / hybrid error "
            "(> 1: the hybrid is more accurate).",
            "",
        ]
        explicit = sorted({m for s in head["splits"] for m in s.get("explicit", {})})
        rows = [
            [
                s["split"] + (" (other constants)" if s["other_system"] else ""),
                s["distribution"],
                _fmt(s["hybrid"], s["hybrid_std"]),
                f"{_fmt(s['best_implicit_err'])} ({s['best_implicit']})",
                _fmt_ratio(s["ratio"]),
            ]
            + [_fmt(s.get("explicit", {}).get(m)) for m in explicit]
            for s in head["splits"]
        ]
        for a in head.get("adapted", []):
            rows.append([f"{a['split']} (other constants, models adapted to {a['k']} of its transitions)",
                         a["distribution"], _fmt(a["hybrid"], a["hybrid_std"]),
                         f"{_fmt(a['best_implicit_err'])} ({a['best_implicit']})", _fmt_ratio(a["ratio"])]
                        + ["" for _ in explicit])  # fmt: skip
        header = ["split", "distribution", head["hybrid"], "best implicit (model)", "ratio"]
        L += [_md_table(header + [f"{m} (reference)" for m in explicit], rows), ""]
        if explicit:
            L += [
                f"The {', '.join(explicit)} column is a reference, not a contender: the equations with the true "
                "form of the friction and constants identified from the training data. Where it fails too (other "
                "physical constants), the error is the change of system itself, which no model trained on the "
                "original system can know.",
                "",
            ]
        L.append(
            f"- In distribution: ratio {_fmt_ratio(head['ratio_in'])} (geometric mean over in-distribution splits)."
        )
        n_same = sum(1 for s in head["splits"] if s["distribution"] == "out" and not s["other_system"])
        n_other = sum(1 for s in head["splits"] if s["distribution"] == "out" and s["other_system"])
        L.append(
            f"- Out of distribution: ratio {_fmt_ratio(head['ratio_out'])} (geometric mean over "
            f"{n_same + n_other} extrapolation splits; smallest {_fmt_ratio(head['min_ratio_out'])}). "
            f"Same system, new states/forces/horizons ({n_same} splits): {_fmt_ratio(head['ratio_out_same_system'])}; "
            f"other physical constants ({n_other} splits, which no model trained on the original system can "
            f"know): {_fmt_ratio(head['ratio_out_other_system'])}"
            + "".join(f"; after every model adapts to {k} transitions of each such split's system (`physwm.adapt`: "
                      f"constants re-identified, implicit models fine-tuned): {_fmt_ratio(v)}"
                      for k, v in head.get("ratio_out_other_system_adapted", {}).items())
            + "."
        )
        for dist in DISTRIBUTIONS:
            e = head.get(f"efficiency_{dist}")
            if not e:
                continue
            what = "in distribution" if dist == "in" else "out of distribution (geometric mean over splits)"
            if e["hybrid_n_to_reach"] is None:
                L.append(
                    f"- Data efficiency, {what}: the hybrid never reaches the best implicit error "
                    f"{_fmt(e['best_implicit_err'])} ({e['best_implicit']}, {e['best_implicit_n']} transitions) "
                    "at the sizes tried."
                )
            else:
                bound = "at least " if e["lower_bound"] else ""
                L.append(
                    f"- Data efficiency, {what}: the hybrid reaches the best implicit error "
                    f"{_fmt(e['best_implicit_err'])} ({e['best_implicit']} with {e['best_implicit_n']} "
                    f"transitions) with {e['hybrid_n_to_reach']} transitions: {bound}"
                    f"{e['transitions_ratio']:.3g}x fewer"
                    + (" (the smallest size tried)." if e["lower_bound"] else ".")
                )
        L.append("")
    # per task
    for t in cfg.tasks:
        L += [f"## Task `{t.name}`", "", t.description, ""]
        tr = cfg.train_transitions
        srows = [[f"`{s.name}`", s.distribution, s.description] for s in t.tests]
        L += [_md_table(["split", "distribution", "what differs from training"], srows), ""]
        cols = result_columns(t.tests)
        header = ["model"] + [f"{name} @{report_horizon(cfg, s)}" for name, s in cols]
        rows = []
        for m in cfg.task_models(t):
            row = [m.name]
            for name, s in cols:
                r = lookup(agg, t.name, m.name, tr, name) or {}
                k = f"rmse@{report_horizon(cfg, s)}"
                row.append(_fmt(r.get(k), r.get(k + "_std")))
            rows.append(row)
        L += [f"Rollout RMSE at the given horizon (steps), {tr} training transitions:", "", _md_table(header, rows), ""]
        L += _equations_lines(meta, t.name)
        rows = []
        for m in cfg.task_models(t):
            row = [m.name]
            for name, _ in cols:
                r = lookup(agg, t.name, m.name, tr, name) or {}
                row.append(_fmt(r.get("vpt_s"), r.get("vpt_s_std")))
            rows.append(row)
        L += ["Valid prediction time (s):", "", _md_table(["model"] + [name for name, _ in cols], rows), ""]
        if len(cols) > len(t.tests):
            L += ["`SPLIT+adaptK`: the same test episodes, each model first adapted (`physwm.adapt`, its defaults) "
                  f"to K transitions of that split's system (seed = the split's + {ADAPT_SEED_OFFSET}, the start of "
                  "an episode under its policy).", ""]  # fmt: skip
        L += _lyapunov_table(cfg, agg, t)
        first_in = next((s for s in t.tests if s.distribution == "in"), t.tests[0])
        hs = first_in.horizons or cfg.horizons
        header = (
            ["model", "one-step MSE"]
            + [f"rmse@{h}" for h in hs]
            + [f"energy err @{hs[-1]} (J)", "param. error", "train time (s)"]
        )
        rows = []
        for m in cfg.task_models(t):
            r = lookup(agg, t.name, m.name, tr, first_in.name) or {}
            row = [m.name, _fmt(r.get("one_step_mse_norm"))] + [
                _fmt(r.get(f"rmse@{h}"), r.get(f"rmse@{h}_std")) for h in hs
            ]
            row += [_fmt(r.get(f"energy_rmse@{hs[-1]}")), _fmt(r.get("param_err_mean")), _fmt(r.get("train_time_s"))]
            rows.append(row)
        L += [
            f"Split `{first_in.name}` in detail (one-step MSE normalised; parameter error: mean relative error "
            "of the identified constants, absolute where the true value is 0):",
            "",
            _md_table(header, rows),
            "",
        ]
        unc = [m for m in cfg.task_models(t)
               if (lookup(agg, t.name, m.name, tr, first_in.name) or {}).get("nll") is not None]  # fmt: skip
        if unc:
            rows = []
            for m in unc:
                r = lookup(agg, t.name, m.name, tr, first_in.name)
                rows.append([m.name, _fmt(r.get("nll")), _fmt(r.get("coverage@0.9")), _fmt(r.get("calibration_error"))])
            L += [
                "Predictive uncertainty (one step, normalised units):",
                "",
                _md_table(["model", "Gaussian NLL", "coverage of 90% interval", "calibration error"], rows),
                "",
            ]
    # data efficiency
    de = cfg.data_efficiency
    if de is not None:
        t = cfg.task(de.task)
        models = de.models or [m.name for m in cfg.models]
        sizes = sorted(set(de.sizes))
        L += [f"## Data efficiency, task `{t.name}`", ""]
        for s in t.tests:
            k = f"rmse@{report_horizon(cfg, s)}"
            rows = []
            for m in models:
                row = [m]
                for n in sizes:
                    r = lookup(agg, t.name, m, n, s.name) or {}
                    row.append(_fmt(r.get(k), r.get(k + "_std")))
                rows.append(row)
            L += [
                f"Split `{s.name}` ({s.distribution}), {k} against training transitions:",
                "",
                _md_table(["model"] + [str(n) for n in sizes], rows),
                "",
            ]
    # budget
    f = cfg.fit
    L += [
        "## Training",
        "",
        f"Every model: Adam, ~{f.steps} gradient steps of {f.batch_size} windows ({f.horizon}-step loss), at most "
        f"{f.epochs} epochs, lr {f.lr} ({f.lr_schedule} schedule), weights of the epoch with the lowest "
        f"{f.val_horizon}-step validation error kept. Overrides: "
        + (", ".join(f"{m.name} {m.fit}" for m in cfg.models if m.fit) or "none")
        + ". Model options: "
        + (", ".join(f"{m.name} {m.options}" for m in cfg.models if m.options) or "defaults")
        + ".",
        "",
    ]
    L += ["## Figures", "", "See `figures/` (redraw with `physwm plot <this directory>`).", ""]
    return "\n".join(L)
