"""GGAN networks: an MLP generator landmarks -> targets and a conditional discriminator on (x, y).

The generator is a D-GEX-class MLP (3 hidden layers, tanh by default, dropout after each hidden layer);
its dropout is the GAN's noise source, which is what the consistency loss compares between two draws.
The discriminator scores a (landmarks, targets) pair, so it judges whether ŷ fits *this* x.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


def _activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        from gengen.errors import GengenError

        raise GengenError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}.") from None


class Generator(nn.Module):
    """x (n, n_landmarks) -> ŷ (n, n_targets), both z-scored.

    ``hidden`` gives the widths (default 3 layers); ``dropout`` after every hidden layer; optional
    Gaussian ``input_noise`` (std, training only) as a second noise source. ``linear_skip`` adds a
    linear x -> y path beside the MLP (off by default), so with few profiles the network starts from
    the regularised linear map that is hard to beat there and the MLP only learns what is left.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        hidden: tuple[int, ...] = (3000, 3000, 3000),
        *, dropout: float = 0.1,
        activation: str = "tanh",
        input_noise: float = 0.0,
        linear_skip: bool = False,
    ):
        super().__init__()
        self.n_in, self.n_out, self.hidden = n_in, n_out, tuple(int(h) for h in hidden)
        self.dropout, self.activation, self.input_noise = float(dropout), activation, float(input_noise)
        layers: list[nn.Module] = []
        width = n_in
        for h in self.hidden:
            layers += [nn.Linear(width, h), _activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)
        self.linear_skip = bool(linear_skip)
        self.skip = nn.Linear(n_in, n_out, bias=False) if linear_skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.input_noise > 0:
            x = x + self.input_noise * torch.randn_like(x)
        return self.net(x) if self.skip is None else self.net(x) + self.skip(x)

    def arch(self) -> dict:
        return {
            "n_in": self.n_in,
            "n_out": self.n_out,
            "hidden": list(self.hidden),
            "dropout": self.dropout,
            "activation": self.activation,
            "input_noise": self.input_noise,
            "linear_skip": self.linear_skip,
        }


class Discriminator(nn.Module):
    """Logit that (x, y) is a real pair. The first layer is split into x and y parts so the x part,
    identical for the real and the generated pair, is computed once per step."""

    def __init__(self, n_x: int, n_y: int, hidden: tuple[int, ...] = (1024, 512), *, dropout: float = 0.0):
        super().__init__()
        self.fx = nn.Linear(n_x, hidden[0])
        self.fy = nn.Linear(n_y, hidden[0], bias=False)
        layers: list[nn.Module] = [nn.LeakyReLU(0.2)]
        width = hidden[0]
        for h in hidden[1:]:
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)

    def real_and_fake(self, x: torch.Tensor, y_real: torch.Tensor, y_fake: torch.Tensor) -> torch.Tensor:
        """Logits ``(2 n,)`` of the real pairs (x, y_real) then the generated pairs (x, y_fake): the
        x part of the first layer is computed once for both, and both go through the head in one call."""
        hx = self.fx(x)
        return self.head(torch.cat([hx, hx]) + self.fy(torch.cat([y_real, y_fake]))).squeeze(-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        """``hx`` = ``self.fx(x)`` when already computed for this batch."""
        return self.head((self.fx(x) if hx is None else hx) + self.fy(y)).squeeze(-1)
