"""DNA pipeline benchmarks: gengen vs a straightforward reference measured in the same run.

1. WGAN-GP generator iteration (5 critic steps + 1 generator step, batch 64, L = 50, the paper's
   residual CNNs with 100 channels). Reference: the textbook PyTorch loop on textbook nets (residual
   blocks of plain nn.Conv1d; one-hot batches built from a host numpy array, fake batches with a
   generator graph that is then detached, separate critic calls for real, fake and interpolates, the
   penalty by autograd.grad(create_graph=True), critic weight gradients computed in the generator step).
   Target: gengen <= 0.9x the reference.
2. Direct PWM design of 10,000 sequences x 500 steps (CTCF, L = 50). Target: <= 30 s on the CPU.
   Reference: the same optimisation with the reverse strand scored by a second convolution over a
   reverse-complemented input and the one-hot score computed every step (timed on ``--ref-steps``
   steps and scaled, since it is slow).
3. Two objectives with every constraint on (CTCF max + GATA1 min at weight 0.5; editing 10,000 random
   50-nt starts with --max-edits 10, --fixed 1-5,46-50, --avoid GAATTC,GGTCTC,AAAAAA, --gc 0.3-0.7)
   against one objective (CTCF max, free design) at the same size, 500 steps. Target: <= 2x.
4. PWM designs per second: 1,000 CTCF designs of 50 nt, 300 steps, to 100 % of the consensus
   maximum, against Ledidi's seconds per design (``--ledidi-seconds``; Ledidi is not a dependency of
   gengen: measure it in a separate environment, see docs/benchmarks.md). Target: >= 50x.
5. Novelty: nearest training window (both strands) of 10,000 sequences among 100,000 windows of 50 nt.
   Reference: the same distances in numpy, by broadcasting comparisons over blocks (timed on
   ``--ref-queries`` queries and scaled). Target: < 60 s on the CPU.

Timings are interleaved (ref, gengen, ref, gengen, ...) and the median taken: the machine is shared.

    python benchmarks/dna.py [--threads 1] [--iters 3] [--channels 100] [--skip-gan] [--skip-design]
        [--skip-objectives] [--skip-rate] [--skip-novelty] [--ledidi-seconds 0.44]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def reference_gan_iteration(g, d, opt_g, opt_d, onehot_np, batch, latent, critic_steps=5, lam=10.0, device="cpu"):
    """The straightforward WGAN-GP loop, as usually written (batches copied from host memory)."""
    for _ in range(critic_steps):
        idx = np.random.randint(0, len(onehot_np), batch)
        real = torch.from_numpy(onehot_np[idx]).to(device)
        fake = g(torch.randn(batch, latent, device=device)).detach()
        d_real = d(real).mean()
        d_fake = d(fake).mean()
        eps = torch.rand(batch, 1, 1, device=device)
        interp = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad = torch.autograd.grad(d(interp).sum(), interp, create_graph=True)[0]
        gp = ((grad.reshape(batch, -1).norm(dim=1) - 1) ** 2).mean()
        loss = d_fake - d_real + lam * gp
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
    loss_g = -d(g(torch.randn(batch, latent, device=device))).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return float(loss.item()), float(loss_g.item())


class TextbookResBlock(torch.nn.Module):
    """The paper's residual block written plainly with nn.Conv1d (native autograd for every pass)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(channels, channels, 5, padding=2)
        self.conv2 = torch.nn.Conv1d(channels, channels, 5, padding=2)

    def forward(self, x):
        return x + 0.3 * self.conv2(torch.relu(self.conv1(torch.relu(x))))


def textbook(net, channels: int):
    """``net`` (a gengen Generator or Critic) with its residual blocks swapped for textbook ones, same
    weights: the reference must not use gengen's own convolution or its penalty shortcut."""
    blocks = torch.nn.Sequential(*[TextbookResBlock(channels) for _ in net.blocks])
    blocks.load_state_dict(net.blocks.state_dict())
    net.blocks = blocks
    return net


