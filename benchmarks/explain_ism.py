"""ISM speed of ``dna-explain``: every single substitution of 1,000 sequences x 50 nt through a trained PBM
predictor, against a straightforward per-mutation loop measured in the same run.

1. **gengen**: :func:`gengen.dna.predictor.explain.ism` on ``--n`` uniform random sequences of ``--length`` nt
   (seeded), the score explained being the predictor's output
   (:class:`gengen.dna.predictor.explain.ExplainedScore`, as ``dna-explain --predictor`` runs it): gengen's CNN
   scores its substitutions itself, recomputing only the positions each one reaches
   (:meth:`gengen.dna.predictor.predictors.CNNPredictor.substitution_outputs`).
2. **tangermeme**: the same :func:`~gengen.dna.predictor.explain.ism` with the model hidden behind a plain
   wrapper, so that every substitution is a forward pass of ``tangermeme.saturation_mutagenesis`` (what
   any other model gets, and what gengen's CNN got before); same sequences, same workers.
3. **reference**: the loop a user would write first: for each sequence, position and alternative base,
   copy the one-hot sequence, write the base, run the model on that one sequence. It runs on the first
   ``--ref-n`` sequences and is extrapolated to all of them; its deltas must equal gengen's there. It
   runs with one torch thread, its fastest setting here (two OpenMP threads on single-sequence passes
   made it ~10x slower on the shared machine), so the ratio is the conservative one.

Target (issue 19): gengen < 30 s for 1,000 x 50 nt on 2 cores (``--threads 2``).

    python benchmarks/explain_ism.py --predictor PREDICTOR_DIR [--n 1000] [--length 50] [--threads 2] [--ref-n 20]
    python benchmarks/explain_ism.py --predictor PREDICTOR_DIR --scaling   # one thread: 50, 200, 1,000 nt

PREDICTOR_DIR is a ``dna-train-predictor`` folder (e.g. trained on ../shared/data/dna/pbm/Cebpa.fa.gz);
without it one is trained here on 8,000 Cebpa probes for 3 epochs (a minute or two), which has the same
architecture and so the same speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def quick_predictor(threads: int):
    """A CNN predictor trained on 8,000 Cebpa PBM probes for 3 epochs (speed is the architecture's)."""
    from gengen.dna.predictor.training import read_labels, train_predictor
    from gengen.io.sequences import read_fasta
    from gengen.recipes import PredictorRecipe

    pbm = REPO.parent / "shared" / "data" / "dna" / "pbm"
    if not (pbm / "Cebpa.fa.gz").exists():
        pbm = Path("/work/shared/data/dna/pbm")
    seqs = read_fasta(pbm / "Cebpa.fa.gz", ambiguous="uniform", quiet=True)
    y = read_labels(pbm / "Cebpa_scores.csv.gz", seqs.ids)
    keep = np.random.default_rng(0).choice(len(seqs), 8000, replace=False)
    return train_predictor(seqs.codes[keep], y[keep], PredictorRecipe(epochs=3), device="cpu", baseline=False).model


class Plain(torch.nn.Module):
    """The explained score without its own substitution scoring (forward passes only)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def reference_ism(model, x: torch.Tensor) -> np.ndarray:
    """Per-mutation loop: one forward pass of one sequence per substitution."""
    n, _, length = x.shape
    out = np.zeros((n, 4, length), dtype=np.float64)
    with torch.no_grad():
        for k in range(n):
            base = model(x[k : k + 1]).item()
            for i in range(length):
                for b in range(4):
                    if x[k, b, i] == 1:
                        continue
                    mutated = x[k : k + 1].clone()
                    mutated[0, :, i] = 0
                    mutated[0, b, i] = 1
                    out[k, b, i] = model(mutated).item() - base
    return out


def scaling(cnn) -> None:
    """One thread, the CNN's own substitutions vs tangermeme's forward passes at 50, 200 and 1,000 nt (the
    same bases scored at each length: 100, 25 and 4 sequences)."""
    import warnings

    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    from gengen.io.sequences import codes_to_one_hot

    torch.set_num_threads(1)
    for length, n in ((50, 100), (200, 25), (1000, 4)):
        x = codes_to_one_hot(np.random.default_rng(length).integers(0, 4, (n, length)).astype(np.uint8))
        c0 = time.process_time()
        _, table = cnn.substitution_outputs(x)
        own = time.process_time() - c0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c0 = time.process_time()
            _, y_hat = saturation_mutagenesis(Plain(cnn).eval(), x.to(torch.int8), raw_outputs=True, batch_size=4096,
                                              device="cpu", fast=False)
            passes = time.process_time() - c0
        err = float((table - y_hat.reshape(table.shape)).abs().max())
        print(f"{n} x {length} nt: own {own:.2f} CPU s, tangermeme forward passes {passes:.2f} CPU s "
              f"({own / passes:.2f}x); max |difference| {err:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--predictor", help="dna-train-predictor folder (default: train a quick one)")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--length", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ref-n", type=int, default=20)
    ap.add_argument("--scaling", action="store_true", help="one thread, 50 / 200 / 1,000 nt (own vs tangermeme)")
    args = ap.parse_args()

    from gengen.dna.designer.objectives import Objective
    from gengen.dna.predictor.explain import ExplainedScore, ism
    from gengen.dna.predictor.predictors import CNNPredictor
    from gengen.io.sequences import codes_to_one_hot
    from gengen.runtime import set_threads

    set_threads(args.threads)
    cnn = CNNPredictor.load(args.predictor, device="cpu") if args.predictor else quick_predictor(args.threads)
    if args.scaling:
        scaling(cnn.eval())
        return
    model = ExplainedScore([Objective(cnn, name="predictor")], ambiguous=False).eval()  # as dna-explain without N
    codes = np.random.default_rng(1).integers(0, 4, (args.n, args.length)).astype(np.uint8)
    x = codes_to_one_hot(codes)
    ism(model, x[:2], device="cpu")  # imports and first-call set-up, not timed

    t0, c0 = time.perf_counter(), time.process_time()
    _, delta = ism(model, x, device="cpu")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    subs = 3 * args.n * args.length

    plain = Plain(model).eval()  # no all_substitutions: tangermeme's forward passes
    ism(plain, x[:2], device="cpu")
    t0, c0 = time.perf_counter(), time.process_time()
    _, tdelta = ism(plain, x, device="cpu")
    t_wall, t_cpu = time.perf_counter() - t0, time.process_time() - c0

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()
    ref = reference_ism(model, x[: args.ref_n])
    ref_wall = (time.perf_counter() - t0) * args.n / args.ref_n
    ref_cpu = (time.process_time() - c0) * args.n / args.ref_n
    torch.set_num_threads(threads)
    err = float(np.abs(ref - delta[: args.ref_n]).max())

    print(f"predictor: {args.predictor or 'quick Cebpa predictor'} ({len(cnn.members)} network(s)); {args.n} sequences "
          f"x {args.length} nt = {subs:,} substitutions; torch threads {torch.get_num_threads()}; load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print(f"gengen ism (the CNN's own substitutions): {wall:.2f} s wall, {cpu:.2f} s CPU "
          f"({subs / wall:,.0f} substitutions/s); target < 30 s")
    print(f"tangermeme.saturation_mutagenesis forward passes: {t_wall:.2f} s wall, {t_cpu:.2f} s CPU; gengen / "
          f"tangermeme: {wall / t_wall:.2f}x wall, {cpu / t_cpu:.2f}x CPU; max |delta difference| "
          f"{float(np.abs(tdelta - delta).max()):.2e}")
    print(f"reference per-mutation loop (1 torch thread): {ref_wall:.1f} s wall, {ref_cpu:.1f} s CPU (measured on "
          f"{args.ref_n} sequences, extrapolated)")
    print(f"speed-up: {ref_wall / wall:.1f}x wall, {ref_cpu / cpu:.1f}x CPU; max |delta difference| on the "
          f"reference's sequences: {err:.2e}")


if __name__ == "__main__":
    main()
