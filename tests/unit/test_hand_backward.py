"""The hand-written backward pass (rltrain/networks/hand_backward.py) against autograd.

Every gradient is computed twice, once by autograd from the loss and once by hand, in float64
where the pieces allow it so that the comparison is tight; whole PPO and A2C updates then give
the same weights both ways in float32. The loss functions' own gradients are checked against
values worked out by hand.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from rltrain.algos.actor_critic import Rollout, actor_critic_loss, flat_batch
from rltrain.algos.base import Context
from rltrain.algos.ppo import (
    PPO,
    clipped_surrogate_grad,
    clipped_surrogate_loss,
    ppo_loss,
    value_loss,
    value_loss_grad,
)
from rltrain.blocks.optim import Adam
from rltrain.config.algos import PPOConfig
from rltrain.config.envs import GymEnvConfig
from rltrain.config.schema import Config, NetworkConfig
from rltrain.envs.factory import make_vec_env
from rltrain.logging import Recorder
from rltrain.networks import build_actor_critic
from rltrain.networks import distributions as D
from rltrain.networks.hand_backward import (
    AutogradPath,
    Evaluation,
    HandPath,
    HeadGrad,
    HeadLoss,
    categorical_logits_grad,
    gradient_path,
    mlp_backward,
    mlp_forward,
)

torch.set_num_threads(1)


def linear_layers(sizes: list[int], generator: torch.Generator) -> list[nn.Linear]:
    layers = []
    for n_in, n_out in itertools.pairwise(sizes):
        layer = nn.Linear(n_in, n_out).double()
        with torch.no_grad():
            layer.weight.copy_(torch.randn(n_out, n_in, generator=generator, dtype=torch.float64))
            layer.bias.copy_(torch.randn(n_out, generator=generator, dtype=torch.float64))
        layers.append(layer)
    return layers


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
@pytest.mark.parametrize("sizes", [[4, 16, 16, 3], [5, 8, 1], [6, 2]])
def test_mlp_backward_matches_autograd(activation: str, sizes: list[int]) -> None:
    generator = torch.Generator().manual_seed(len(sizes))
    layers = linear_layers(sizes, generator)
    x = torch.randn(32, sizes[0], generator=generator, dtype=torch.float64)
    upstream = torch.randn(32, sizes[-1], generator=generator, dtype=torch.float64)
    act = {"tanh": torch.tanh, "relu": torch.relu, "elu": nn.functional.elu}[activation]

    h = x
    for i, layer in enumerate(layers):
        h = layer(h)
        if i < len(layers) - 1:
            h = act(h)
    (h * upstream).sum().backward()
    expected = [(layer.weight.grad.clone(), layer.bias.grad.clone()) for layer in layers]  # type: ignore[union-attr]

    pairs = [(layer.weight, layer.bias) for layer in layers]
    for weight, bias in pairs:  # stale values that must be overwritten, not added to
        weight.grad = torch.full_like(weight, 7.0)
        bias.grad = torch.full_like(bias, 7.0)
    with torch.no_grad():
        inputs, output = mlp_forward(x, pairs, activation)
        mlp_backward(upstream, inputs, pairs, activation)
    torch.testing.assert_close(output, h.detach())
    for (weight, bias), (weight_grad, bias_grad) in zip(pairs, expected, strict=True):
        torch.testing.assert_close(weight.grad, weight_grad)
        torch.testing.assert_close(bias.grad, bias_grad)


def test_mlp_backward_hand_computed() -> None:
    """One tanh unit then one linear unit: y = v tanh(w x + b) + c, with dL/dy = 1."""
    w, b, v, c, x = 0.5, -0.25, 2.0, 0.1, 3.0
    h = np.tanh(w * x + b)  # tanh(1.25)
    layers = [
        (torch.tensor([[w]]), torch.tensor([b])),
        (torch.tensor([[v]]), torch.tensor([c])),
    ]
    for weight, bias in layers:
        weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    inputs, y = mlp_forward(torch.tensor([[x]]), layers, "tanh")
    mlp_backward(torch.ones(1, 1), inputs, layers, "tanh")
    assert y.item() == pytest.approx(v * h + c, rel=1e-6)
    # dy/dv = h, dy/dc = 1, dy/dw = v (1 - h^2) x, dy/db = v (1 - h^2)
    assert layers[1][0].grad.item() == pytest.approx(h, rel=1e-6)  # type: ignore[union-attr]
    assert layers[1][1].grad.item() == pytest.approx(1.0)  # type: ignore[union-attr]
    assert layers[0][0].grad.item() == pytest.approx(v * (1 - h * h) * x, rel=1e-6)  # type: ignore[union-attr]
    assert layers[0][1].grad.item() == pytest.approx(v * (1 - h * h), rel=1e-6)  # type: ignore[union-attr]


@pytest.mark.parametrize("grad_entropy", [None, 0.0, -0.3])
def test_categorical_logits_grad_matches_autograd(grad_entropy: float | None) -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    actions = torch.randint(0, 5, (64,), generator=generator)
    grad_log_prob = torch.randn(64, generator=generator, dtype=torch.float64)
    # a different dL/dH for every row, as autograd hands it over from an arbitrary loss
    grad_h = None
    if grad_entropy is not None:
        grad_h = grad_entropy * torch.rand(64, generator=generator, dtype=torch.float64)
    loss = (grad_log_prob * D.categorical_log_prob(logits, actions)).sum()
    if grad_h is not None:
        loss = loss + (grad_h * D.categorical_entropy(logits)).sum()
    loss.backward()
    with torch.no_grad():
        by_hand = categorical_logits_grad(
            torch.log_softmax(logits, -1), actions, grad_log_prob, grad_h
        )
    torch.testing.assert_close(by_hand, logits.grad)


def test_clipped_surrogate_gradient_by_hand_in_every_region() -> None:
    # ratios below, inside and above [0.8, 1.2], with positive and negative advantages
    ratio = torch.tensor([0.5, 0.9, 1.0, 1.1, 1.5] * 2, dtype=torch.float64)
    advantages = torch.tensor([1.0] * 5 + [-2.0] * 5, dtype=torch.float64)
    log_ratio = ratio.log().requires_grad_()
    clipped_surrogate_loss(log_ratio.exp(), advantages, 0.2).backward()
    # by hand, dL/d log pi = -r A / B where the unclipped term is the minimum, else 0 (B = 10)
    expected = [-0.5 / 10, -0.9 / 10, -1.0 / 10, -1.1 / 10, 0.0]
    expected += [0.0, 1.8 / 10, 2.0 / 10, 2.2 / 10, 3.0 / 10]
    expected_tensor = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(log_ratio.grad, expected_tensor)
    torch.testing.assert_close(clipped_surrogate_grad(ratio, advantages, 0.2), expected_tensor)


@pytest.mark.parametrize("clip", [None, 0.2])
def test_value_loss_gradient_by_hand(clip: float | None) -> None:
    old = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    values = torch.tensor([0.1, 0.5, -0.5, 1.5, 0.7, 1.3], dtype=torch.float64)
    returns = torch.tensor([1.0, -1.0, 0.2, 0.0, 2.0, 1.26], dtype=torch.float64)
    leaf = values.clone().requires_grad_()
    value_loss(leaf, returns, old, clip).backward()
    assert leaf.grad is not None
    # 2 (V - R) / B, and 0 where the clipped error is strictly larger: the last value moved 0.3
    # from its old estimate, past the clip; its clipped error 0.06^2 is the larger
    expected = 2 * (values - returns) / 6
    if clip is not None:
        expected[5] = 0.0
    torch.testing.assert_close(leaf.grad, expected)
    torch.testing.assert_close(value_loss_grad(values, returns, old, clip), expected)


def make_net(env_id: str = "CartPole-v1", **network: object) -> tuple[nn.Module, Adam]:
    torch.manual_seed(0)
    env = make_vec_env(GymEnvConfig(name="test", id=env_id), num_envs=1, seed=0, training=True)
    net = build_actor_critic(
        env.single_observation_space,
        env.single_action_space,
        NetworkConfig(**network),  # type: ignore[arg-type]
    )
    env.close()
    return net, Adam(net.parameters(), lr=1e-3)  # the flat .grad views the hand pass writes into


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
@pytest.mark.parametrize("per_row_entropy", [False, True])
def test_hand_path_carries_any_head_gradient_like_autograd(
    activation: str, per_row_entropy: bool
) -> None:
    """Arbitrary dL/d log pi, dL/dH (one number, or one per row) and dL/dV, through the towers."""
    net, optimizer = make_net(activation=activation)
    generator = torch.Generator().manual_seed(3)
    obs = torch.randn(48, 4, generator=generator)
    actions = torch.randint(0, 2, (48,), generator=generator)
    g_log_probs, g_values = (
        torch.randn(48, generator=generator),
        torch.randn(48, generator=generator),
    )
    g_entropy = torch.randn(48, generator=generator) if per_row_entropy else -0.3
    auto = AutogradPath(net, optimizer)
    out = auto.evaluate(obs, actions)
    surrogate = (
        g_log_probs * out.log_probs + g_entropy * out.entropy + g_values * out.values
    ).sum()
    auto.backward(out, HeadLoss(surrogate))
    expected = optimizer.flat_grad.clone()
    optimizer.flat_grad.fill_(3.0)  # overwritten, not added to
    hand = gradient_path(net, optimizer, hand=True)
    assert isinstance(hand, HandPath)
    hand_out = hand.evaluate(obs, actions)
    torch.testing.assert_close(hand_out.log_probs, out.log_probs.detach())
    torch.testing.assert_close(hand_out.values, out.values.detach())
    hand.backward(
        hand_out, HeadLoss(surrogate.detach(), HeadGrad(g_log_probs, g_entropy, g_values))
    )
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(optimizer.flat_grad, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("value_clip", [None, 0.2])
def test_ppo_loss_closed_form_is_autograds_gradient(value_clip: float | None) -> None:
    """ppo_loss's HeadGrad against autograd of its own value, over every clip region."""
    generator = torch.Generator().manual_seed(5)
    n = 64
    log_probs = -0.7 + 0.4 * torch.randn(n, generator=generator, dtype=torch.float64)
    entropy = torch.rand(n, generator=generator, dtype=torch.float64)
    values = torch.randn(n, generator=generator, dtype=torch.float64)
    old_log_probs = log_probs + 0.3 * torch.randn(n, generator=generator, dtype=torch.float64)
    advantages = torch.randn(n, generator=generator, dtype=torch.float64)
    returns = torch.randn(n, generator=generator, dtype=torch.float64)
    old_values = values + 0.4 * torch.randn(n, generator=generator, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (log_probs, entropy, values)]
    args = (old_log_probs, advantages, returns, old_values, 0.2, value_clip, 0.5, 0.01)
    auto = ppo_loss(Evaluation(*leaves), *args, closed_form=False)
    assert auto.loss.value is not None
    auto.loss.value.backward()
    closed = ppo_loss(Evaluation(log_probs, entropy, values), *args, closed_form=True)
    assert closed.loss.grad is not None and auto.loss.grad is None
    assert closed.loss.value is None  # the hand pass never needs the number
    for part in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"):
        torch.testing.assert_close(getattr(closed, part), getattr(auto, part))
    assert auto.loss.value is not None
    expected = auto.policy_loss + 0.5 * auto.value_loss - 0.01 * auto.entropy
    torch.testing.assert_close(auto.loss.value.detach(), expected)
    ratio = (log_probs - old_log_probs).exp()
    assert ((ratio - 1).abs() > 0.2).any() and ((ratio - 1).abs() < 0.2).any()  # both regions
    torch.testing.assert_close(closed.loss.grad.log_probs, leaves[0].grad)
    torch.testing.assert_close(torch.full_like(entropy, closed.loss.grad.entropy), leaves[1].grad)  # type: ignore[arg-type]
    torch.testing.assert_close(closed.loss.grad.values, leaves[2].grad)


