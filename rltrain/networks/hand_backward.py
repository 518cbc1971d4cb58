"""One call for an actor-critic's gradients, with a hand-written backward pass where it pays.

    path = gradient_path(net, optimizer, hand=True)
    out = path.evaluate(obs, actions)      # log pi(a|s), H(pi(.|s)), V(s) of a batch
    loss = algorithm_loss(out, ..., closed_form=path.hand)   # a `HeadLoss`, written once
    path.backward(out, loss)               # dL/dtheta into every parameter's .grad

The loss is a function of the three per-row outputs only. It returns its value or, when asked
(`closed_form`), its gradient with respect to those outputs (`HeadGrad`: dL/d log pi, dL/dH,
dL/dV per row), written as pure functions beside the loss with the formula in the docstring.
`AutogradPath` is `net.evaluate` then `loss.value.backward()`. `HandPath` (a categorical policy on
two separate MLP towers, `supports_hand_pass`) runs the towers without autograd and carries the
loss's `HeadGrad` back through them by hand. On small networks an update costs its number of
tensor operations, not their arithmetic, and autograd's graph bookkeeping is then most of the
cost; the hand pass skips it and writes the weight gradients straight into the flat optimizer's
`.grad` views (faster on CPU; see docs/benchmarks.md). tests/unit/test_hand_backward.py ties both
paths to autograd, gradient by gradient and over whole PPO and A2C updates.

The layers are (weight, bias) pairs as in nn.Linear, y = x W^T + b, with the activation after
every layer but the last. A population (`parallel_seeds`, rltrain/algos/population.py) gives
stacks instead: weight [K, out, in], bias [K, out], inputs [K, batch, in], one agent per seed;
the same pass then runs as batched matmuls (each seed's rows meet only its own weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from rltrain.blocks.optim import FlatOptimizer
from rltrain.networks import distributions as D
from rltrain.networks.builders import MLP, ActorCritic

Layer = tuple[torch.Tensor, torch.Tensor]  # (weight [out, in], bias [out]), or [K, ...] stacks
Towers = tuple[list[Layer], list[Layer], str]  # (actor layers, critic layers, activation)

ACTIVATIONS = ("tanh", "relu", "elu")


def _on_numpy(tensor: torch.Tensor) -> bool:
    return tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64)


def _activate_(x: torch.Tensor, activation: str) -> torch.Tensor:
    """x <- act(x) in place (tanh through NumPy on the CPU: torch's CPU tanh is slower)."""
    if activation == "tanh":
        if _on_numpy(x):
            np.tanh(x.numpy(), out=x.numpy())
            return x
        return x.tanh_()
    if activation == "relu":
        return x.relu_()
    return torch.nn.functional.elu_(x)


def activation_backward_(grad: torch.Tensor, output: torch.Tensor, activation: str) -> torch.Tensor:
    """grad <- dL/dz in place, from grad = dL/dy and the activation's output y = act(z):

    tanh: dy/dz = 1 - y^2;  relu: 1[y > 0];  elu (alpha 1): 1 where y > 0, else y + 1.
    """
    if activation == "tanh":
        return grad.mul_(1.0 - output * output)
    if activation == "relu":
        return grad.mul_(output > 0)
    return grad.mul_(output.clamp(max=0.0).add_(1.0))


def _weight_grad_into(grad: torch.Tensor, inputs: torch.Tensor, out: torch.Tensor) -> None:
    """out <- grad^T inputs, the weight gradient [out, in] (out may be a view into a flat buffer);
    per seed for stacks: out[k] <- grad[k]^T inputs[k].

    Computed as (inputs^T grad)^T, which torch's CPU matmul does faster for thin inputs, and not
    through NumPy, whose OpenBLAS threads would fight torch's for the cores.
    """
    if out.dim() == 3:
        out.copy_(torch.bmm(inputs.transpose(1, 2), grad).transpose(1, 2))
    else:
        out.copy_(torch.mm(inputs.t(), grad).t())


def _linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """h W^T + b, or per seed h[k] W[k]^T + b[k] for stacks."""
    if weight.dim() == 3:
        return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
    return torch.addmm(bias, h, weight.t())


def mlp_forward(
    x: torch.Tensor, layers: Sequence[Layer], activation: str
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(the input of every layer, the output) of h_{i+1} = act(h_i W_i^T + b_i), last layer linear.

    The inputs are what `mlp_backward` needs; x is flattened to [batch, features] first
    ([K, batch, features] for stacks).
    """
    stacked = layers[0][0].dim() == 3
    h = x.flatten(2) if stacked else x.flatten(1)
    inputs = []
    last = len(layers) - 1
    for i, (weight, bias) in enumerate(layers):
        inputs.append(h)
        h = _linear(h, weight, bias)
        if i < last:
            _activate_(h, activation)
    return inputs, h


def mlp_backward(
    grad_output: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    layers: Sequence[Layer],
    activation: str,
) -> None:
    """Write dL/dW and dL/db of every layer into its `.grad` (overwritten, not accumulated).

    From g = dL/dy of the last layer's output, layer by layer backwards:
        dL/dW_i = g^T h_i,  dL/db_i = sum over the batch of g,
        g <- (g W_i) * act'(h_i)   (h_i is layer i-1's activation output)
    Every parameter must already have a `.grad` tensor of its shape.
    """
    g = grad_output
    for i in range(len(layers) - 1, -1, -1):
        weight, bias = layers[i]
        assert weight.grad is not None and bias.grad is not None
        _weight_grad_into(g, inputs[i], weight.grad)
        torch.sum(g, -2, out=bias.grad)  # over the batch (of each seed, for stacks)
        if i > 0:
            g = activation_backward_(g @ weight, inputs[i], activation)


def categorical_logits_grad(
    log_softmax: torch.Tensor,
    actions: torch.Tensor,
    grad_log_prob: torch.Tensor,
    grad_entropy: torch.Tensor | float | None,
) -> torch.Tensor:
    """dL/dz for logits z, given dL/d log pi(a|s) and dL/dH per row or one number for all rows
    (None or 0: H is not in the loss).

    From the log-softmax of z, with pi = exp(log_softmax) and H = -sum_j pi_j log pi_j:
        d log pi_a / dz_j = 1[j = a] - pi_j;   dH / dz_j = -pi_j (log pi_j + H)
    """
    probs = log_softmax.exp()
    grad = probs * -grad_log_prob.unsqueeze(-1)
    grad.scatter_add_(-1, actions.long().unsqueeze(-1), grad_log_prob.unsqueeze(-1))
    if isinstance(grad_entropy, torch.Tensor):
        grad_entropy = grad_entropy.unsqueeze(-1)
    if grad_entropy is not None and not (isinstance(grad_entropy, float) and grad_entropy == 0):
        entropy = D.entropy_from_log_softmax(log_softmax).unsqueeze(-1)
        grad -= grad_entropy * probs * (log_softmax + entropy)
    return grad


# --- the two paths ------------------------------------------------------------------------------
class Evaluation(NamedTuple):
    """log pi(a|s), H(pi(.|s)) and V(s) per row, and what the hand pass kept from its forward."""

    log_probs: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor
    inputs: tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor] | None = None


class HeadGrad(NamedTuple):
    """dL/d log pi(a|s), dL/dH and dL/dV per row of a batch (dL/dH may be one number for all)."""

    log_probs: torch.Tensor
    entropy: torch.Tensor | float
    values: torch.Tensor


class HeadLoss(NamedTuple):
    """A scalar loss of (log pi, H, V) per row for the autograd path to differentiate, or its
    `HeadGrad` in closed form for the hand pass (which never needs the loss's value: on small
    networks each skipped tensor operation is time saved)."""

    value: torch.Tensor | None
    grad: HeadGrad | None = None


class AutogradPath:
    """`net.evaluate`, then `loss.value.backward()` into freshly zeroed gradients."""

    hand = False

    def __init__(self, net: ActorCritic, optimizer: FlatOptimizer) -> None:
        self.net, self.optimizer = net, optimizer

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor) -> Evaluation:
        return Evaluation(*self.net.evaluate(obs, actions))

    def backward(self, out: Evaluation, loss: HeadLoss) -> None:
        assert loss.value is not None, "the autograd path differentiates the loss's value"
        self.optimizer.zero_grad()
        loss.value.backward()


def towers_of(net: ActorCritic) -> Towers | None:
    """(actor layers, critic layers, activation) when the hand pass covers `net`: a categorical
    policy on two separate MLP towers with a known activation; None for every other shape."""
    actor, critic = net.actor_trunk, net.critic_trunk
    if not (net.discrete and isinstance(actor, MLP) and isinstance(critic, MLP)):
        return None
    if critic is actor or actor.activation_name not in ACTIVATIONS:
        return None
    return (
        [*actor.layer_parameters(), (net.policy_head.weight, net.policy_head.bias)],
        [*critic.layer_parameters(), (net.value_head.weight, net.value_head.bias)],
        actor.activation_name,
    )


def supports_hand_pass(net: ActorCritic) -> bool:
    return towers_of(net) is not None


class HandPath:
    """The same numbers as `AutogradPath` (tests check), by the hand-written pass above."""

    hand = True

    def __init__(self, net: ActorCritic, optimizer: FlatOptimizer) -> None:
        towers = towers_of(net)
        assert towers is not None, "network shape not covered by the hand-written pass"
        # The Parameter objects themselves: .to(), load_state_dict, share_memory and the flat
        # optimizers all change their data in place, so these references stay the live weights.
        self.actor, self.critic, self.activation = towers
        self.optimizer = optimizer

    @classmethod
    def over(cls, towers: Towers) -> HandPath:
        """The pass over layers given as they are (a population's [K, out, in] stacks)."""
        path = cls.__new__(cls)
        path.actor, path.critic, path.activation = towers
        return path

    @torch.no_grad()
    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor) -> Evaluation:
        actor_inputs, logits = mlp_forward(obs, self.actor, self.activation)
        critic_inputs, values = mlp_forward(obs, self.critic, self.activation)
        log_softmax = torch.log_softmax(logits, dim=-1)  # kept: the logits' gradient needs it
        return Evaluation(
            D.log_prob_from_log_softmax(log_softmax, actions),
            D.entropy_from_log_softmax(log_softmax),
            values.squeeze(-1),
            (actor_inputs, critic_inputs, log_softmax, actions),
        )

    @torch.no_grad()
    def backward(self, out: Evaluation, loss: HeadLoss) -> None:
        assert out.inputs is not None and loss.grad is not None, "the loss's closed form is needed"
        actor_inputs, critic_inputs, log_softmax, actions = out.inputs
        grad = loss.grad
        grad_logits = categorical_logits_grad(log_softmax, actions, grad.log_probs, grad.entropy)
        mlp_backward(grad_logits, actor_inputs, self.actor, self.activation)
        mlp_backward(grad.values.unsqueeze(-1), critic_inputs, self.critic, self.activation)


GradientPath = AutogradPath | HandPath


def gradient_path(net: ActorCritic, optimizer: FlatOptimizer, hand: bool) -> GradientPath:
    """The hand pass when asked for and `net` is of a shape it covers, else autograd."""
    if hand and supports_hand_pass(net):
        return HandPath(net, optimizer)
    return AutogradPath(net, optimizer)
