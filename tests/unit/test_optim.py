from __future__ import annotations

import pytest
import torch
from torch import nn

from rltrain.blocks.optim import Adam, RMSprop, sqrt_into


def _train(make_optimizer, ours: bool, steps: int = 25, clip: float | None = None) -> list:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    optimizer = make_optimizer(net.parameters())
    data = torch.randn(32, 5)
    target = torch.randn(32, 3)
    for step in range(steps):
        optimizer.zero_grad()
        ((net(data) - target) ** 2).mean().backward()
        if clip is not None:
            if ours:
                optimizer.clip_grad_norm(clip)
            else:
                nn.utils.clip_grad_norm_(net.parameters(), clip)
        if step == 10:
            optimizer.param_groups[0]["lr"] *= 0.5  # schedules write the lr like torch's
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


CASES = [
    (lambda p: Adam(p, lr=1e-2, eps=1e-5), lambda p: torch.optim.Adam(p, lr=1e-2, eps=1e-5)),
    (
        lambda p: RMSprop(p, lr=1e-2, alpha=0.99, eps=1e-5),
        lambda p: torch.optim.RMSprop(p, lr=1e-2, alpha=0.99, eps=1e-5),
    ),
]


@pytest.mark.parametrize(("ours", "reference"), CASES)
@pytest.mark.parametrize("clip", [None, 0.05])
def test_matches_torch_optim(ours, reference, clip) -> None:
    mine = _train(ours, True, clip=clip)
    theirs = _train(reference, False, clip=clip)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_parameters_and_grads_are_views_of_flat_buffers() -> None:
    net = nn.Linear(3, 2)
    optimizer = Adam(net.parameters(), lr=0.1)
    ptr = optimizer.flat_grad.data_ptr()
    net(torch.randn(4, 3)).sum().backward()
    assert optimizer.flat_grad.abs().sum() > 0  # backward accumulated into the flat buffer
    assert net.weight.grad is not None and net.weight.grad.data_ptr() == ptr
    before = optimizer.flat.clone()
    optimizer.step()
    assert not torch.equal(before, optimizer.flat)
    assert torch.equal(net.weight.detach().flatten(), optimizer.flat[:6])


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


@pytest.mark.parametrize("cls", [Adam, RMSprop])
def test_a_worker_steps_shared_weights_with_its_own_gradient_and_scratch(cls) -> None:
    # A3C: the shared optimizer (weights and moments in shared memory) takes each worker's
    # gradient and computes in that worker's scratch, so no two workers write one buffer.
    torch.manual_seed(0)
    shared_net, local_net = nn.Linear(3, 2), nn.Linear(3, 2)
    shared, local = cls(shared_net.parameters(), lr=0.1), cls(local_net.parameters(), lr=0.1)
    shared_scratch = shared.scratch.data_ptr()
    shared.use_worker_buffers(local)
    assert shared.scratch.data_ptr() == local.scratch.data_ptr() != shared_scratch
    local.flat.copy_(shared.flat)
    local_net(torch.randn(4, 3)).sum().backward()
    expected = cls(nn.Linear(3, 2).parameters(), lr=0.1)  # the same step done directly
    expected.flat.copy_(shared.flat)
    expected.flat_grad.copy_(local.flat_grad)
    expected.step()
    shared.step()
    torch.testing.assert_close(shared.flat, expected.flat)
    assert not torch.equal(shared.flat, local.flat)  # the shared weights moved, not the copy


def test_sqrt_into_matches_torch_including_zeros() -> None:
    # The CPU path goes through NumPy (torch's CPU sqrt is slow on zeros); same values either way.
    source = torch.tensor([0.0, 1e-30, 2.0, 4.0, 1e20, 0.0])
    out = torch.empty_like(source)
    result = sqrt_into(source, out)
    assert result is out
    assert torch.equal(out, torch.sqrt(source))
    assert out[0] == 0.0 and out[3] == 2.0
    half = torch.tensor([0.0, 4.0], dtype=torch.bfloat16)  # no NumPy dtype: torch's sqrt
    assert torch.equal(sqrt_into(half, torch.empty_like(half)), torch.tensor([0.0, 2.0]).bfloat16())
