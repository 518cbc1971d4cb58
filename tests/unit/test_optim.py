from __future__ import annotations

import pytest
import torch
from torch import nn

from rltrain.core.optim import Adam, RMSprop


def _train(make_optimizer, steps: int = 25) -> list[torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    optimizer = make_optimizer(net.parameters())
    data = torch.randn(32, 5)
    target = torch.randn(32, 3)
    for step in range(steps):
        optimizer.zero_grad()
        ((net(data) - target) ** 2).mean().backward()
        if step == 10:
            optimizer.param_groups[0]["lr"] *= 0.5  # schedules write the lr like torch's
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        (lambda p: Adam(p, lr=1e-2, eps=1e-5), lambda p: torch.optim.Adam(p, lr=1e-2, eps=1e-5)),
        (
            lambda p: RMSprop(p, lr=1e-2, alpha=0.99, eps=1e-5),
            lambda p: torch.optim.RMSprop(p, lr=1e-2, alpha=0.99, eps=1e-5),
        ),
    ],
)
def test_matches_torch_optim(ours, reference) -> None:
    for mine, theirs in zip(_train(ours), _train(reference), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(1)
    net = nn.Linear(3, 1)
    optimizer = Adam(net.parameters(), lr=0.1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)

    def step(o: Adam, n: nn.Module) -> None:
        o.zero_grad()
        ((n(x) - y) ** 2).mean().backward()
        o.step()

    for _ in range(3):
        step(optimizer, net)
    clone = nn.Linear(3, 1)
    clone.load_state_dict(net.state_dict())
    restored = Adam(clone.parameters(), lr=0.5)
    restored.load_state_dict(optimizer.state_dict())
    step(optimizer, net)
    step(restored, clone)
    torch.testing.assert_close(net.weight, clone.weight)
    assert restored.lr == pytest.approx(0.1)
