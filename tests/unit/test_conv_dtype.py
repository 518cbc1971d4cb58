"""network.conv_dtype: the Nature CNN's convolutions in bfloat16, everything else float32."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rltrain.config.schema import NetworkConfig
from rltrain.errors import UserError
from rltrain.networks.builders import NatureCNN, QNetwork, build_actor_critic

FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def _pair() -> tuple[QNetwork, QNetwork]:
    torch.manual_seed(0)
    full = QNetwork(FRAMES, 4, NetworkConfig())
    reduced = QNetwork(FRAMES, 4, NetworkConfig(conv_dtype="bfloat16"))
    reduced.load_state_dict(full.state_dict())
    return full, reduced


def test_bfloat16_convolutions_stay_close_to_float32_and_keep_float32_weights() -> None:
    full, reduced = _pair()
    trunk = reduced.trunk
    assert isinstance(trunk, NatureCNN) and trunk.conv_dtype == torch.bfloat16
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    q_full, q_reduced = full(obs), reduced(obs)
    assert q_reduced.dtype == torch.float32
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9 per operation): the Q-values
    # agree to about 1% of their scale, not bit for bit
    scale = float(q_full.detach().abs().max())
    error = float((q_full - q_reduced).detach().abs().max())
    assert 0.0 < error < 0.02 * scale
    q_full.sum().backward()
    q_reduced.sum().backward()
    for (name, p_full), p_reduced in zip(
        full.named_parameters(), reduced.parameters(), strict=True
    ):
        assert p_reduced.dtype == torch.float32 and p_reduced.grad is not None
        assert p_reduced.grad.dtype == torch.float32
        relative = float((p_full.grad - p_reduced.grad).norm() / (p_full.grad.norm() + 1e-12))
        assert relative < 0.1, name


def test_float32_is_the_default_and_exact() -> None:
    torch.manual_seed(0)
    net = QNetwork(FRAMES, 4, NetworkConfig())
    assert net.trunk.conv_dtype == torch.float32  # type: ignore[union-attr]
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    manual = obs.float() / 255.0
    for layer in net.trunk.convs:  # type: ignore[union-attr]
        manual = layer(manual)
    manual = torch.relu(net.trunk.fc(manual.flatten(1)))  # type: ignore[union-attr]
    torch.testing.assert_close(net.trunk(obs), manual, rtol=1e-5, atol=1e-6)


def test_conv_dtype_is_checked() -> None:
    with pytest.raises(UserError, match=r"network\.conv_dtype=float16 is not known"):
        QNetwork(FRAMES, 4, NetworkConfig(conv_dtype="float16"))
    # an MLP has no convolutions: the option would silently do nothing
    box = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    with pytest.raises(UserError, match=r"network\.conv_dtype=bfloat16 applies to the nature_cnn"):
        build_actor_critic(box, gym.spaces.Discrete(2), NetworkConfig(conv_dtype="bfloat16"))
