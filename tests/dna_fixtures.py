"""Small synthetic DNA fixtures shared by the DNA tests (no shared data needed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

PLANT = "GGGCGCCA"  # a planted 8-mer


def random_seqs(n: int, length: int, seed: int = 0, plant: str | None = None) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = "".join(rng.choice(list("ACGT"), size=length))
        if plant:
            p = int(rng.integers(0, length - len(plant) + 1))
            s = s[:p] + plant + s[p + len(plant) :]
        out.append(s)
    return out


def write_fa(path: Path, seqs: list[str], prefix: str = "s", gz: bool = False) -> Path:
    text = "".join(f">{prefix}{i}\n{s}\n" for i, s in enumerate(seqs))
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


# CTCF-like toy matrices in the layouts JASPAR serves them (counts, A C G T rows).
JASPAR_TEXT = """>MA9000.1 TOY
A  [    10      0      0     30      5 ]
C  [     5     40      0      0      5 ]
G  [    20      0     40      5     25 ]
T  [     5      0      0      5      5 ]
"""

MEME_TEXT = """MEME version 4

ALPHABET= ACGT

strands: + -

Background letter frequencies
A 0.25 C 0.25 G 0.25 T 0.25

MOTIF MA9000.1 TOY
letter-probability matrix: alength= 4 w= 5 nsites= 40 E= 0
  0.250000  0.125000  0.500000  0.125000
  0.000000  1.000000  0.000000  0.000000
  0.000000  0.000000  1.000000  0.000000
  0.750000  0.000000  0.125000  0.125000
  0.125000  0.125000  0.625000  0.125000
URL http://jaspar.genereg.net/matrix/MA9000.1
"""

TRANSFAC_TEXT = """AC  MA9000.1
XX
ID  TOY
XX
DE  MA9000.1 TOY ; From JASPAR
PO      A      C      G      T
01   10.0    5.0   20.0    5.0
02    0.0   40.0    0.0    0.0
03    0.0    0.0   40.0    0.0
04   30.0    0.0    5.0    5.0
05    5.0    5.0   25.0    5.0
XX
CC  tax_group:vertebrates
XX
//
"""

PFM_TEXT = """>MA9000.1 TOY
10 0 0 30 5
5 40 0 0 5
20 0 40 5 25
5 0 0 5 5
"""

PFM_T_TEXT = """10 5 20 5
0 40 0 0
0 0 40 0
30 0 5 5
5 5 25 5
"""

SITES_TEXT = "GCGAG\nGCGAG\nACGAG\nGCGTG\nTCGAC\nCCGAG\nGCGAA\nACGAG\n"

TOY_COUNTS = np.array([[10, 0, 0, 30, 5], [5, 40, 0, 0, 5], [20, 0, 40, 5, 25], [5, 0, 0, 5, 5]], dtype=float)