def make_ppo(algo: PPOConfig, network: NetworkConfig, env_id: str = "CartPole-v1") -> PPO:
    torch.manual_seed(0)
    env_cfg = GymEnvConfig(name="test", id=env_id)
    ctx = Context(
        cfg=Config(algo=algo, env=env_cfg, network=network, seed=0, total_steps=10_000),
        env=make_vec_env(env_cfg, num_envs=4, seed=0, training=True),
        device=torch.device("cpu"), recorder=Recorder(None, enabled=False),
        rng=np.random.default_rng(0), run_dir=None,
    )  # fmt: skip
    return PPO(algo, ctx)


@pytest.mark.parametrize(
    ("options", "activation"),
    [
        ({}, "tanh"),
        ({"ent_coef": 0.05, "clip_value_loss": True, "batch_size": 16}, "tanh"),
        ({"ent_coef": 0.01, "batch_size": 32, "normalize_advantages": False}, "relu"),
    ],
)
def test_ppo_update_by_hand_gives_autograds_weights(options: dict, activation: str) -> None:
    network = NetworkConfig(activation=activation)
    base = {"n_steps": 16, "batch_size": 64, "n_epochs": 4, "lr": 3e-3, **options}
    by_hand = make_ppo(PPOConfig(**base), network)
    autograd = make_ppo(PPOConfig(**base, manual_backward=False), network)
    assert by_hand.gradients.hand and not autograd.gradients.hand
    torch.testing.assert_close(by_hand.optimizer.flat, autograd.optimizer.flat, rtol=0, atol=0)
    rollout = by_hand.collect()
    rollout = rollout._replace(log_probs=rollout.log_probs + 0.2 * torch.randn(16, 4))
    torch.manual_seed(1)  # the same minibatch order both ways
    by_hand.update(rollout)
    torch.manual_seed(1)
    autograd.update(rollout)
    moved = (by_hand.optimizer.flat - make_ppo(PPOConfig(**base), network).optimizer.flat).abs()
    assert moved.max() > 1e-3  # the update did something
    torch.testing.assert_close(
        by_hand.optimizer.flat, autograd.optimizer.flat, rtol=1e-4, atol=1e-6
    )


