"""Where static int8 quantisation pays on this CPU: the default MLP's network, float32 vs dynamic vs static int8.

``physwm.quantize`` is dynamic (int8 weights, activations quantised per call, float32 between layers);
``bench/quantize_engines.py`` measured at most 1.14x over float32 for it. This script asks whether *static*
quantisation (``torch.ao.quantization`` FX graph mode: weights and activations int8, calibrated on 4 x 256
random inputs, activations kept int8 between layers where a kernel exists) reaches the 1.5x the issue asks.

Networks: the default ``mlp``'s (5-128-128-128-4, SiLU) and the same with ReLU (fbgemm fuses Linear+ReLU
in int8; it has no int8 SiLU, so around each SiLU the activations are dequantised and quantised again).
Each is timed as float32, dynamic int8 and static int8 under every x86 engine (``x86``, ``fbgemm``,
``onednn``), at batch sizes from CEM's population (500) up; then one 128x128 layer alone: float32, static
int8 (quint8 in and out), dynamic, and the costs of quantising, dequantising and SiLU. CPU time per call
(``time.process_time``), median of ``--rounds`` alternating rounds (other jobs slow all alike), ratio
float32 / int8 (> 1: int8 faster). The engine is set by this script for its own process.

Measured on an AMD EPYC (AVX2 + FMA, no AVX-512 / VNNI), one thread, on a loaded 2-core machine:
SiLU network: static 0.70-1.04x, dynamic 0.56-1.25x (batch 500-16384); ReLU network: static 0.98-1.33x
(500; two runs), 1.55x (4096), 2.1x (16384). One 128x128 layer: int8 1.1-1.4x (500), 1.8x (4096, 16384);
SiLU alone costs a third of the float layer. So 1.5x needs all three: static quantisation, no SiLU,
batches of thousands.

Run: ``python bench/quantize_static.py`` (a minute or two).
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import numpy as np
import torch
from torch import nn
from torch.ao.quantization import get_default_qconfig_mapping, quantize_dynamic
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

ENGINES = ("x86", "fbgemm", "onednn")


def per_call(fn, x: torch.Tensor, calls: int) -> float:
    """Mean CPU ms of ``fn(x)`` over ``calls`` calls (after one warm-up call)."""
    with torch.no_grad():
        fn(x)
        c0 = time.process_time()
        for _ in range(calls):
            fn(x)
        return 1e3 * (time.process_time() - c0) / calls


def mlp(activation: type[nn.Module]) -> nn.Sequential:
    """The default ``mlp``'s network shape (seeded weights; the speed does not depend on them)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 128), activation(), nn.Linear(128, 128), activation(), nn.Linear(128, 128),
                         activation(), nn.Linear(128, 4)).eval()  # fmt: skip


def variants(net: nn.Sequential, engines: list[str]) -> dict[str, tuple[str, nn.Module]]:
    """name -> (engine, int8 module): dynamic and static (calibrated) per engine."""
    out = {}
    g = torch.Generator().manual_seed(0)
    for e in engines:
        torch.backends.quantized.engine = e
        out[f"dynamic/{e}"] = (e, quantize_dynamic(copy.deepcopy(net), {nn.Linear}, dtype=torch.qint8))
        prepared = prepare_fx(copy.deepcopy(net), get_default_qconfig_mapping(e), (torch.randn(8, 5),))
        with torch.no_grad():
            for _ in range(4):
                prepared(torch.randn(256, 5, generator=g))
        out[f"static/{e}"] = (e, convert_fx(prepared))
    return out


def quantise(h: torch.Tensor) -> torch.Tensor:
    """``h`` as quint8 (scale 0.05, zero point 128): what a static int8 layer's input costs from float."""
    return torch.quantize_per_tensor(h, 0.05, 128, torch.quint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[500, 4096, 16384])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
    engines = [e for e in ENGINES if e in torch.backends.quantized.supported_engines]
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, engines {engines}")
    saved = torch.backends.quantized.engine
    try:
        nets = {"silu": mlp(nn.SiLU), "relu": mlp(nn.ReLU)}
        quantized = {k: variants(net, engines) for k, net in nets.items()}
        for b in args.batches:
            x = torch.randn(b, 5, generator=torch.Generator().manual_seed(b))
            calls = max(5, 20000 // b)
            for name, net in nets.items():
                times: dict[str, list[float]] = {"float32": []}
                for _ in range(args.rounds):
                    times["float32"].append(per_call(net, x, calls))
                    for k, (e, q) in quantized[name].items():
                        torch.backends.quantized.engine = e
                        times.setdefault(k, []).append(per_call(q, x, calls))
                med = {k: float(np.median(v)) for k, v in times.items()}
                cells = ", ".join(f"{k} {v:.3f} ({med['float32'] / v:.2f}x)" for k, v in med.items())
                print(f"batch {b:>6}, {name} network, ms: {cells}", flush=True)
            torch.backends.quantized.engine = engines[0]
            layer = nn.Linear(128, 128).eval()
            h = torch.randn(b, 128)
            qlayer = torch.ao.nn.quantized.Linear(128, 128)
            w = torch.quantize_per_channel(layer.weight.detach(), torch.full((128,), 0.01), torch.zeros(128).long(),
                                           0, torch.qint8)  # fmt: skip
            qlayer.set_weight_bias(w, layer.bias.detach())
            hq = torch.quantize_per_tensor(h, 0.05, 128, torch.quint8)
            dyn = quantize_dynamic(nn.Sequential(copy.deepcopy(layer)), {nn.Linear}, dtype=torch.qint8)
            cells = {"float32": per_call(layer, h, 3 * calls), "int8 static": per_call(qlayer, hq, 3 * calls),
                     "int8 dynamic": per_call(dyn, h, 3 * calls),
                     "quantise": per_call(quantise, h, 3 * calls),
                     "dequantise": per_call(lambda z: z.dequantize(), hq, 3 * calls),
                     "SiLU": per_call(nn.functional.silu, h, 3 * calls)}  # fmt: skip
            print(f"batch {b:>6}, one 128x128 layer ({engines[0]}), ms: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in cells.items()), flush=True)
    finally:
        torch.backends.quantized.engine = saved


if __name__ == "__main__":
    main()
