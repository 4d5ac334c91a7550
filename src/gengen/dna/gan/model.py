"""The Killoran et al. (2017) WGAN-GP networks over one-hot DNA ``(N, 4, L)``, after Gulrajani et al. (2017).

Generator: z (100) -> dense -> (channels x L) -> 5 residual blocks (ReLU, conv width 5, ReLU, conv
width 5, skip scaled by 0.3) -> 1x1 conv to 4 channels -> softmax over A, C, G, T, giving ``(N, 4, L)``.
The critic mirrors it: 1x1 conv in, 5 residual blocks, dense to one number.

The penalty's input gradient is written out (:meth:`Critic.input_gradient`) instead of autograd's
double backward, and the residual convolutions use a faster CPU backward (:class:`_SameConv1d`);
both give the same numbers (tested against autograd). Drawing sequences from a generator
(:func:`sample_codes`) lives here too, for the training loop's held-out check (:mod:`gengen.dna.gan.train`)
and the user-facing model (:mod:`gengen.dna.gan.core`) alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from gengen.errors import GengenError
from gengen.runtime import check_memory

if TYPE_CHECKING:
    import numpy as np


class _SameConv1d(torch.autograd.Function):
    """``conv1d(x, w, b, padding=k // 2)`` (odd ``k``) with a cheaper backward on the CPU.

    The input gradient of a stride-1 'same' convolution is the forward convolution of the output
    gradient with the transposed, flipped kernel: oneDNN's forward kernel runs that ~1.5x faster than
    its backward-data kernel (measured: 4.7 vs 7.1 ms at batch 64, 100 channels, L = 50). The weight
    gradient as im2col + one GEMM is ~1.4x faster than its backward-weights kernel. The backward is
    built from differentiable operations, so double backward still works.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.nn.functional.conv1d(x, weight, bias, padding=weight.shape[2] // 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        pad = weight.shape[2] // 2
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = same_conv1d(grad, weight.transpose(0, 1).flip(2))
        if ctx.needs_input_grad[1]:
            # im2col + one GEMM: ~1.4x faster than oneDNN's backward-weights kernel at these sizes
            out_ch, in_ch, width = weight.shape
            cols = torch.nn.functional.pad(x, (pad, pad)).unfold(2, width, 1)  # (N, C_in, L, k)
            cols = cols.permute(1, 3, 0, 2).reshape(in_ch * width, -1)
            grad_w = (grad.transpose(0, 1).reshape(out_ch, -1) @ cols.T).view(out_ch, in_ch, width)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2))
        return grad_x, grad_w, grad_b


