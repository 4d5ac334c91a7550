"""The GPU paths of all three pipelines in one run, sized for a short lease on one GPU.

Each section times gengen against the straightforward reference loop of the pipeline's own benchmark
(same process, same card) and checks that the fast path computes what the plain one does:

* VAE (Tybalt, 10,459 x 5,000, k = 100, batch 50): reference loop (DataLoader, ``.item()`` per step;
  ``--vae-ref-epochs`` epochs, scaled to 50), gengen eager and gengen with CUDA-graph replay
  (``fit_vae(cuda_graphs=...)``), final losses compared; then z_mean encoding of all samples.
* WGAN-GP (paper configuration: 5 critic + 1 generator step, batch 64, L = 50, 100 channels):
  textbook loop on textbook nets, gengen eager, gengen with the whole iteration replayed as one CUDA
  graph (:func:`gengen.dna.gan.train.make_iteration`); then a short ``train_gan`` run with checkpoint and
  ``--resume`` on the device, to exercise the captured loop end to end.
* GGAN (943 -> 3 x 3,000 -> 9,520, batch 200): reference loop, gengen fp32 and bf16 autocast training
  throughput; inference throughput on the device (fp32, bf16) and end to end (numpy in, numpy out in
  original units, ``GGANModel.predict_array``).

    python benchmarks/gpu_suite.py --out results.json           # on a CUDA machine
    python benchmarks/gpu_suite.py --device cpu --small          # a dry run of the code paths

A section that fails prints its traceback and the others still run; the last lines are a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def sync(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev) -> float:
    sync(dev)
    t0 = time.perf_counter()
    fn()
    sync(dev)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------- VAE
def bench_vae(a, dev) -> dict:
    from gengen.vae.core import VAEModel
    from gengen.vae.model import TybaltVAE
    from gengen.vae.preprocess import MinMaxScaler
    from gengen.vae.train import VAERecipe, fit_vae
    from vae_tybalt import reference_train, synthetic_tybalt

    x = synthetic_tybalt(a.vae_samples, a.vae_genes)
    out: dict = {"samples": a.vae_samples, "genes": a.vae_genes}
    t_ref = reference_train(x, 100, a.vae_ref_epochs, 50, dev)
    out["reference_s_per_epoch"] = t_ref / a.vae_ref_epochs
    out["reference_50_epochs_s_scaled"] = 50 * t_ref / a.vae_ref_epochs
    print(f"vae reference: {t_ref:.2f} s for {a.vae_ref_epochs} epochs", flush=True)

    def run(epochs: int, graphs: bool):
        torch.manual_seed(0)
        module = TybaltVAE(x.shape[1], 100)
        recipe = VAERecipe(latent_dim=100, epochs=epochs, batch_size=50, seed=0)
        box = {}

        def go():
            # as VAEModel.train calls it: inside a forked, seeded RNG
            with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                torch.manual_seed(0)
                box["h"] = fit_vae(module, x, None, recipe=recipe, device=dev, quiet=True, cuda_graphs=graphs)

        secs = timed(go, dev)
        h = box["h"]
        return secs, h, module

    for label, epochs, graphs in (
        ("eager_short", a.vae_short_epochs, False),
        ("graphs_short", a.vae_short_epochs, True),
        ("graphs_50", 50, True),
        ("graphs_50_again", 50, True),
    ):
        secs, h, module = run(epochs, graphs)
        out[label] = {
            "epochs": epochs,
            "seconds": secs,
            "cuda_graphs": bool(h.attrs.get("cuda_graphs")),
            "first_loss": float(h["train_loss"].iloc[0]),
            "final_loss": float(h["train_loss"].iloc[-1]),
        }
        print(f"vae {label}: {secs:.2f} s, graphs={h.attrs.get('cuda_graphs')}, loss "
              f"{h['train_loss'].iloc[0]:.2f} -> {h['train_loss'].iloc[-1]:.2f}", flush=True)
    e, g = out["eager_short"]["final_loss"], out["graphs_short"]["final_loss"]
    out["graphs_vs_eager_final_loss_rel"] = abs(g - e) / abs(e)
    model = VAEModel(module, [f"g{i}" for i in range(x.shape[1])], MinMaxScaler.fit(x), recipe=VAERecipe(), device=str(dev))
    model.encode_array(x[:100])
    box = {}
    out["encode_s"] = timed(lambda: box.setdefault("z", model.encode_array(x)), dev)
    out["encode_shape"] = list(box["z"].shape)
    return out


# ----------------------------------------------------------------------------------------- WGAN
def bench_wgan(a, dev) -> dict:
    from dna import reference_gan_iteration, textbook
    from gengen.dna.gan.core import GANModel, train_gan
    from gengen.dna.gan.model import Critic, Generator
    from gengen.dna.gan.train import GANRecipe, make_iteration, new_nets

    L, B, latent, ch = 50, 64, 100, a.wgan_channels
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, size=(20000, L)).astype(np.uint8)
    onehot_np = np.eye(4, dtype=np.float32)[codes].transpose(0, 2, 1).copy()
    out: dict = {"channels": ch}

    torch.manual_seed(0)
    g = textbook(Generator(L, latent, ch), ch).to(dev)
    d = textbook(Critic(L, ch), ch).to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.5, 0.9))

    def ref():
        reference_gan_iteration(g, d, opt_g, opt_d, onehot_np, B, latent, device=dev)

    for _ in range(3):
        ref()
    per = [timed(ref, dev) for _ in range(a.wgan_iters)]
    out["reference_ms"] = 1000 * statistics.median(per)
    print(f"wgan reference: {out['reference_ms']:.1f} ms/iteration", flush=True)

    recipe = GANRecipe(length=L, latent=latent, channels=ch)
    data = torch.as_tensor(codes, device=dev)
    for label, graphs in (("eager", False), ("graphs", True)):
        torch.manual_seed(0)
        state = new_nets(recipe, dev)
        step = make_iteration(state, data, recipe, cuda_graphs=graphs)
        for _ in range(5):  # graphs: the third call captures
            step()
        losses = []

        def loop(step=step, losses=losses):
            for _ in range(a.wgan_iters):
                losses.append(torch.stack(step()))

        secs = timed(loop, dev)
        vals = torch.stack(losses).cpu().numpy()
        uses = bool(getattr(step, "uses_graph", lambda: False)())
        out[label] = {"ms": 1000 * secs / a.wgan_iters, "cuda_graphs": uses, "finite": bool(np.isfinite(vals).all()),
                      "last_losses": vals[-1].tolist()}
        print(f"wgan {label}: {out[label]['ms']:.2f} ms/iteration, graphs={uses}, finite={out[label]['finite']}",
              flush=True)

    # the captured loop end to end: checkpoints, k-mer checks, resume (optimizer state on the device)
    with tempfile.TemporaryDirectory() as tmp:
        small = GANRecipe(length=L, latent=latent, channels=ch, iterations=a.wgan_train_iters, log_every=20,
                          sample_every=40, checkpoint_every=40, seed=0)
        t0 = time.perf_counter()
        m = train_gan(codes[:15000], small, output=Path(tmp) / "gan", heldout_codes=codes[15000:], device=str(dev),
                      quiet=True)
        t1 = time.perf_counter()
        more = GANRecipe(**{**small.to_dict(), "iterations": a.wgan_train_iters + 40})
        m2 = train_gan(codes[:15000], more, output=Path(tmp) / "gan", heldout_codes=codes[15000:], resume=True,
                       device=str(dev), quiet=True)
        loaded = GANModel.load(Path(tmp) / "gan", device="cpu")
        out["train_gan"] = {
            "iterations": a.wgan_train_iters,
            "seconds": t1 - t0,
            "cuda_graphs": m.metrics.get("cuda_graphs"),
            "resumed_to": m2.metrics.get("iteration"),
            "resume_cuda_graphs": m2.metrics.get("cuda_graphs"),
            "js_k3": m2.metrics.get("js_k3"),
            "loaded_generate_shape": list(loaded.generate(8).shape),
        }
        print(f"wgan train_gan: {out['train_gan']}", flush=True)
    return out


# ----------------------------------------------------------------------------------------- GGAN
def bench_ggan(a, dev) -> dict:
    from gengen.ggan import GGANModel, GGANRecipe, Preprocessor, resolve_ggan_recipe
    from gengen.ggan.loop import fit_ggan
    from gengen.ggan.train import build_networks
    from ggan_dgex_shape import gengen_loop, make_data, reference_loop

    n_x, n_y = a.ggan_landmarks, a.ggan_targets
    steps, batch = a.ggan_steps, 200
    X, Y = make_data(max(steps * batch, 6000), n_x, n_y)
    out: dict = {"hidden": a.ggan_hidden, "steps": steps}
    base = resolve_ggan_recipe(GGANRecipe(hidden=a.ggan_hidden, batch_size=batch, seed=0, ridge_init=False), len(X))
    for label in ("reference", "fp32", "bf16", "reference_again", "fp32_again", "bf16_again"):
        torch.manual_seed(0)
        gen, disc = build_networks(n_x, n_y, base)
        kind = label.replace("_again", "")
        if kind == "reference":
            secs = reference_loop(gen, disc, X, Y, steps, batch, base, dev)
        else:
            recipe = GGANRecipe.from_dict({**base.to_dict(), "precision": kind})
            secs = gengen_loop(gen, disc, X, Y, steps, recipe, dev)
        out.setdefault(kind, []).append(steps * batch / secs)
        print(f"ggan train {label}: {steps * batch / secs:.0f} profiles/s", flush=True)

    # validation on the device with bf16: the loss must fall and the MAE must be finite
    torch.manual_seed(0)
    gen, disc = build_networks(n_x, n_y, base)
    r = GGANRecipe.from_dict({**base.to_dict(), "epochs": 3, "precision": "auto"})
    h = fit_ggan(gen, disc, X[:4000], y_train=Y[:4000], x_val=X[4000:5000], y_val=Y[4000:5000], recipe=r, device=dev, quiet=True)
    out["fit_check"] = {"precision": h.attrs.get("precision"), "val_mae": h["val_mae"].tolist(),
                        "l1": h["l1"].tolist()}
    print(f"ggan fit check: {out['fit_check']}", flush=True)

    # inference
    Xq = np.random.default_rng(1).standard_normal((a.ggan_infer, n_x), dtype=np.float32)
    xq = torch.as_tensor(Xq, device=dev)
    gen.eval()
    for prec in ("fp32", "bf16"):
        def dev_only(prec=prec):
            from gengen.runtime import autocast

            with torch.inference_mode(), autocast(prec, dev):
                for s in range(0, len(xq), 8192):
                    gen(xq[s : s + 8192])

        dev_only()
        out[f"infer_device_{prec}"] = a.ggan_infer / timed(dev_only, dev)
    pre = Preprocessor.fit(X[:2000], Y[:2000])
    for prec in ("fp32", "bf16"):
        recipe = GGANRecipe.from_dict({**base.to_dict(), "precision": prec})
        model = GGANModel(gen, [f"L{i}" for i in range(n_x)], [f"T{j}" for j in range(n_y)],
                          preprocessor=pre, recipe=recipe, device=str(dev))
        model.predict_array(Xq[:1000])
        box = {}
        out[f"infer_end_to_end_{prec}"] = a.ggan_infer / timed(lambda m=model, box=box: box.setdefault("y", m.predict_array(Xq)), dev)
        if prec == "fp32":
            y32 = box["y"]
        else:
            diff = np.linalg.norm(box["y"] - y32) / np.linalg.norm(y32)
            out["infer_bf16_vs_fp32_rel"] = float(diff)
    # the host-side ceiling: writing the float32 output into fresh host memory (first touch + copy)
    src = np.ones((min(a.ggan_infer, 20000), n_y), np.float32)

    def host_fill():
        dst = np.empty((a.ggan_infer, n_y), np.float32)
        for s in range(0, a.ggan_infer, len(src)):
            k = min(len(src), a.ggan_infer - s)
            dst[s : s + k] = src[:k]

    out["host_fill_profiles_per_s"] = a.ggan_infer / timed(host_fill, dev)
    print({k: v for k, v in out.items() if k.startswith(("infer", "host"))}, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--small", action="store_true", help="tiny sizes: check the code paths, time nothing useful")
    ap.add_argument("--only", default="vae,wgan,ggan")
    ap.add_argument("--out", default=None, help="write all figures as JSON here")
    a = ap.parse_args()
    a.vae_samples, a.vae_genes, a.vae_ref_epochs, a.vae_short_epochs = 10459, 5000, 10, 10
    a.wgan_channels, a.wgan_iters, a.wgan_train_iters = 100, 30, 120
    a.ggan_landmarks, a.ggan_targets, a.ggan_hidden, a.ggan_steps, a.ggan_infer = 943, 9520, 3000, 100, 100_000
    if a.small:
        a.vae_samples, a.vae_genes, a.vae_ref_epochs, a.vae_short_epochs = 400, 300, 1, 2
        a.wgan_channels, a.wgan_iters, a.wgan_train_iters = 8, 2, 40
        a.ggan_landmarks, a.ggan_targets, a.ggan_hidden, a.ggan_steps, a.ggan_infer = 50, 80, 64, 20, 3000
    from gengen.runtime import describe_device, resolve_device

    dev = resolve_device(a.device)
    if dev.type == "cuda":
        torch.cuda.init()
    info = {"device": describe_device(dev), "torch": torch.__version__, "small": a.small,
            "cuda_graphs_env": os.environ.get("GENGEN_CUDA_GRAPHS", "")}
    print(f"# {info}", flush=True)
    results: dict = {"info": info}
    benches = {"vae": bench_vae, "wgan": bench_wgan, "ggan": bench_ggan}
    for name in a.only.split(","):
        t0 = time.perf_counter()
        try:
            results[name] = benches[name](a, dev)
        except Exception as exc:  # keep going: one lease, several sections
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        results.setdefault(name, {})["section_s"] = time.perf_counter() - t0
        print(f"## {name} section: {time.perf_counter() - t0:.1f} s", flush=True)
        if a.out:
            Path(a.out).write_text(json.dumps(results, indent=1, default=str))
    print("\n# summary")
    v, w, g = results.get("vae", {}), results.get("wgan", {}), results.get("ggan", {})

    def f(x, fmt="{:.2f}"):
        return fmt.format(x) if isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x)) else str(x)

    if "graphs_50" in v:
        print(f"VAE 50 epochs: reference {f(v['reference_50_epochs_s_scaled'])} s (scaled), eager "
              f"{f(50 * v['eager_short']['seconds'] / v['eager_short']['epochs'])} s (scaled), graphs "
              f"{f(v['graphs_50']['seconds'])} / {f(v['graphs_50_again']['seconds'])} s (target <= 3 s); loss rel diff "
              f"{f(v['graphs_vs_eager_final_loss_rel'], '{:.4f}')}; encode {f(v['encode_s'], '{:.3f}')} s")
    elif "error" in v:
        print(f"VAE: {v['error']}")
    if "graphs" in w:
        print(f"WGAN iteration: reference {f(w['reference_ms'], '{:.1f}')} ms, eager {f(w['eager']['ms'], '{:.1f}')} ms, "
              f"graphs {f(w['graphs']['ms'], '{:.1f}')} ms (target <= 20 ms), graphs used {w['graphs']['cuda_graphs']}")
    elif "error" in w:
        print(f"WGAN: {w['error']}")
    if "bf16" in g:
        print(f"GGAN training profiles/s (best of 2): reference {max(g['reference']):.0f}, fp32 {max(g['fp32']):.0f}, "
              f"bf16 {max(g['bf16']):.0f} (target >= 20,000)")
        print(f"GGAN inference profiles/s: device fp32 {g.get('infer_device_fp32', 0):.0f}, bf16 "
              f"{g.get('infer_device_bf16', 0):.0f}; end to end fp32 {g.get('infer_end_to_end_fp32', 0):.0f}, bf16 "
              f"{g.get('infer_end_to_end_bf16', 0):.0f} (target >= 500,000); host-memory ceiling "
              f"{g.get('host_fill_profiles_per_s', 0):.0f}")
    elif "error" in g:
        print(f"GGAN: {g['error']}")


if __name__ == "__main__":
    main()
