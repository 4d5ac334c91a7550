"""A TorchScript model as a design objective against the same network run natively, in the same run.

Issue 19: ``--objective model=FILE.pt`` may cost at most 1.2x per design step what the same network
costs as gengen's own predictor. This builds a CNN predictor (the ``dna-train-predictor`` default
architecture, random weights; or ``--predictor DIR``: a trained one), exports it as TorchScript the way
``gengen dna-export-predictor`` does (``torch.jit.script``; ``--traced`` also times ``torch.jit.trace``),
and designs the same ``-n`` sequences of ``--length`` nt with each: direct design and joint design
through a random GAN (``--gan-channels``, 5 residual blocks). Per-step cost is ``(T(steps) - T(0)) / steps``
(calibration and the final scoring cancel), the median of ``--repeats`` interleaved runs; the designs
must be identical. On the CPU T is the process's CPU time (``time.process_time``): on a machine shared
with other work, wall time mostly measures the others (the same runs varied 2x in wall time); on a
GPU it is wall time after a synchronize. Prints the per-step times and the ratio model / native for each
method, and the designs' mean score both ways.

    python benchmarks/model_objective.py [--predictor DIR] [-n 128] [--length 36] [--steps 50] [--repeats 3]
        [--gan-channels 32] [--threads 1] [--traced] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictor", help="a dna-train-predictor model (default: the default architecture, random weights)")
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--length", type=int, default=36)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--gan-channels", type=int, default=32, help="the joint design's generator width (paper: 100)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--traced", action="store_true", help="also time a torch.jit.trace export")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    on_gpu = args.device.startswith("cuda")

    def clock() -> float:
        if on_gpu:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    from gengen.dna import GANModel, GANRecipe, Generator
    from gengen.dna.designer.design import design
    from gengen.dna.designer.objective_kinds.model import (
        ModelObjective,
        TorchModel,
        export_torchscript,
        load_torchscript,
    )
    from gengen.dna.designer.objectives import Objective
    from gengen.dna.predictor.predictors import CNNPredictor
    from gengen.recipes import PredictorRecipe

    if args.predictor:
        native = CNNPredictor.load(args.predictor, device="cpu")
        length = native.length or args.length
    else:
        r = PredictorRecipe()
        torch.manual_seed(0)
        native = CNNPredictor(r.channels, r.width, r.hidden).eval()
        length = args.length
    models = {"native": lambda: Objective(native, "max", name="p")}
    with tempfile.TemporaryDirectory() as tmp:
        path = export_torchscript(native, Path(tmp) / "p.pt", length=length)
        scripted = load_torchscript(str(path), args.device)[0]
        models["torchscript"] = lambda: ModelObjective(TorchModel(scripted, name="p"), "max", name="p")
        if args.traced:
            x = torch.eye(4)[torch.randint(0, 4, (2, length))].transpose(1, 2)
            traced = torch.jit.trace(native, x)
            models["traced"] = lambda: ModelObjective(TorchModel(traced, name="p"), "max", name="p")

        torch.manual_seed(1)
        c = args.gan_channels
        gan = GANModel(Generator(length, 100, c, blocks=5).eval(), GANRecipe(length=length, channels=c), {"iteration": 0})
        print(f"{args.n} designs of {length} nt, {args.steps} steps, {args.threads} thread(s), {args.device} "
              f"({'wall' if on_gpu else 'CPU'} time per step); "
              f"predictor {'from ' + args.predictor if args.predictor else 'default architecture, random weights'}")
        for method, extra in (("direct", {}), ("joint (GAN)", {"gan": gan})):
            times: dict[str, list[float]] = {k: [] for k in models}
            codes, scores = {}, {}
            for make in models.values():  # warm-up (first calls allocate, TorchScript compiles)
                design(make(), 8, None if "gan" in extra else length, steps=3, seed=0, device=args.device, **extra)
            for _ in range(args.repeats):
                for name, make in models.items():  # interleaved: drift of a shared machine hits every model alike
                    t = {}
                    for steps in (0, args.steps):
                        t0 = clock()
                        res = design(make(), args.n, None if "gan" in extra else length, steps=steps, seed=0,
                                     device=args.device, **extra)
                        t[steps] = clock() - t0
                    times[name].append((t[args.steps] - t[0]) / args.steps)
                    codes[name], scores[name] = res.codes, float(np.mean(res.scores))
            same = all(np.array_equal(codes["native"], c) for c in codes.values())
            base = statistics.median(times["native"])
            print(f"\n{method}: designs identical to native: {same}")
            for name in models:
                per = statistics.median(times[name])
                print(f"  {name:12s} {1000 * per:8.2f} ms/step  (runs: {', '.join(f'{1000 * v:.2f}' for v in times[name])})"
                      f"  ratio {per / base:.3f}  mean score {scores[name]:.4f}")


if __name__ == "__main__":
    main()