def same_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Stride-1 convolution with 'same' padding for an odd kernel width.

    On the CPU through :class:`_SameConv1d` (its faster backward was measured there); elsewhere the
    native convolution, since CPU timings say nothing about cuDNN's backward kernels.
    """
    if weight.shape[2] % 2 == 0:
        raise GengenError(f"'same' convolution needs an odd kernel width, got {weight.shape[2]}.")
    if x.device.type == "cpu" and torch.is_grad_enabled():
        return _SameConv1d.apply(x, weight, bias)
    return torch.nn.functional.conv1d(x, weight, bias, padding=weight.shape[2] // 2)


class ResBlock(nn.Module):
    """x + 0.3 * conv(relu(conv(relu(x)))), both convs width 5 with 'same' padding."""

    def __init__(self, channels: int, width: int = 5, scale: float = 0.3):
        super().__init__()
        if width % 2 == 0:
            raise GengenError(f"residual convolution width must be odd for 'same' padding, got {width}.")
        self.scale = scale
        self.conv1 = nn.Conv1d(channels, channels, width, padding=width // 2)
        self.conv2 = nn.Conv1d(channels, channels, width, padding=width // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = same_conv1d(torch.relu(x), self.conv1.weight, self.conv1.bias)
        return x + self.scale * same_conv1d(torch.relu(h), self.conv2.weight, self.conv2.bias)


class Generator(nn.Module):
    """z ``(N, latent)`` -> soft one-hot DNA ``(N, 4, L)`` (softmax over bases at each position)."""

    def __init__(self, length: int = 50, latent: int = 100, channels: int = 100, *, blocks: int = 5):
        super().__init__()
        self.length, self.latent, self.channels = length, latent, channels
        self.dense = nn.Linear(latent, channels * length)
        self.blocks = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
        self.out = nn.Conv1d(channels, 4, 1)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(z).view(-1, self.channels, self.length)
        return self.out(self.blocks(h))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(z), dim=1)


class Critic(nn.Module):
    """One-hot (or soft) DNA ``(N, 4, L)`` -> Wasserstein critic value ``(N,)``."""

    def __init__(self, length: int = 50, channels: int = 100, blocks: int = 5):
        super().__init__()
        self.inp = nn.Conv1d(4, channels, 1)
        self.blocks = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
        self.dense = nn.Linear(channels * length, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.blocks(self.inp(x)).flatten(1)).squeeze(1)

    def input_gradient(self, x: torch.Tensor) -> torch.Tensor:
        """``d sum(D(x)) / dx``, written out as a function of the weights, for the gradient penalty.

        The critic is piecewise linear (ReLU, convolutions, dense), so its input gradient depends on
        ``x`` only through the ReLU on/off masks, whose own derivative is zero. Autograd's double
        backward nevertheless pushes those zeros back through the whole forward graph of ``x``;
        computing the masks without a graph and the gradient as explicit transposed convolutions gives
        the same penalty and the same parameter gradients (tested) with about a quarter less work.
        """
        with torch.no_grad():
            masks = []
            h = self.inp(x)
            for block in self.blocks:
                on1 = h > 0
                u = block.conv1(h * on1)
                on2 = u > 0
                h = h + block.scale * block.conv2(u * on2)
                masks.append((on1, on2))
        # the gradient at the last residual output is the dense weight, the same for every sample
        grad = self.dense.weight.view(1, self.inp.out_channels, -1)
        for block, (on1, on2) in zip(reversed(self.blocks), reversed(masks)):
            # transposed 'same' convolution == convolution with the transposed, flipped kernel
            t = same_conv1d(grad, block.conv2.weight.transpose(0, 1).flip(2)) * on2
            t = same_conv1d(t, block.conv1.weight.transpose(0, 1).flip(2)) * on1
            grad = grad + block.scale * t
        return torch.einsum("bcl,ck->bkl", grad.expand(x.shape[0], -1, -1), self.inp.weight[:, :, 0])


# --------------------------------------------------------------------------------------------------
# Drawing sequences


def latent_draws(n: int, latent: int, seed: int = 0, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(n, latent)`` draws of z ~ N(0, I) from a CPU generator seeded with ``seed``, moved to ``device``:
    the same draws on every device."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(n, latent, generator=g).to(device)


@torch.no_grad()
def soft_sequences(generator: Generator, z: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """G(z), ``(n, 4, L)`` base probabilities, in batches, the generator in evaluation mode."""
    generator.eval()
    return torch.cat([generator(z[i : i + batch_size]) for i in range(0, len(z), batch_size)])


def sample_codes(generator: Generator, n: int, seed: int = 0) -> np.ndarray:
    """``(n, L)`` uint8 codes 0-3 (A, C, G, T): the argmax base of each position of G(z), z drawn by
    :func:`latent_draws` with ``seed``; refused in one line when it would not fit in memory."""
    device = next(generator.parameters()).device
    latent, length, channels = generator.latent, generator.length, generator.channels
    # z, the soft (n, 4, L) output and one batch's activations
    check_memory(4.0 * n * (latent + 2 * 4 * length) + 4.0 * 2048 * channels * length * 4,
                 f"generating {n} sequences", device)
    soft = soft_sequences(generator, latent_draws(n, latent, seed, device=device))
    return soft.argmax(dim=1).to(torch.uint8).cpu().numpy()
