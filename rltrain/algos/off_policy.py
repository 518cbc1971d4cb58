"""What the replay-based learners share: target networks and the overestimation measure.

- `update_target`: theta_target <- tau * theta + (1 - tau) * theta_target (a hard copy at tau 1);
- `QBiasTracker`: `values/q_bias`, the predicted Q(s_t, a_t) minus the discounted return that
  actually followed (van Hasselt et al. 2016, sec. 3 and fig. 3), averaged over the transitions of
  the episodes that ended in a log window. Q(s_t, a_t) is taken when acting (the forward pass is
  needed anyway) and kept per env, beside the rewards, until the episode ends. A time-limit
  truncation bootstraps the tail with the learner's own value of the final state; that term is
  discounted by gamma^(T-t), so it shrinks the measured bias only near the cut.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rltrain.algos.base import REPLAY_STATE, Context, check_iteration_fits
from rltrain.blocks.buffers import ReplayBuffer, make_replay_buffer
from rltrain.envs.vec import envs_restored
from rltrain.errors import UserError, warn_stderr


def resume_without_replay(ctx: Context, learning_starts: int, learning_starts_at: int) -> int:
    """The env step updates start at after loading a state without a replay buffer.

    Resuming training (algo.checkpoint_buffer=false): the policy acts on from where it was and
    the updates wait until the new, empty buffer holds learning_starts transitions again, with a
    warning. Built for evaluation (best.pt, or weights only): nothing to say, nothing changes.
    """
    if ctx.run_dir is None:
        return learning_starts_at
    warn_stderr(
        "warning: the checkpoint holds no replay buffer (algo.checkpoint_buffer=false); "
        f"resuming with an empty replay buffer, updates resume after "
        f"{learning_starts:,} more steps (algo.learning_starts)"
    )
    return ctx.step + learning_starts  # ctx.step is the resume step


@torch.no_grad()
def update_target(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta_target <- tau * theta_online + (1 - tau) * theta_target (tau = 1: a hard copy)."""
    target_params: list[torch.Tensor] = list(target.parameters())
    online_params: list[torch.Tensor] = list(online.parameters())
    if tau >= 1.0:
        torch._foreach_copy_(target_params, online_params)
    else:
        torch._foreach_lerp_(target_params, online_params, tau)
    for t_buf, o_buf in zip(target.buffers(), online.buffers(), strict=True):
        t_buf.copy_(o_buf)