def bench_gan(args) -> dict:
    from gengen.dna.gan.model import Critic, Generator
    from gengen.dna.gan.train import GANRecipe, new_nets, wgan_gp_iteration

    L, B, latent = 50, 64, 100
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, size=(20000, L)).astype(np.uint8)
    onehot_np = np.eye(4, dtype=np.float32)[codes].transpose(0, 2, 1).copy()
    torch.manual_seed(0)
    g = textbook(Generator(L, latent, args.channels), args.channels)
    # a plain nn.Module (not a gengen Critic), so gradient_penalty-style shortcuts cannot apply
    d = textbook(Critic(L, args.channels), args.channels)
    assert all(isinstance(b, TextbookResBlock) for b in list(g.blocks) + list(d.blocks))
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.5, 0.9))
    recipe = GANRecipe(length=L, latent=latent, channels=args.channels)
    state = new_nets(recipe, torch.device("cpu"))
    data = torch.as_tensor(codes)

    def ref():
        reference_gan_iteration(g, d, opt_g, opt_d, onehot_np, B, latent)

    def ours():
        losses = wgan_gp_iteration(state, data, recipe)
        float(losses[0])  # same one host sync per iteration as the reference

    ref()
    ours()  # warm-up
    t_ref, t_ours = [], []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        ref()
        t_ref.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - t0)
    r, o = statistics.median(t_ref), statistics.median(t_ours)
    return {"ref_s": r, "gengen_s": o, "ratio": o / r, "ref_all": t_ref, "gengen_all": t_ours}


def reference_design(pwm, n, length, steps, lr=0.1, seed=0):
    """Direct design written plainly: two convolutions (input and its reverse complement), exact
    one-hot score each step."""
    w = torch.as_tensor(pwm.log_odds, dtype=torch.float32)[None]
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 4, length, generator=g).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        x = torch.softmax(logits, dim=1)
        fwd = torch.nn.functional.conv1d(x, w)
        rev = torch.nn.functional.conv1d(x.flip(1).flip(2), w)
        s = 0.5 * torch.logsumexp(torch.cat([fwd, rev], dim=2).squeeze(1) / 0.5, dim=1)
        loss = -s.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            hard = torch.nn.functional.one_hot(logits.argmax(1), 4).transpose(1, 2).float()
            fh = torch.nn.functional.conv1d(hard, w)
            rh = torch.nn.functional.conv1d(hard.flip(1).flip(2), w)
            torch.cat([fh, rh], dim=2).amax(dim=(1, 2)).mean().item()
    hard = torch.nn.functional.one_hot(logits.argmax(1), 4).transpose(1, 2).float()
    return hard


def bench_design(args) -> dict:
    from gengen.dna.designer.design import design_direct
    from gengen.dna.predictor.predictors import PWMPredictor
    from gengen.io.motifs import load_motif

    pwm = load_motif("MA0139.2")
    n, steps = args.design_n, args.design_steps
    ref_steps = min(steps, args.ref_steps)
    t0 = time.perf_counter()
    reference_design(pwm, n, 50, ref_steps)
    t_ref = (time.perf_counter() - t0) * steps / ref_steps  # per-step time scaled to the full run
    t0 = time.perf_counter()
    res = design_direct(PWMPredictor(pwm), n=n, length=50, steps=steps, device="cpu", quiet=True)
    t_ours = time.perf_counter() - t0
    frac = float(res.scores.mean() / pwm.max_score)
    return {"ref_s": t_ref, "gengen_s": t_ours, "ratio": t_ours / t_ref, "fraction_of_max": frac}


