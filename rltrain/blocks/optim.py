"""Adam and RMSprop over one flat parameter buffer.

Why not torch.optim: constructing any torch.optim optimizer imports torch._dynamo through its
compile-disabling decorator, seconds of start-up, longer than a CartPole run takes to learn. And on
small networks the cost of an update is the number of tensor operations, not arithmetic: here every
parameter and every gradient is a view into one flat tensor, so zeroing, global-norm clipping and
the Adam/RMSprop arithmetic are a handful of operations on two flat tensors, whatever the number of
layers. The arithmetic is torch.optim's (the unit tests compare step by step);
`param_groups[0]["lr"]` works for schedules, and `share_memory()` shares the statistics across
processes (A3C's shared optimizer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from rltrain.errors import UserError


def sqrt_into(source: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out <- sqrt(source), elementwise; returns out.

    On the CPU through NumPy on the same memory: torch's CPU sqrt is slow on zeros, several times
    NumPy's (docs/benchmarks.md), and the second moment of a Nature CNN holds many exact zeros (the
    weights of units that never fired). Both round correctly (IEEE sqrt), so the result is the same.
    Other devices and dtypes NumPy lacks (bfloat16) stay with torch.
    """
    if source.device.type == "cpu" and source.dtype in (torch.float32, torch.float64):
        np.sqrt(source.numpy(), out=out.numpy())
        return out
    return torch.sqrt(source, out=out)


class FlatOptimizer:
    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        unique: dict[int, torch.Tensor] = {}
        for p in params:
            if p.requires_grad:
                unique.setdefault(id(p), p)  # shared trunks list a parameter twice
        self.params = list(unique.values())
        if not self.params:
            raise ValueError("optimizer got no trainable parameters")
        if not 0.0 < lr < 1e32:
            # Past ~1e37 the step size overflows float32 inside the update; nothing sane is near.
            raise UserError(f"learning rate {lr} is out of range; use a positive value below 1e32")
        self.param_groups: list[dict[str, Any]] = [{"lr": lr}]
        self.steps = torch.zeros((), dtype=torch.int64)
        first = self.params[0]
        total = sum(p.numel() for p in self.params)
        self.flat = torch.empty(total, dtype=first.dtype, device=first.device)
        self.flat_grad = torch.zeros_like(self.flat)
        # Scratch for the step's denominator, written in place: fresh tensors per step made a
        # Nature CNN's Adam step several times slower (two short-lived buffers of 1.7M floats go
        # back to the kernel and fault in again each step; docs/benchmarks.md).
        self.scratch = torch.empty_like(self.flat)
        offset = 0
        with torch.no_grad():
            for p in self.params:
                n = p.numel()
                self.flat[offset : offset + n].copy_(p.flatten())
                # Rebind the parameter's storage to the flat buffer; autograd then accumulates
                # into the preset .grad views in place.
                p.data = self.flat[offset : offset + n].view_as(p)
                p.grad = self.flat_grad[offset : offset + n].view_as(p)
                offset += n

    def use_worker_buffers(self, local: FlatOptimizer) -> None:
        """A3C: step the shared weights with this worker's own gradient and scratch.

        Pickled to a 'spawn' worker, every tensor of a shared optimizer lands in shared memory;
        a shared gradient or scratch would be written by all workers at once.
        """
        self.flat_grad, self.scratch = local.flat_grad, local.scratch

    @property
    def lr(self) -> float:
        return float(self.param_groups[0]["lr"])

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero the flat gradient (never None: the parameters' .grad are views into it)."""
        self.flat_grad.zero_()

    def grad_norm(self) -> torch.Tensor:
        """||g||_2, the global L2 norm of the gradient of every parameter (one flat tensor)."""
        return torch.linalg.vector_norm(self.flat_grad)

    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Scale the gradient to global L2 norm <= max_norm; returns the norm before clipping.

        g <- g * min(1, max_norm / (||g|| + 1e-6)), as torch.nn.utils.clip_grad_norm_.
        """
        norm = self.grad_norm()
        self.flat_grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0))
        return norm

    def clip_grad_norm_rows(self, max_norm: float, rows: int) -> torch.Tensor:
        """`clip_grad_norm` for each row of the flat gradient seen as [rows, n]: a population's
        seeds (one row each), every seed clipped by its own norm. Returns the [rows] norms.

        g_k <- g_k * min(1, max_norm / (||g_k|| + 1e-6)).
        """
        grad = self.flat_grad.view(rows, -1)
        norm = torch.linalg.vector_norm(grad, dim=1)
        grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0).unsqueeze(1))
        return norm

    def _buffers(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def row_state_dict(self, row: int, rows: int) -> dict[str, Any]:
        """`state_dict` of one row of [rows, n] parameters (a population's seed `row`): the state
        an optimizer over that row alone would hold, in its format."""
        return {
            "lr": self.lr,
            "steps": self.steps.clone(),
            **{name: t.view(rows, -1)[row].clone() for name, t in self._buffers().items()},
        }

    def load_row_state_dict(self, state: dict[str, Any], row: int, rows: int) -> None:
        """Loads a `row_state_dict` (or a one-run optimizer's `state_dict`) into row `row`."""
        self.param_groups[0]["lr"] = float(state["lr"])
        self.steps.copy_(state["steps"])
        for name, tensor in self._buffers().items():
            tensor.view(rows, -1)[row].copy_(state[name])

    def state_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "steps": self.steps.clone(),
            **{name: tensor.clone() for name, tensor in self._buffers().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.param_groups[0]["lr"] = float(state["lr"])
        self.steps.copy_(state["steps"])
        for name, tensor in self._buffers().items():
            tensor.copy_(state[name])

    def share_memory(self) -> None:
        """Statistics in shared memory, so every A3C worker updates the same moments."""
        self.steps.share_memory_()
        for tensor in self._buffers().values():
            tensor.share_memory_()


class Adam(FlatOptimizer):
    """Adam (Kingma & Ba 2015), as torch.optim.Adam without weight decay / amsgrad:

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    computed as p <- p - (lr c / (1 - b1^t)) * m / (sqrt(v) + eps c) with c = sqrt(1 - b2^t),
    the same quantity with one pass less over the 1.7M-long buffers of a Nature CNN.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)

    def _buffers(self) -> dict[str, torch.Tensor]:
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        t = int(self.steps)
        g = self.flat_grad
        self.exp_avg.lerp_(g, 1.0 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
        correction = math.sqrt(1.0 - self.beta2**t)
        denom = sqrt_into(self.exp_avg_sq, self.scratch).add_(self.eps * correction)
        self.flat.addcdiv_(
            self.exp_avg, denom, value=-self.lr * correction / (1.0 - self.beta1**t)
        )


class RMSprop(FlatOptimizer):
    """RMSprop as torch.optim.RMSprop (no momentum, not centered):

    v <- alpha v + (1 - alpha) g^2;  p <- p - lr * g / (sqrt(v) + eps)
    """

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float, alpha: float = 0.99, eps: float = 1e-8
    ) -> None:
        super().__init__(params, lr)
        self.alpha, self.eps = alpha, eps
        self.square_avg = torch.zeros_like(self.flat)

    def _buffers(self) -> dict[str, torch.Tensor]:
        return {"square_avg": self.square_avg}

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        g = self.flat_grad
        self.square_avg.mul_(self.alpha).addcmul_(g, g, value=1.0 - self.alpha)
        denom = sqrt_into(self.square_avg, self.scratch).add_(self.eps)
        self.flat.addcdiv_(g, denom, value=-self.lr)
