"""Adam and RMSprop written with torch's foreach kernels.

Why not torch.optim: constructing any torch.optim optimizer imports torch._dynamo (about 2.4 s
on this machine) through its compile-disabling decorator, which is longer than a CartPole run
takes to learn. These two do the same arithmetic as torch.optim.Adam / RMSprop (the unit tests
compare them step by step), keep `param_groups[0]["lr"]` for schedules, and can share their state
across processes for A3C (`share_memory()`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


class _ForeachOptimizer:
    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.param_groups: list[dict[str, Any]] = [{"lr": lr}]
        self.steps = torch.zeros((), dtype=torch.int64)

    @property
    def lr(self) -> float:
        return float(self.param_groups[0]["lr"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _grads(self) -> tuple[list[torch.Tensor], list[int]]:
        """Gradients of the parameters that have one (and their positions)."""
        index = [i for i, p in enumerate(self.params) if p.grad is not None]
        return [self.params[i].grad for i in index], index  # type: ignore[misc]

    def _buffers(self) -> dict[str, list[torch.Tensor]]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "steps": self.steps.clone(), **{
            name: [t.clone() for t in tensors] for name, tensors in self._buffers().items()
        }}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.param_groups[0]["lr"] = float(state["lr"])
        self.steps.copy_(state["steps"])
        for name, tensors in self._buffers().items():
            for mine, saved in zip(tensors, state[name], strict=True):
                mine.copy_(saved)

    def share_memory(self) -> None:
        """Put the optimizer statistics in shared memory (A3C's shared optimizer)."""
        self.steps.share_memory_()
        for tensors in self._buffers().values():
            for t in tensors:
                t.share_memory_()


class Adam(_ForeachOptimizer):
    """Adam (Kingma & Ba 2015), as torch.optim.Adam without weight decay / amsgrad:

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
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
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def _buffers(self) -> dict[str, list[torch.Tensor]]:
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    @torch.no_grad()
    def step(self) -> None:
        grads, index = self._grads()
        if not grads:
            return
        self.steps += 1
        t = int(self.steps)
        params = [self.params[i] for i in index]
        m = [self.exp_avg[i] for i in index]
        v = [self.exp_avg_sq[i] for i in index]
        torch._foreach_lerp_(m, grads, 1.0 - self.beta1)
        torch._foreach_mul_(v, self.beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - self.beta2)
        step_size = self.lr / (1.0 - self.beta1**t)
        bias2_sqrt = math.sqrt(1.0 - self.beta2**t)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, m, denom, value=-step_size)


class RMSprop(_ForeachOptimizer):
    """RMSprop as torch.optim.RMSprop (no momentum, not centered):

    v <- alpha v + (1 - alpha) g^2;  p <- p - lr * g / (sqrt(v) + eps)
    """

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float, alpha: float = 0.99, eps: float = 1e-8
    ) -> None:
        super().__init__(params, lr)
        self.alpha, self.eps = alpha, eps
        self.square_avg = [torch.zeros_like(p) for p in self.params]

    def _buffers(self) -> dict[str, list[torch.Tensor]]:
        return {"square_avg": self.square_avg}

    @torch.no_grad()
    def step(self) -> None:
        grads, index = self._grads()
        if not grads:
            return
        self.steps += 1
        params = [self.params[i] for i in index]
        v = [self.square_avg[i] for i in index]
        torch._foreach_mul_(v, self.alpha)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - self.alpha)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, grads, denom, value=-self.lr)
