"""What resumable training costs: a Tybalt-sized VAE trained with and without checkpoints, same run.

Workload (defaults): 10,459 x 5,000 synthetic matrix, k = 100, batch 50 (the published recipe), a few
epochs. Three runs of ``VAEModel.train``, the same seed: without a checkpoint (the reference), with a
checkpoint after *every* epoch (the worst case: it gives the cost of one save), and with the default
schedule (every 10 epochs, at least once a minute, epoch-rule saves skipped while they would cost more
than 5 %). Prints epoch time, save time (model folder + training state: weights, Adam, RNG, history),
the state's size, and each run's training-loop time (saves included) as a ratio of the reference's,
and checks the three models are equal.

    python benchmarks/checkpoint_overhead.py                    # 6 epochs (a few minutes on 2 cores)
    python benchmarks/checkpoint_overhead.py --epochs 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10_459)
    ap.add_argument("--genes", type=int, default=5_000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import anndata as ad

    from gengen.runtime import set_threads
    from gengen.training_state import STATE_NAME, Checkpointing
    from gengen.vae import VAEModel, VAERecipe
    from vae_tybalt import synthetic_tybalt  # (benchmarks/ is on the path when run as a script)

    set_threads(args.threads)
    x = synthetic_tybalt(args.samples, args.genes)
    adata = ad.AnnData(x)
    adata.obs_names = [f"s{i}" for i in range(x.shape[0])]
    adata.var_names = [f"g{j}" for j in range(x.shape[1])]
    recipe = dict(latent_dim=100, batch_size=50, epochs=args.epochs, log_transform="no", seed=0)
    print(f"{args.samples} x {args.genes}, k = 100, batch 50, {args.epochs} epochs, {torch.get_num_threads()} thread(s)")
    VAEModel.train(adata, VAERecipe(**{**recipe, "epochs": 1}), device="cpu", quiet=True)  # warm-up, untimed
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, plan in (("none", None), ("every epoch", Checkpointing(Path(tmp) / "every", every=1)),
                           ("default", Checkpointing(Path(tmp) / "default"))):
            t = time.perf_counter()
            model = VAEModel.train(adata, VAERecipe(**recipe), device="cpu", quiet=True, checkpoint=plan)
            wall = time.perf_counter() - t
            runs[name] = (wall, model, plan)
            print(f"  {name:12s} {wall:7.1f} s wall (with the final save), training loop "
                  f"{model.metrics['train_seconds']:.1f} s")
        ref_model = runs["none"][1]
        epoch = ref_model.metrics["train_seconds"] / args.epochs
        every = json.loads((Path(runs["every epoch"][2].directory) / "config.json").read_text())["training"]["checkpoints"]
        per_save = every["save_seconds"] / max(every["saves"], 1)
        print(f"one save (model folder + {STATE_NAME}, {every['last_state_mb']} MB): {per_save:.3f} s = "
              f"{100 * per_save / epoch:.1f} % of an epoch ({epoch:.2f} s without checkpoints)")
        for name in ("every epoch", "default"):
            wall, model, plan = runs[name]
            saves = json.loads((Path(plan.directory) / "config.json").read_text())["training"]["checkpoints"]["saves"]
            same = all(torch.equal(a, b) for a, b in zip(ref_model.module.state_dict().values(),
                                                         model.module.state_dict().values(), strict=True))
            ratio = model.metrics["train_seconds"] / ref_model.metrics["train_seconds"]
            print(f"{name}: {saves} mid-training save(s); training loop time / without checkpoints {ratio:.3f}; "
                  f"same weights: {same}")
        print(f"default schedule on a long run: a save every 10 epochs costs {100 * per_save / (10 * epoch):.2f} % "
              f"of the training time here, one a minute {100 * per_save / 60:.2f} %")

if __name__ == "__main__":
    main()