def bench_objectives(args) -> dict:
    """One objective, free design, against two objectives under every constraint, interleaved."""
    from gengen.dna.designer.constraints import Constraints, parse_ranges
    from gengen.dna.designer.design import design
    from gengen.dna.designer.objectives import Objective
    from gengen.dna.predictor.predictors import PWMPredictor
    from gengen.io.motifs import load_motif

    ctcf, gata = load_motif("MA0139.2", quiet=True), load_motif("MA0035.4", quiet=True)
    n, steps = args.design_n, args.design_steps
    start = np.random.default_rng(0).integers(0, 4, (n, 50)).astype(np.uint8)
    design(PWMPredictor(ctcf), 64, 50, steps=3, device="cpu", quiet=True)  # warm-up (imports)

    def one():
        return design(PWMPredictor(ctcf), n, 50, steps=steps, device="cpu", quiet=True)

    def two():
        objs = [Objective(PWMPredictor(ctcf), "max", name="CTCF"), Objective(PWMPredictor(gata), "min", 0.5, name="GATA1")]
        c = Constraints(start=start, fixed=parse_ranges("1-5,46-50", 50), max_edits=10,
                        avoid=("GAATTC", "GGTCTC", "AAAAAA"), gc=(0.3, 0.7))
        return design(objs, n, 50, constraints=c, steps=steps, device="cpu", quiet=True)

    t_one, t_two, res = [], [], {}
    for _ in range(args.objective_iters):
        for f, times in ((one, t_one), (two, t_two)):
            t0 = time.perf_counter()
            res[f.__name__] = f()
            times.append(time.perf_counter() - t0)
    a, b = statistics.median(t_one), statistics.median(t_two)
    r1, r2 = res["one"], res["two"]
    return {"one_s": a, "two_s": b, "ratio": b / a, "one_all": t_one, "two_all": t_two,
            "one_frac": float(r1.scores.mean() / ctcf.max_score), "two_scores": r2.objective_scores.mean(axis=0),
            "two_start": r2.initial_objective_scores.mean(axis=0), "two_kept": len(r2.codes), "edits": r2.edits.mean()}


def bench_rate(args) -> dict:
    """Seconds per design for 1,000 CTCF designs to the consensus maximum (the Ledidi comparison): free
    design from random logits, and editing 1,000 random 50-nt sequences (Ledidi's task; no budget)."""
    from gengen.dna.designer.constraints import Constraints
    from gengen.dna.designer.design import design
    from gengen.dna.predictor.predictors import PWMPredictor
    from gengen.io.motifs import load_motif

    pwm = load_motif("MA0139.2", quiet=True)
    start = np.random.default_rng(0).integers(0, 4, (1000, 50)).astype(np.uint8)  # Ledidi ran the first of these
    design(PWMPredictor(pwm), 64, 50, steps=3, device="cpu", quiet=True)
    out = {}
    for name, kw in (("free", {}), ("edit", {"constraints": Constraints(start=start)})):
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            res = design(PWMPredictor(pwm), 1000, 50, steps=300, device="cpu", quiet=True, **kw)
            times.append(time.perf_counter() - t0)
        per = statistics.median(times) / 1000
        out[name] = {"per_design_s": per, "fraction_of_max": float(res.scores.mean() / pwm.max_score),
                     "min_fraction": float(res.scores.min() / pwm.max_score), "ratio": args.ledidi_seconds / per}
    return out


