"""The deterministic policy of a trained network as one module: observations in, actions out.

What `rltrain export` traces (TorchScript) or converts (ONNX), and what the Python API's
`agent.predict(obs, deterministic=True)` must agree with: each module here computes exactly the
action the algorithm's own `act(obs, deterministic=True)` hands to the env, from the same input
tensor (`rltrain.algos.base.obs_to_tensor`: float32 for Box observations, uint8 frames for images,
int64 state indices for Discrete observations).

- `DeterministicActorCritic`: the mode of pi(.|s) (argmax of the logits, or the Gaussian mean,
  tanh-squashed into the box when the policy is), clipped to the action box as the env gets it;
  with the value head V(s) as a second output where the algorithm trains one.
- `GreedyQ`: argmax_a Q(s, a), with Q(s, .) as a second output.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from torch import nn

from rltrain.networks.builders import ActorCritic, QNetwork


class DeterministicActorCritic(nn.Module):
    """obs -> (action, V(s)), or obs -> action when `with_value` is false."""

    action_low: torch.Tensor
    action_high: torch.Tensor

    def __init__(self, net: ActorCritic, action_space: gym.Space[Any], with_value: bool) -> None:
        super().__init__()
        self.net = net
        self.with_value = with_value
        self.output_names: tuple[str, ...] = ("action", "value") if with_value else ("action",)
        self.clip = isinstance(action_space, gym.spaces.Box)
        if isinstance(action_space, gym.spaces.Box):
            self.register_buffer("action_low", torch.as_tensor(action_space.low).float())
            self.register_buffer("action_high", torch.as_tensor(action_space.high).float())

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, value = self.net(obs)  # logits or Gaussian mean, V(s)
        if self.net.discrete:
            action = out.argmax(-1)
        else:
            if self.net.squash:
                out = self.net.action_centre + self.net.action_half_width * torch.tanh(out)
            action = torch.clamp(out, self.action_low, self.action_high)
        return (action, value) if self.with_value else (action,)


class GreedyQ(nn.Module):
    """obs -> (argmax_a Q(s, a), Q(s, .))."""

    output_names = ("action", "q_values")

    def __init__(self, net: QNetwork) -> None:
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q_values = self.net(obs)
        return q_values.argmax(-1), q_values