def test_networks_the_hand_pass_does_not_cover_use_autograd() -> None:
    shared = make_ppo(PPOConfig(n_steps=8, batch_size=32), NetworkConfig(shared_trunk=True))
    gaussian = make_ppo(PPOConfig(n_steps=8, batch_size=32), NetworkConfig(), "Pendulum-v1")
    assert not shared.gradients.hand and not gaussian.gradients.hand


@pytest.mark.parametrize("normalize", [False, True])
def test_a2c_gradients_by_hand_match_autograd(normalize: bool) -> None:
    net, optimizer = make_net()
    generator = torch.Generator().manual_seed(2)
    rollout = Rollout(
        torch.randn(5, 8, 4, generator=generator),
        torch.randint(0, 2, (5, 8), generator=generator),
        torch.zeros(5, 8),
        torch.zeros(5, 8),
        torch.randn(5, 8, generator=generator),
        torch.randn(5, 8, generator=generator),
    )
    obs, actions, advantages, returns = flat_batch(rollout, normalize)

    def gradients(path: AutogradPath | HandPath) -> tuple[torch.Tensor, ...]:
        out = path.evaluate(obs, actions)
        loss, stats = actor_critic_loss(out, advantages, returns, 0.5, 0.01, closed_form=path.hand)
        path.backward(out, loss)
        return stats

    expected = gradients(AutogradPath(net, optimizer))
    autograd = optimizer.flat_grad.clone()
    optimizer.flat_grad.fill_(3.0)  # overwritten, not added to
    stats = gradients(HandPath(net, optimizer))
    assert autograd.abs().max() > 1e-3
    torch.testing.assert_close(optimizer.flat_grad, autograd, rtol=1e-4, atol=1e-7)
    for got, want in zip(stats, expected, strict=True):
        torch.testing.assert_close(got, want)