def bench_novelty(args) -> dict:
    """gengen's blocked one-hot products against numpy comparisons of every pair."""
    from gengen.dna.gan.novelty import nearest_distances, reverse_complement_codes

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, (100_000, 50)).astype(np.uint8)
    queries = rng.integers(0, 4, (10_000, 50)).astype(np.uint8)
    both = np.concatenate([ref, reverse_complement_codes(ref)])
    t0 = time.perf_counter()
    m = args.ref_queries
    expect = np.array([min((both[i : i + 20000] != q).sum(axis=1).min() for i in range(0, len(both), 20000))
                       for q in queries[:m]])
    t_ref = (time.perf_counter() - t0) * len(queries) / m
    t0 = time.perf_counter()
    d = nearest_distances(queries, ref)
    t_ours = time.perf_counter() - t0
    assert (d[:m] == expect).all(), "distances differ from the reference"
    return {"ref_s": t_ref, "gengen_s": t_ours, "ratio": t_ours / t_ref}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--iters", type=int, default=3, help="timed generator iterations per implementation")
    ap.add_argument("--channels", type=int, default=100, help="residual channels (paper: 100)")
    ap.add_argument("--design-n", type=int, default=10000)
    ap.add_argument("--design-steps", type=int, default=500)
    ap.add_argument(
        "--ref-steps", type=int, default=50, help="reference design steps timed (scaled to --design-steps)"
    )
    ap.add_argument("--skip-gan", action="store_true")
    ap.add_argument("--skip-design", action="store_true")
    ap.add_argument("--skip-objectives", action="store_true")
    ap.add_argument("--skip-rate", action="store_true")
    ap.add_argument("--skip-novelty", action="store_true")
    ap.add_argument("--ref-queries", type=int, default=20, help="novelty reference: queries timed (scaled to 10,000)")
    ap.add_argument("--objective-iters", type=int, default=2, help="interleaved runs of each objective setting")
    ap.add_argument("--ledidi-seconds", type=float, default=0.44,
                    help="Ledidi's seconds per CTCF design at 100%% of the PWM maximum, measured separately")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if not args.skip_gan:
        r = bench_gan(args)
        print(
            f"WGAN-GP generator iteration (5 critic + 1 generator step, batch 64, L=50, {args.channels} channels), "
            f"median of {args.iters}:"
        )
        print(
            f"  reference {r['ref_s'] * 1000:.0f} ms   gengen {r['gengen_s'] * 1000:.0f} ms   "
            f"ratio {r['ratio']:.2f}x (target <= 0.9x)"
        )
        print(
            f"  all reference: {[round(t * 1000) for t in r['ref_all']]} ms; "
            f"all gengen: {[round(t * 1000) for t in r['gengen_all']]} ms"
        )
    if not args.skip_design:
        r = bench_design(args)
        print(f"direct PWM design, CTCF, {args.design_n} sequences x {args.design_steps} steps, L=50:")
        print(
            f"  reference {r['ref_s']:.1f} s (timed on {min(args.ref_steps, args.design_steps)} steps, scaled)   gengen {r['gengen_s']:.1f} s (target <= 30 s)   "
            f"ratio {r['ratio']:.2f}x; gengen one-hot mean = {100 * r['fraction_of_max']:.2f}% of the consensus max"
        )
    if not args.skip_objectives:
        r = bench_objectives(args)
        print(f"two objectives + every constraint vs one objective, {args.design_n} x 50 nt x {args.design_steps} steps, "
              f"median of {args.objective_iters}:")
        print(f"  one objective {r['one_s']:.1f} s ({100 * r['one_frac']:.2f}% of the CTCF max)   two objectives + "
              f"constraints {r['two_s']:.1f} s   ratio {r['ratio']:.2f}x (target <= 2x)")
        print(f"  two: CTCF {r['two_scores'][0]:.2f} (start {r['two_start'][0]:.2f}), GATA1 {r['two_scores'][1]:.2f} "
              f"(start {r['two_start'][1]:.2f}); {r['two_kept']} of {args.design_n} kept, {r['edits']:.2f} edits each; "
              f"all one: {[round(t, 1) for t in r['one_all']]} s, all two: {[round(t, 1) for t in r['two_all']]} s")
    if not args.skip_rate:
        for name, r in bench_rate(args).items():
            what = "free design" if name == "free" else "editing 1,000 random starts, no budget"
            print(f"PWM design rate, {what}, 1,000 CTCF designs x 50 nt x 300 steps: {r['per_design_s'] * 1000:.2f} ms "
                  f"per design ({100 * r['fraction_of_max']:.2f}% of the max, min {100 * r['min_fraction']:.2f}%); "
                  f"Ledidi {args.ledidi_seconds:.2f} s per design: {r['ratio']:.0f}x (target >= 50x)")

    if not args.skip_novelty:
        r = bench_novelty(args)
        print(f"novelty, 10,000 x 100,000 windows of 50 nt, both strands: reference {r['ref_s']:.0f} s (numpy, timed on "
              f"{args.ref_queries} queries and scaled)   gengen {r['gengen_s']:.1f} s (target < 60 s)   ratio {r['ratio']:.3f}x; "
              "same distances")


if __name__ == "__main__":
    main()
