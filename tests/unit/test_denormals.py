"""Flush-to-zero for training (`device.flush_denormal`, rltrain.runner.device.configure_denormals).

Where a gradient vanishes, Adam's first moment m <- b1 m + (1 - b1) g decays geometrically and
passes through the float32 denormal range (below 1.18e-38), where x86 CPUs take a slow path for
every operation. With the mode on, such values are read and written as zero: no denormal is left
in the optimizer state, and a step over a denormal-heavy state costs what one over normal numbers
does. Timings are compared with each other inside one test, never against a wall-clock figure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import torch

from rltrain.blocks.optim import Adam
from rltrain.config.schema import DeviceConfig
from rltrain.runner.device import configure_denormals

TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32, 1.18e-38
SIZE = 1 << 17  # about the parameter count of a CartPole DQN's [256, 256] MLP, doubled


@pytest.fixture(autouse=True)
def flush_mode() -> Iterator[None]:
    """Each test starts with the mode off, and leaves it off (and torch's thread count as it
    was) for the tests after it."""
    threads = torch.get_num_threads()
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)
    torch.set_num_threads(threads)


def flush_supported() -> bool:
    supported = torch.set_flush_denormal(True)
    torch.set_flush_denormal(False)
    return bool(supported)


needs_ftz = pytest.mark.skipif(not flush_supported(), reason="this CPU has no flush-to-zero mode")


def denormals(tensor: torch.Tensor) -> int:
    return int(((tensor != 0) & (tensor.abs() < TINY)).sum())


def vanishing_gradient_adam(first_moment: float) -> Adam:
    """Adam over SIZE weights whose gradient is zero, m filled with `first_moment`."""
    weights = torch.nn.Parameter(torch.randn(SIZE))
    adam = Adam([weights], lr=1e-3)
    adam.exp_avg.fill_(first_moment)
    adam.exp_avg_sq.fill_(1e-6)
    adam.flat_grad.zero_()
    return adam


@needs_ftz
def test_the_training_setting_turns_flush_to_zero_on_and_off() -> None:
    denormal = torch.tensor([1e-39], dtype=torch.float32)  # made while the mode is off
    assert denormals(denormal) == 1
    assert configure_denormals(DeviceConfig()) is True  # the default: on
    assert float((denormal * 1.0).item()) == 0.0  # denormal inputs read as zero
    configure_denormals(DeviceConfig(flush_denormal=False))
    assert denormals(denormal * 1.0) == 1


@needs_ftz
def test_a_vanishing_gradient_leaves_no_denormal_moments_with_the_mode_on() -> None:
    # the mode is the calling thread's (torch's OpenMP workers keep theirs): one thread, as
    # training uses for MLPs (rltrain.runner.device.configure_threads)
    torch.set_num_threads(1)
    # m starts just above the denormal range and decays by b1 = 0.9 per step
    adam = vanishing_gradient_adam(4 * TINY)
    for _ in range(30):
        adam.step()
    assert denormals(adam.exp_avg) == SIZE  # without the mode: every entry is denormal

    configure_denormals(DeviceConfig())
    adam = vanishing_gradient_adam(4 * TINY)
    for _ in range(30):
        adam.step()
    assert denormals(adam.exp_avg) == 0
    assert float(adam.exp_avg.abs().max()) == 0.0  # flushed, not left tiny


def step_time(adam: Adam, state: torch.Tensor) -> float:
    """Seconds for one Adam step from first moment `state` (copied in bit for bit)."""
    adam.exp_avg.copy_(state)
    start = time.perf_counter()
    adam.step()
    return time.perf_counter() - start


@needs_ftz
def test_a_denormal_heavy_adam_step_is_no_slower_than_a_normal_one() -> None:
    """The minimum over interleaved repetitions is robust to a busy machine; without the mode
    the denormal step takes about 20 times as long on this kind of CPU, so a ratio of 2.5 leaves
    room for noise and none for the slow path."""
    torch.set_num_threads(1)  # as training MLPs: one thread (the mode is per thread)
    denormal_state = torch.full((SIZE,), 1e-39)  # made while the mode is off: really denormal
    normal_state = torch.full((SIZE,), 1e-3)
    assert denormals(denormal_state) == SIZE

    configure_denormals(DeviceConfig())
    adam = vanishing_gradient_adam(1e-3)
    normal, denormal = [], []
    for _ in range(60):
        normal.append(step_time(adam, normal_state))
        denormal.append(step_time(adam, denormal_state))
    ratio = min(denormal) / min(normal)
    timings = f"denormal step {min(denormal) * 1e6:.0f} us, normal {min(normal) * 1e6:.0f} us"
    assert ratio < 2.5, timings
