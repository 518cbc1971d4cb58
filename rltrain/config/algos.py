"""Every algorithm's schema (`algo.<key>`): keys, defaults, one-line meanings and range checks.

Defaults live here and nowhere else; YAML under `rltrain/conf/` holds only presets. The schemas sit
in the config layer, apart from the algorithms, so that composing, printing or validating a
config never imports torch; each algorithm file names its schema at the top.
`ALGO_SCHEMAS` maps `algo.name` to its schema, a one-line description and the networks it can use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rltrain.errors import UserError


@dataclass
class PPOConfig:
    name: str = "ppo"
    lr: float = 3e-4
    anneal_lr: bool = True  # linear decay to 0 over the step budget
    n_steps: int = 128  # rollout length per env; a rollout is n_steps x num_envs transitions
    batch_size: int = 64  # minibatch size
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    anneal_clip: bool = False  # linear decay of clip_coef to 0 (RL Zoo "lin_0.2")
    clip_value_loss: bool = False  # clip V around the old estimate, as in the PPO2 baselines
    normalize_advantages: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5  # loss = pg + vf_coef * mean((V - R)^2) - ent_coef * H  (SB3 convention)
    max_grad_norm: float = 0.5
    target_kl: float | None = None  # stop the epoch loop once approx KL > 1.5 * target_kl
    optimizer_eps: float = 1e-5  # Adam's epsilon
    # Categorical policy on two separate MLP towers: gradients from a hand-written backward pass
    # (rltrain/networks/hand_backward.py), the same numbers as autograd's, faster on the CPU
    # (docs/benchmarks.md). false = autograd; other networks always use autograd.
    manual_backward: bool = True
    # env=text: adapt the per-token KL coefficient (from env.beta) towards this KL per
    # completion (Ziegler et al. 2019); null keeps env.beta fixed
    adaptive_kl_target: float | None = None
    adaptive_kl_horizon: int = 10_000  # completions over which the coefficient adapts

    def __post_init__(self) -> None:
        if self.adaptive_kl_target is not None and self.adaptive_kl_target <= 0:
            raise UserError(
                f"algo.adaptive_kl_target={self.adaptive_kl_target} must be positive (null: fixed)"
            )
        if self.adaptive_kl_horizon < 1:
            raise UserError(f"algo.adaptive_kl_horizon={self.adaptive_kl_horizon} must be >= 1")
        for key in ("lr", "n_steps", "batch_size", "n_epochs", "max_grad_norm"):
            if getattr(self, key) <= 0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be positive")
        if not 0.0 < self.gamma <= 1.0:
            raise UserError(f"algo.gamma={self.gamma} must be in (0, 1]")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise UserError(f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        if self.clip_coef <= 0:
            raise UserError(f"algo.clip_coef={self.clip_coef} must be positive")
        if self.ent_coef < 0 or self.vf_coef < 0:
            raise UserError(
                f"algo.ent_coef={self.ent_coef} and algo.vf_coef={self.vf_coef} must be >= 0"
            )
        if self.target_kl is not None and self.target_kl <= 0:
            raise UserError(f"algo.target_kl={self.target_kl} must be positive (null disables it)")




@dataclass
class GRPOConfig:
    """Group relative policy optimisation (Shao et al. 2024) on env=text; KL weight env.beta."""

    name: str = "grpo"
    lr: float = 1e-3
    anneal_lr: bool = False  # linear decay to 0 over the step budget
    group_size: int = 8  # completions per prompt; a batch is env.num_envs x group_size
    n_epochs: int = 1  # passes over a batch
    batch_size: int = 64  # minibatch size, in completions
    clip_coef: float = 0.2
    max_grad_norm: float = 1.0
    optimizer_eps: float = 1e-8  # Adam's epsilon
    # leave-one-out baseline (RLOO, Ahmadian et al. 2024) instead of the group's mean and std
    rloo: bool = False

    def __post_init__(self) -> None:
        for key in ("lr", "n_epochs", "batch_size", "clip_coef", "max_grad_norm", "optimizer_eps"):
            if getattr(self, key) <= 0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be positive")
        if self.group_size < 2:
            raise UserError(
                f"algo.group_size={self.group_size} must be at least 2 (a group needs a baseline)"
            )


OPTIMIZERS = ("rmsprop", "adam")


@dataclass
class A2CConfig:
    name: str = "a2c"
    lr: float = 7e-4
    anneal_lr: bool = False  # linear decay to 0 over the step budget (RL Zoo "lin_7e-4")
    n_steps: int = 5  # rollout length per env; one update per n_steps x num_envs transitions
    gamma: float = 0.99
    gae_lambda: float = 1.0  # 1.0: n-step returns bootstrapped from V at the rollout end
    ent_coef: float = 0.0
    vf_coef: float = 0.5  # loss = pg + vf_coef * mean((V - R)^2) - ent_coef * H  (SB3 convention)
    max_grad_norm: float = 0.5
    optimizer: str = "rmsprop"  # rmsprop (SB3 / RL Zoo) | adam
    rms_alpha: float = 0.99  # RMSprop smoothing constant
    optimizer_eps: float = 1e-5  # RMSprop / Adam epsilon
    normalize_advantages: bool = False
    # divide rewards by a running std of the discounted return (RL Zoo's `normalize: true`);
    # V and the values/* diagnostics are then in those scaled units
    normalize_rewards: bool = False
    # Categorical policy on two separate MLP towers: gradients from a hand-written backward pass
    # (rltrain/networks/hand_backward.py), the same numbers as autograd's; false = autograd
    manual_backward: bool = True

    def __post_init__(self) -> None:
        check_actor_critic_config(self)


def check_minibatch_fits(batch_size: int, n_steps: int, num_envs: int) -> None:
    """PPO's minibatch must fit in one rollout of n_steps x num_envs transitions. Checked with
    the config (so a sweep finds an impossible value before any job) and by PPO itself."""
    rollout_size = n_steps * num_envs
    if batch_size > rollout_size:
        raise UserError(
            f"algo.batch_size={batch_size} is larger than a rollout (algo.n_steps x "
            f"env.num_envs = {rollout_size}); use algo.batch_size<={rollout_size}"
        )


def check_actor_critic_config(cfg: Any) -> None:
    """Range checks shared by A2C and A3C configs: one line naming the key."""
    for key in ("lr", "n_steps", "max_grad_norm", "optimizer_eps"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"algo.{key}={getattr(cfg, key)} must be positive")
    if not 0.0 < cfg.gamma <= 1.0:
        raise UserError(f"algo.gamma={cfg.gamma} must be in (0, 1]")
    if not 0.0 <= cfg.gae_lambda <= 1.0:
        raise UserError(f"algo.gae_lambda={cfg.gae_lambda} must be in [0, 1]")
    if not 0.0 <= cfg.rms_alpha < 1.0:
        raise UserError(f"algo.rms_alpha={cfg.rms_alpha} must be in [0, 1)")
    for key in ("ent_coef", "vf_coef"):
        if getattr(cfg, key) < 0:
            raise UserError(f"algo.{key}={getattr(cfg, key)} must be >= 0")
    if cfg.optimizer not in OPTIMIZERS:
        raise UserError(f"algo.optimizer={cfg.optimizer} is not known; use rmsprop or adam")




@dataclass
class A3CConfig:
    name: str = "a3c"
    num_workers: int = 0  # worker processes; 0 = one per CPU core
    lr: float = 7e-4
    anneal_lr: bool = True  # linear decay to 0 over the step budget, as in the paper
    n_steps: int = 5  # t_max = 5 in the paper: steps a worker plays before each update
    gamma: float = 0.99
    gae_lambda: float = 1.0  # 1.0: the paper's n-step returns
    ent_coef: float = 0.01  # beta = 0.01 in the paper
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5  # global norm of each worker's gradient (SB3's A2C default)
    optimizer: str = "rmsprop"  # rmsprop (the paper's shared RMSProp) | adam, statistics shared
    rms_alpha: float = 0.99  # RMSprop decay (alpha = 0.99 in the paper)
    optimizer_eps: float = 1e-5  # RMSprop / Adam epsilon
    normalize_advantages: bool = False

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise UserError(
                f"algo.num_workers={self.num_workers} must be >= 0 (0 = one worker per core)"
            )
        check_actor_critic_config(self)

    @property
    def workers(self) -> int:
        return self.num_workers or (os.cpu_count() or 1)




@dataclass
class ReinforceConfig:
    name: str = "reinforce"
    lr: float = 1e-3  # Adam
    anneal_lr: bool = False  # linear decay to 0 over the step budget
    gamma: float = 0.99
    baseline: bool = True  # learned V(s) subtracted from the return
    # standardise the policy-gradient weights (G - V, or G without baseline) over the batch
    normalize_returns: bool = True
    episodes_per_update: int = 8  # a multiple of env.num_envs: each env plays the same number
    vf_coef: float = 0.5  # loss = pg + vf_coef * mean((V - G)^2) - ent_coef * H
    # gradient steps per batch on the value loss: the first comes with the policy step, the rest
    # fit V alone (Spinning Up's VPG takes 80); one step a batch leaves V far behind the returns
    value_steps: int = 20
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    optimizer_eps: float = 1e-5  # Adam's epsilon
    # per-episode gradients each update for policy/grad_variance (one batched backward pass)
    grad_variance: bool = True

    def __post_init__(self) -> None:
        for key in ("lr", "episodes_per_update", "max_grad_norm", "optimizer_eps", "value_steps"):
            if getattr(self, key) <= 0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be positive")
        if not 0.0 < self.gamma <= 1.0:
            raise UserError(f"algo.gamma={self.gamma} must be in (0, 1]")
        for key in ("ent_coef", "vf_coef"):
            if getattr(self, key) < 0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be >= 0")




LOSSES = ("huber", "mse")


@dataclass
class DQNConfig:
    # Defaults follow Stable-Baselines3's DQN (which follows Mnih et al. 2015) except the buffer:
    # 1e5 rather than 1e6, so an untuned image env does not ask for 7 GB (presets: rltrain/tuned).
    name: str = "dqn"
    lr: float = 1e-4
    # linear decay to 0 over the step budget: the late updates, which can only move a policy
    # that already holds, shrink (the CartPole preset needs it to end solved)
    anneal_lr: bool = False
    buffer_size: int = 100_000  # transitions, summed over envs
    learning_starts: int = 100  # env steps of uniform random actions before the first update
    batch_size: int = 32
    gamma: float = 0.99
    # target net: every `target_update_interval` env steps, target <- tau*online + (1-tau)*target
    # (tau = 1: the hard copy of Mnih et al.; tau < 1: Polyak averaging, Lillicrap et al. 2016)
    tau: float = 1.0
    target_update_interval: int = 10_000
    train_freq: int = 4  # env steps per vector env between update phases
    gradient_steps: int = 1  # gradient steps per update phase
    # epsilon-greedy: epsilon decays linearly from epsilon_start to epsilon_end over the first
    # epsilon_fraction of the step budget, then stays at epsilon_end
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_fraction: float = 0.1
    loss: str = "huber"  # huber (smooth L1, as in Mnih et al.'s error clipping) | mse
    max_grad_norm: float | None = 10.0  # global grad-norm clip; null disables
    double: bool = False  # Double DQN target (van Hasselt et al. 2016)
    n_steps: int = 1  # n-step returns (Sutton & Barto sec. 7.1), formed by the buffer
    prioritized: bool = False  # proportional prioritized replay (Schaul et al. 2016)
    priority_alpha: float = 0.6  # priority exponent: P(i) ~ (|delta_i| + eps)^alpha
    # importance-weight exponent beta, annealed linearly from this to 1 over training
    priority_beta_start: float = 0.4
    priority_eps: float = 1e-6
    # the written part of the replay buffer is saved in last.pt (resume continues with the same
    # data; best.pt never holds it); turn it off for huge buffers (a full 1M-frame Atari buffer
    # is about 7 GB)
    checkpoint_buffer: bool = True

    def __post_init__(self) -> None:
        for key in (
            "lr", "buffer_size", "batch_size", "target_update_interval", "train_freq",
            "gradient_steps",
        ):  # fmt: skip
            if getattr(self, key) <= 0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be positive")
        if self.n_steps < 1:
            raise UserError(f"algo.n_steps={self.n_steps} must be at least 1")
        if self.learning_starts < 0:
            raise UserError(f"algo.learning_starts={self.learning_starts} must be >= 0")
        if not 0.0 < self.gamma <= 1.0:
            raise UserError(f"algo.gamma={self.gamma} must be in (0, 1]")
        if not 0.0 < self.tau <= 1.0:
            raise UserError(f"algo.tau={self.tau} must be in (0, 1]")
        for key in ("epsilon_start", "epsilon_end", "priority_alpha", "priority_beta_start"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be in [0, 1]")
        if not 0.0 < self.epsilon_fraction <= 1.0:
            raise UserError(f"algo.epsilon_fraction={self.epsilon_fraction} must be in (0, 1]")
        if self.loss not in LOSSES:
            raise UserError(f"algo.loss={self.loss} is not known; use huber or mse")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise UserError(
                f"algo.max_grad_norm={self.max_grad_norm} must be positive (null disables it)"
            )
        if self.priority_eps < 0:
            raise UserError(f"algo.priority_eps={self.priority_eps} must be >= 0")
        if self.buffer_size < self.batch_size:
            raise UserError(
                f"algo.buffer_size={self.buffer_size} is smaller than algo.batch_size="
                f"{self.batch_size}: a minibatch would repeat the few stored transitions; use "
                f"algo.buffer_size>={self.batch_size}"
            )




@dataclass
class TRPOConfig:
    # Defaults follow sb3-contrib's TRPO (Schulman et al. 2015 with GAE, Schulman et al. 2016)
    name: str = "trpo"
    n_steps: int = 2048  # rollout length per env; a rollout is n_steps x num_envs transitions
    gamma: float = 0.99
    gae_lambda: float = 0.95
    max_kl: float = 0.01  # the trust region: mean KL(pi_old || pi_new) over the rollout <= max_kl
    cg_iters: int = 15  # conjugate-gradient iterations for F^-1 g
    cg_damping: float = 0.1  # F + damping * I: keeps the Fisher system well conditioned
    line_search_steps: int = 10  # backtracking tries: step * shrink^k, k < line_search_steps
    line_search_shrink: float = 0.8
    normalize_advantages: bool = True
    # the critic, fitted apart from the policy: n_epochs passes of Adam(lr) over the rollout in
    # minibatches of batch_size, on the GAE returns
    lr: float = 1e-3
    n_epochs: int = 10
    batch_size: int = 128
    optimizer_eps: float = 1e-8  # Adam's epsilon

    def __post_init__(self) -> None:
        for key in ("n_steps", "lr", "n_epochs", "batch_size", "optimizer_eps"):
            if getattr(self, key) <= 0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be positive")
        if not 0.0 < self.gamma <= 1.0:
            raise UserError(f"algo.gamma={self.gamma} must be in (0, 1]")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise UserError(f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        if not 0.0 < self.max_kl <= 1.0:
            raise UserError(f"algo.max_kl={self.max_kl} must be in (0, 1] (nats per state)")
        if not 1 <= self.cg_iters <= 1000:
            raise UserError(f"algo.cg_iters={self.cg_iters} must be in [1, 1000]")
        if self.cg_damping < 0:
            raise UserError(f"algo.cg_damping={self.cg_damping} must be >= 0")
        if self.line_search_steps < 1:
            raise UserError(f"algo.line_search_steps={self.line_search_steps} must be at least 1")
        if not 0.0 < self.line_search_shrink < 1.0:
            raise UserError(f"algo.line_search_shrink={self.line_search_shrink} must be in (0, 1)")


def check_replay_config(cfg: Any) -> None:
    """Range checks shared by the continuous-action replay learners (SAC, TD3, DDPG)."""
    for key in ("lr", "buffer_size", "batch_size", "train_freq", "gradient_steps"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"algo.{key}={getattr(cfg, key)} must be positive")
    if cfg.learning_starts < 0:
        raise UserError(f"algo.learning_starts={cfg.learning_starts} must be >= 0")
    if not 0.0 < cfg.gamma <= 1.0:
        raise UserError(f"algo.gamma={cfg.gamma} must be in (0, 1]")
    if not 0.0 < cfg.tau <= 1.0:
        raise UserError(f"algo.tau={cfg.tau} must be in (0, 1] (the Polyak step of the targets)")
    if cfg.buffer_size < cfg.batch_size:
        raise UserError(
            f"algo.buffer_size={cfg.buffer_size} is smaller than algo.batch_size="
            f"{cfg.batch_size}; use algo.buffer_size>={cfg.batch_size}"
        )


@dataclass
class SACConfig:
    # Defaults follow Haarnoja et al. 2018 ("SAC: algorithms and applications", table 1) and SB3's
    # SAC, except the buffer: 1e6 transitions, the paper's, are 1e6 x (2 obs + action) floats.
    name: str = "sac"
    lr: float = 3e-4  # Adam, for the actor, both critics and the entropy coefficient
    buffer_size: int = 1_000_000  # transitions, summed over envs
    learning_starts: int = 100  # env steps of uniform random actions before the first update
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005  # Polyak step of the target critics after every gradient step
    train_freq: int = 1  # env steps per vector env between update phases
    gradient_steps: int = 1  # gradient steps per update phase (update-to-data ratio)
    # entropy coefficient alpha: auto (learned so that the policy's entropy approaches
    # target_entropy, starting at ent_coef_init) or a fixed number, e.g. 0.2
    ent_coef: str = "auto"
    ent_coef_init: float = 1.0  # alpha at the start with ent_coef=auto
    target_entropy: float | None = None  # null: -|A|, minus the action dimension (the paper's)
    checkpoint_buffer: bool = True  # the written part of the replay buffer is saved in last.pt

    def __post_init__(self) -> None:
        check_replay_config(self)
        if self.ent_coef != "auto":
            try:
                value = float(self.ent_coef)
            except ValueError:
                raise UserError(
                    f"algo.ent_coef={self.ent_coef} is not known; use auto or a number >= 0"
                ) from None
            if not 0.0 <= value < float("inf"):
                raise UserError(f"algo.ent_coef={self.ent_coef} must be auto or a number >= 0")
        if not 0.0 < self.ent_coef_init < float("inf"):
            raise UserError(f"algo.ent_coef_init={self.ent_coef_init} must be positive")
        if self.target_entropy is not None and not abs(self.target_entropy) < 1e6:
            raise UserError(
                f"algo.target_entropy={self.target_entropy} is out of range; use a number of the "
                "order of the action dimension (null: -|A|)"
            )

    @property
    def fixed_ent_coef(self) -> float | None:
        """alpha when it is fixed, None when it is learned (ent_coef=auto)."""
        return None if self.ent_coef == "auto" else float(self.ent_coef)


@dataclass
class TD3Config:
    # Defaults follow Fujimoto et al. 2018 (sec. 6.1) and SB3's TD3; noises are in units of the
    # action box's half-width (actions are scaled to [-1, 1] inside the algorithm).
    name: str = "td3"
    lr: float = 1e-3  # Adam, for the actor and the critics
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    train_freq: int = 1
    gradient_steps: int = 1
    exploration_noise: float = 0.1  # std of the Gaussian noise added to mu(s) when acting
    # the three tricks of TD3 (DDPG has them off):
    clipped_double_q: bool = True  # y = r + gamma * min(Q1', Q2')(s', a'), twin critics
    policy_delay: int = 2  # gradient steps of the critics per actor (and target) update
    target_policy_noise: float = 0.2  # std of the smoothing noise on a' = mu'(s') + noise
    target_noise_clip: float = 0.5  # the smoothing noise is clipped to [-c, c]
    checkpoint_buffer: bool = True

    def __post_init__(self) -> None:
        check_replay_config(self)
        for key in ("exploration_noise", "target_policy_noise", "target_noise_clip"):
            if not 0.0 <= getattr(self, key) <= 10.0:
                raise UserError(
                    f"algo.{key}={getattr(self, key)} must be in [0, 10] (a std or clip in "
                    "units of the action box's half-width)"
                )
        if self.policy_delay < 1:
            raise UserError(f"algo.policy_delay={self.policy_delay} must be at least 1")


@dataclass
class DDPGConfig(TD3Config):
    # DDPG (Lillicrap et al. 2016) is TD3 without its three tricks: one critic, an actor update
    # after every critic update, no target smoothing noise (rltrain/algos/td3.py serves both)
    name: str = "ddpg"
    clipped_double_q: bool = False
    policy_delay: int = 1
    target_policy_noise: float = 0.0


LR_SCHEDULES = ("constant", "visits", "linear")
EPSILON_SCHEDULES = ("linear", "exponential")


@dataclass
class TDConfig:
    """Hyperparameters shared by q_learning, sarsa and expected_sarsa (`algo.<key>`).

    Step sizes (lr, alpha in Sutton & Barto). visits: for 0.5 < omega <= 1 the sequence
    lr / N^omega meets the Robbins-Monro conditions (sum = inf, sum of squares < inf) per pair,
    under which Q-learning converges to Q* (Watkins & Dayan 1992) and SARSA with a GLIE
    exploration schedule too (Singh et al. 2000); omega < 1 forgets early targets faster than a
    plain average, which converges polynomially rather than exponentially slowly in
    1 / (1 - gamma) (Even-Dar & Mansour 2003). linear is not Robbins-Monro, but it forgets the
    early targets of an on-policy learner (values of the exploring policy) geometrically, where
    1 / N^omega keeps a polynomial share of them.

    random_first_action with env.random_start=true (gridworld) gives exploring starts (Sutton &
    Barto 2018, sec. 5.3): every (s, a) keeps being updated after epsilon has decayed, which
    SARSA and expected SARSA need to reach Q* everywhere, since they learn the values of the
    policy they follow and a greedy policy stops visiting the pairs it does not choose.
    """

    name: str = "q_learning"
    gamma: float = 0.99  # discount
    # step size: the constant, the numerator of visits, the start of linear
    lr: float = 0.1
    # constant | visits: lr / N(s, a)^lr_omega, N the pair's visits so far (this one included)
    # | linear: lr -> lr_end in a straight line over total_steps
    lr_schedule: str = "constant"
    lr_omega: float = 0.8  # visits: the exponent, in (0.5, 1]
    lr_end: float = 0.1  # linear: the step size at the end of training, in [0, lr]
    # Epsilon-greedy exploration from epsilon_start to epsilon_end over the first
    # epsilon_fraction of total_steps, then constant.
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_fraction: float = 0.5
    # linear | exponential: eps = start * (end / start)^(progress / fraction) (both > 0)
    epsilon_schedule: str = "linear"
    # Initial value of every Q(s, a); above the largest return it is "optimism in the face of
    # uncertainty": untried actions look best until tried (Sutton & Barto 2018, sec. 2.6).
    initial_q: float = 0.0
    # the first action of every training episode is uniform, whatever epsilon is (with
    # env.random_start=true: exploring starts, which on-policy learners need to reach Q*)
    random_first_action: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise UserError(f"algo.gamma={self.gamma} must be in [0, 1]")
        if not 0.0 < self.lr <= 1.0:
            raise UserError(f"algo.lr={self.lr} must be in (0, 1]")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(
                f"algo.lr_schedule={self.lr_schedule} is not known; "
                f"use {' or '.join(LR_SCHEDULES)}"
            )
        if self.lr_schedule == "visits" and not 0.5 < self.lr_omega <= 1.0:
            raise UserError(
                f"algo.lr_omega={self.lr_omega} must be in (0.5, 1] "
                "(Robbins-Monro: the step sizes must sum to infinity, their squares must not)"
            )
        if self.lr_schedule == "linear" and not 0.0 <= self.lr_end <= self.lr:
            raise UserError(
                f"algo.lr_end={self.lr_end} must be in [0, algo.lr={self.lr}] "
                "(lr_schedule=linear decays lr to lr_end)"
            )
        for key in ("epsilon_start", "epsilon_end"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be in [0, 1]")
        if not 0.0 < self.epsilon_fraction <= 1.0:
            raise UserError(f"algo.epsilon_fraction={self.epsilon_fraction} must be in (0, 1]")
        if self.epsilon_schedule not in EPSILON_SCHEDULES:
            raise UserError(
                f"algo.epsilon_schedule={self.epsilon_schedule} is not known; "
                f"use {' or '.join(EPSILON_SCHEDULES)}"
            )
        exponential = self.epsilon_schedule == "exponential"
        if exponential and min(self.epsilon_start, self.epsilon_end) <= 0:
            raise UserError(
                "algo.epsilon_schedule=exponential needs epsilon_start and epsilon_end > 0 "
                "(a geometric schedule never reaches 0); use linear to decay to 0"
            )


@dataclass
class QLearningConfig(TDConfig):
    name: str = "q_learning"


@dataclass
class SarsaConfig(TDConfig):
    name: str = "sarsa"


@dataclass
class ExpectedSarsaConfig(TDConfig):
    name: str = "expected_sarsa"


@dataclass
class BanditConfig:
    """Hyperparameters of the linear contextual bandits ucb and thompson (`algo.<key>`)."""

    name: str = "ucb"
    # ucb: the width of the confidence bonus (Li et al.'s alpha); thompson: the posterior scale
    # v (theta ~ N(theta_hat, v^2 A^-1)). 0 is greedy on the ridge estimates.
    exploration: float = 0.5
    # ridge regularisation lambda: each arm's A starts as lambda * I (a prior of theta ~ 0)
    ridge: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.exploration < float("inf"):
            raise UserError(f"algo.exploration={self.exploration} must be a number >= 0")
        if not 0.0 < self.ridge < float("inf"):
            raise UserError(f"algo.ridge={self.ridge} must be positive")


@dataclass
class UCBConfig(BanditConfig):
    name: str = "ucb"


@dataclass
class ThompsonConfig(BanditConfig):
    name: str = "thompson"


@dataclass
class ValueIterationConfig:
    name: str = "value_iteration"
    gamma: float = 0.99
    # Stop when the residual max_s |V_{k+1}(s) - V_k(s)| < tol; V is then within
    # tol * gamma / (1 - gamma) of V* (for gamma < 1).
    tol: float = 1e-8

    def __post_init__(self) -> None:
        _check(self.gamma, self.tol)


@dataclass
class PolicyIterationConfig:
    name: str = "policy_iteration"
    gamma: float = 0.99
    # Policy evaluation is an exact linear solve for gamma < 1; for gamma = 1 it iterates
    # until the values change by less than tol (the policy must then reach a terminal state).
    tol: float = 1e-8

    def __post_init__(self) -> None:
        _check(self.gamma, self.tol)


def _check(gamma: float, tol: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise UserError(f"algo.gamma={gamma} must be in [0, 1]")
    if not tol > 0.0:
        raise UserError(f"algo.tol={tol} must be positive")


# network= options an algorithm can use: neural learners build MLP / CNN trunks, tabular ones keep a
# table (`network=auto` picks by observation space for both)
NEURAL = ("auto", "mlp", "nature_cnn")
TEXT_NETWORKS = ("auto", "transformer", "hf")
# the algorithms that can learn a token policy on env=text and env=llm
TEXT_ALGOS = ("ppo", "grpo")
TABULAR = ("auto", "tabular")
BANDIT = ("auto",)  # a ridge regression per arm, no network
CONTINUOUS = ("auto", "mlp")  # actor and critics on vector observations


@dataclass(frozen=True)
class AlgoEntry:
    schema: type
    description: str
    networks: tuple[str, ...]


ALGO_SCHEMAS: dict[str, AlgoEntry] = {
    "ppo": AlgoEntry(
        PPOConfig, "proximal policy optimisation with GAE (Schulman et al. 2017)",
        (*NEURAL, "transformer", "hf"),
    ),
    "grpo": AlgoEntry(
        GRPOConfig, "group relative policy optimisation on env=text / env=llm (Shao et al. 2024)",
        TEXT_NETWORKS,
    ),
    "dqn": AlgoEntry(
        DQNConfig,
        "deep Q-network; flags: double, dueling, n_steps, prioritized (Mnih et al. 2015)",
        NEURAL,
    ),
    "q_learning": AlgoEntry(
        QLearningConfig, "tabular Q-learning, off-policy TD control (Watkins 1989)", TABULAR
    ),
    "sarsa": AlgoEntry(
        SarsaConfig, "tabular SARSA, on-policy TD control (Rummery & Niranjan 1994)", TABULAR
    ),
    "expected_sarsa": AlgoEntry(
        ExpectedSarsaConfig, "tabular expected SARSA (van Seijen et al. 2009)", TABULAR
    ),
    "value_iteration": AlgoEntry(
        ValueIterationConfig, "value iteration on the env's exact model (Bellman 1957)", TABULAR
    ),
    "policy_iteration": AlgoEntry(
        PolicyIterationConfig, "policy iteration on the env's exact model (Howard 1960)", TABULAR
    ),
    "ucb": AlgoEntry(
        UCBConfig, "linear UCB contextual bandit, one ridge model per arm (Li et al. 2010)",
        BANDIT,
    ),
    "thompson": AlgoEntry(
        ThompsonConfig, "linear Thompson sampling contextual bandit (Agrawal & Goyal 2013)",
        BANDIT,
    ),
    "reinforce": AlgoEntry(
        ReinforceConfig, "Monte-Carlo policy gradient with a learned baseline (Williams 1992)",
        NEURAL,
    ),
    "a2c": AlgoEntry(
        A2CConfig, "synchronous n-step advantage actor-critic (Mnih et al. 2016)", NEURAL
    ),
    "a3c": AlgoEntry(
        A3CConfig, "asynchronous advantage actor-critic, worker processes (Mnih et al. 2016)",
        NEURAL,
    ),
    "trpo": AlgoEntry(
        TRPOConfig, "trust region policy optimisation: CG natural step, line search (Schulman "
        "et al. 2015)", NEURAL,
    ),
    "sac": AlgoEntry(
        SACConfig, "soft actor-critic, twin critics, learned entropy (Haarnoja et al. 2018)",
        CONTINUOUS,
    ),
    "td3": AlgoEntry(
        TD3Config, "twin delayed DDPG: clipped double-Q, delayed, smoothed (Fujimoto et al. 2018)",
        CONTINUOUS,
    ),
    "ddpg": AlgoEntry(
        DDPGConfig, "deep deterministic policy gradient (Lillicrap et al. 2016)", CONTINUOUS
    ),
}


# Keys that were renamed so that one concept has one name in every algorithm (old -> new): an old
# name gets a one-line "renamed to" error instead of a silent default.
RENAMED_KEYS: dict[type, dict[str, str]] = {
    PPOConfig: {"adam_eps": "optimizer_eps"},
    ReinforceConfig: {"adam_eps": "optimizer_eps"},
    A2CConfig: {"eps": "optimizer_eps"},
    A3CConfig: {"eps": "optimizer_eps"},
    DQNConfig: {
        "n_step": "n_steps",
        "exploration_initial_eps": "epsilon_start",
        "exploration_final_eps": "epsilon_end",
        "exploration_fraction": "epsilon_fraction",
        "alpha": "priority_alpha",
        "beta_start": "priority_beta_start",
    },
    **{
        cls: {"alpha": "lr", "alpha_schedule": "lr_schedule", "alpha_omega": "lr_omega",
              "alpha_end": "lr_end"}
        for cls in (QLearningConfig, SarsaConfig, ExpectedSarsaConfig)
    },
}