def returns_to_go(rewards: np.ndarray, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """G_t = sum_{k=t}^{T-1} gamma^(k-t) r_k + gamma^(T-t) * bootstrap, for t = 0..T-1.

    Vectorized per chunk: inside a chunk G_i = (sum_{j>=i} gamma^j r_j) / gamma^i + carry terms;
    chunks are short enough that gamma^len stays far above float64 underflow.
    """
    r = np.asarray(rewards, dtype=np.float64)
    out = np.empty_like(r)
    chunk = len(r) if gamma >= 1.0 else max(1, int(-150.0 / math.log10(gamma)))
    carry = float(bootstrap)  # G at the start of the chunk after the current one
    end = len(r)
    while end > 0:
        start = max(0, end - chunk)
        seg = r[start:end]
        powers = gamma ** np.arange(len(seg), dtype=np.float64)
        tail = np.cumsum((powers * seg)[::-1])[::-1]  # sum_{j>=i} gamma^j r_j
        out[start:end] = tail / powers + gamma ** (len(seg) - np.arange(len(seg))) * carry
        carry = float(out[start])
        end = start
    return out


def q_bias_sum(
    q_pred: np.ndarray, rewards: np.ndarray, gamma: float, bootstrap: float = 0.0
) -> tuple[float, int]:
    """Overestimation of one finished episode:

    (sum over steps t with a prediction (finite q_pred) of Q(s_t, a_t) - G_t, number of such
    steps), G from :func:`returns_to_go`. Sums, so a log window averages over transitions.
    """
    known = np.isfinite(q_pred)
    if not known.any():
        return 0.0, 0
    returns = returns_to_go(rewards, gamma, bootstrap)
    return float((q_pred[known] - returns[known]).sum()), int(known.sum())


class QBiasTracker:
    """The episodes in flight of N envs ([t, env] records of Q(s_t, a_t), NaN where no prediction
    was made, and of the training reward; grown by doubling) and the q_bias sums of a log window."""

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.gamma = gamma
        self._index = np.arange(num_envs)
        self.q = np.full((1024, num_envs), np.nan)
        self.r = np.zeros((1024, num_envs))
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.bias_sum, self.bias_count = 0.0, 0  # over transitions since the last `pop`

    def _grow(self, longest: int) -> None:
        while longest >= len(self.q):
            self.q = np.concatenate([self.q, np.full_like(self.q, np.nan)])
            self.r = np.concatenate([self.r, np.zeros_like(self.r)])

    def step(
        self,
        q_taken: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_value: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        """Record one step of every env; close the episodes that ended. `final_value(rows)` gives
        the learner's value of the final states of the envs `rows` (time-limit cuts only)."""
        self._grow(int(self.lengths.max()))
        self.q[self.lengths, self._index] = q_taken
        self.r[self.lengths, self._index] = reward
        self.lengths += 1
        done = terminated | truncated
        if not done.any():
            return
        ended = np.flatnonzero(done)
        # a time limit is not the end of the MDP: bootstrap the tail with the value of s_T
        boot = np.zeros(len(self._index))
        cut = ended[truncated[ended] & ~terminated[ended]]
        # (an episode with no prediction at all, e.g. during a warm-up, has no q_bias to give)
        predicted = np.isfinite(self.q[: self.lengths.max()]).any(axis=0)
        cut = cut[predicted[cut]]
        if cut.size:
            boot[cut] = final_value(cut)
        for e in ended:  # only the few envs whose episode ended this step
            length = int(self.lengths[e])
            total, count = q_bias_sum(self.q[:length, e], self.r[:length, e], self.gamma, boot[e])
            self.bias_sum += total
            self.bias_count += count
        self.lengths[ended] = 0

    def pop(self) -> float | None:
        """Mean q_bias over the transitions of the episodes that ended since the last call."""
        if not self.bias_count:
            return None
        mean = self.bias_sum / self.bias_count
        self.bias_sum, self.bias_count = 0.0, 0
        return mean

    def state_dict(self) -> dict[str, Any]:
        longest = int(self.lengths.max())
        return {
            "q": torch.from_numpy(self.q[:longest].copy()),
            "r": torch.from_numpy(self.r[:longest].copy()),
            "len": torch.from_numpy(self.lengths.copy()),
            "bias_sum": self.bias_sum,
            "bias_count": self.bias_count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        longest = len(state["q"])
        self._grow(longest)
        self.q[:longest] = state["q"].numpy()
        self.r[:longest] = state["r"].numpy()
        self.lengths[:] = state["len"].numpy()
        self.bias_sum = float(state["bias_sum"])
        self.bias_count = int(state["bias_count"])


# --- continuous actions -------------------------------------------------------------------------
def check_continuous_env(
    algo: str, obs_space: gym.Space[Any], action_space: gym.Space[Any]
) -> None:
    """SAC / TD3 / DDPG act in a bounded box and read vector observations."""
    if isinstance(action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        raise UserError(
            f"algo={algo} needs continuous (Box) actions, but the env has {action_space}; "
            "use algo=dqn or algo=ppo for discrete actions"
        )
    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
        raise UserError(f"algo={algo} needs a 1-D Box action space, not {action_space}")
    if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
        raise UserError(
            f"algo={algo} needs a bounded action box (its policy is squashed into it), got "
            f"{action_space}; wrap the env with gymnasium.wrappers.RescaleAction first"
        )
    if not isinstance(obs_space, gym.spaces.Box) or obs_space.dtype == np.uint8:
        raise UserError(
            f"algo={algo} takes vector observations (network=mlp), not {obs_space}; "
            "use algo=ppo or algo=dqn for images"
        )


class ActionScale:
    """a_env = c + s * a_unit, c and s the centre and half-width of the env's action box.

    The networks, the replay buffer and every noise scale work in the unit box [-1, 1]^d (as SB3
    does), so TD3's noise 0.1 and SAC's target entropy -|A| mean the same on every env."""

    def __init__(self, space: gym.spaces.Box) -> None:
        low = np.asarray(space.low, dtype=np.float64)
        high = np.asarray(space.high, dtype=np.float64)
        self.centre, self.half_width = (high + low) / 2, (high - low) / 2
        self.dtype = space.dtype

    def to_env(self, unit: np.ndarray) -> np.ndarray:
        # clip: float32 rounding of c + s * 1 may step a hair outside the box
        return np.clip(self.centre + self.half_width * unit, self.centre - self.half_width,
                       self.centre + self.half_width).astype(self.dtype)  # fmt: skip


class Experience:
    """The envs and the replay buffer of a continuous-action learner.

    `step(actions)` plays one vector step with actions in the unit box, stores (s, a, r, s',
    terminated, truncated) with the true successor s' (`final_obs` where an episode ended, so a
    time-limit cut bootstraps from it and a termination does not), and records Q(s, a) for
    values/q_bias when given. Its state (buffer, current observations, episodes in flight) goes
    into the checkpoint, so a resumed run continues exactly.
    """

    def __init__(self, algo: str, ctx: Context, cfg: Any) -> None:
        self.ctx, self.cfg = ctx, cfg
        env = ctx.env
        self.num_envs = env.num_envs
        check_iteration_fits(ctx, algo, self.num_envs, "env.num_envs")
        if ctx.run_dir is not None and cfg.learning_starts >= ctx.cfg.total_steps:
            raise UserError(
                f"algo.learning_starts={cfg.learning_starts:,} is not below total_steps="
                f"{ctx.cfg.total_steps:,}: no update would ever happen; lower algo.learning_starts "
                "or raise total_steps"
            )
        space = env.single_action_space
        assert isinstance(space, gym.spaces.Box)
        self.act_dim = int(space.shape[0])
        self.scale = ActionScale(space)
        unit_box = gym.spaces.Box(-1.0, 1.0, (self.act_dim,), np.float32)
        obs_space = env.single_observation_space
        assert isinstance(obs_space, gym.spaces.Box)
        self.obs_dim = int(np.prod(obs_space.shape))
        # float64 observations (MuJoCo) are stored as float32, what the networks take: half the
        # memory of a 1M-transition buffer, and no conversion per sampled batch
        stored = gym.spaces.Box(-np.inf, np.inf, obs_space.shape, np.float32)
        buffer = make_replay_buffer(
            stored, unit_box, cfg.buffer_size, self.num_envs, ctx.device, gamma=cfg.gamma
        )
        assert isinstance(buffer, ReplayBuffer)
        self.buffer = buffer
        self.obs = env.reset(seed=ctx.cfg.seed)
        self.q_bias = QBiasTracker(self.num_envs, cfg.gamma)
        # updates begin once the env step passes this; a resume without a saved buffer moves it
        self.learning_starts_at = cfg.learning_starts

    def random_actions(self) -> np.ndarray:
        """Uniform in the unit box: the warm-up policy before learning_starts (as SB3's)."""
        return self.ctx.rng.uniform(-1.0, 1.0, (self.num_envs, self.act_dim)).astype(np.float32)

    def step(
        self,
        actions: np.ndarray,
        q_taken: np.ndarray | None = None,
        final_value: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """One step of every env with unit-box `actions` [N, d]; q_taken: Q(s, a) per env for
        values/q_bias, and final_value(final_obs) the bootstrap of a time-limit cut."""
        tr = self.ctx.env.step(self.scale.to_env(actions))
        self.buffer.add(self.obs, actions, tr.reward, tr.terminated, tr.truncated, tr.final_obs)
        if final_value is not None:
            value = final_value
            q = np.full(self.num_envs, np.nan) if q_taken is None else q_taken
            self.q_bias.step(
                q, tr.reward, tr.terminated, tr.truncated, lambda rows: value(tr.final_obs[rows])
            )
        self.obs = tr.obs

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "learning_starts_at": self.learning_starts_at,
            "obs": torch.from_numpy(np.ascontiguousarray(self.obs)),
            "episodes": self.q_bias.state_dict(),
        }
        if self.cfg.checkpoint_buffer:
            state[REPLAY_STATE] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learning_starts_at = int(state["learning_starts_at"])
        continued = envs_restored(self.ctx.env)
        if continued:
            self.obs = state["obs"].numpy()
            self.q_bias.load_state_dict(state["episodes"])
        if REPLAY_STATE not in state:
            self.learning_starts_at = resume_without_replay(
                self.ctx, self.cfg.learning_starts, self.learning_starts_at
            )
            return
        self.buffer.load_state_dict(state[REPLAY_STATE])
        if not continued and self.buffer.steps_added > 0:
            # fresh episodes after the resume (async envs): close each stream's newest row as a
            # time-limit cut; it bootstraps from its stored true successor
            newest = (self.buffer.steps_added - 1) % self.buffer.capacity_per_env
            self.buffer.truncated[newest] = True
