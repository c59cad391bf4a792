"""Where int8 dynamic quantisation pays on this CPU: the default MLP's forward pass, float32 vs int8, per
quantisation engine and batch size (issue 15: ``physwm.quantize`` planned at 0.9x, i.e. slower, here).

The default ``mlp`` network (``build("mlp")``: 5-128-128-128-4 SiLU; untrained, the speed does not depend
on the weights) is quantised with ``torch.ao.quantization.quantize_dynamic`` under each engine torch
offers here (``torch.backends.quantized.supported_engines``: fbgemm and x86 use AVX2/AVX-512 kernels,
qnnpack targets ARM), and ``model.step`` is timed at batch sizes from one state to a large population
(CEM's is 500). Float and int8 alternate in ``--rounds`` rounds, so other jobs on the machine slow both
alike; each cell is the median over rounds of the mean CPU time per call (``time.process_time``), and
the ratio float / int8 (above 1: int8 is faster). The engine is set by this script for its own process;
physwm's library code never sets it.

Run: ``python bench/quantize_engines.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

import physwm
from physwm.models import build


def per_call(fn, x, u, calls: int) -> float:
    """Mean CPU seconds of ``fn(x, u)`` over ``calls`` calls (after one warm-up call)."""
    with torch.no_grad():
        fn(x, u)
        c0 = time.process_time()
        for _ in range(calls):
            fn(x, u)
        return (time.process_time() - c0) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 30, 500, 4096, 16384])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build("mlp", seed=0).eval()
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    cpu = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, CPU capability {cpu}, engines {engines}, threads {args.threads}")
    print("ms per model.step call (CPU time), float32 / int8 ratio in brackets (> 1: int8 faster)")
    print(f"{'batch':>7} {'float32':>9} " + " ".join(f"{e:>17}" for e in engines))
    saved = torch.backends.quantized.engine
    try:
        quantized = {}
        for e in engines:
            torch.backends.quantized.engine = e
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantized[e] = physwm.quantize(model)
        for b in args.batches:
            g = torch.Generator().manual_seed(b)
            x, u = torch.randn(b, 4, generator=g), torch.randn(b, 1, generator=g)
            calls = max(3, min(300, 20000 // b))
            times: dict[str, list[float]] = {"float32": [], **{e: [] for e in engines}}
            for _ in range(args.rounds):
                times["float32"].append(per_call(model.step, x, u, calls))
                for e in engines:
                    torch.backends.quantized.engine = e
                    times[e].append(per_call(quantized[e].step, x, u, calls))
            med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
            cells = " ".join(f"{med[e]:9.3f} ({med['float32'] / med[e]:4.2f}x)" for e in engines)
            print(f"{b:>7} {med['float32']:9.3f} {cells}")
    finally:
        torch.backends.quantized.engine = saved


if __name__ == "__main__":
    main()
