"""TRPO (Schulman et al. 2015, "Trust Region Policy Optimization", arXiv:1502.05477), with GAE
advantages and a critic fitted separately (Schulman et al. 2016), for discrete and continuous
actions.

Read top to bottom: the pure math (the surrogate, the KL of two policies, conjugate gradient),
then one iteration:
1. a rollout of n_steps x num_envs with the current policy, GAE(lambda) advantages (the
   actor-critic family's `RolloutCollector`: a time-limit cut bootstraps from V(final obs));
2. g = grad L(theta) of the surrogate L = mean_t[pi(a_t|s_t) / pi_old(a_t|s_t) A_t];
3. the natural direction x = F^-1 g by conjugate gradient, F the Fisher matrix = the Hessian of
   the mean KL(pi_old || pi) at theta_old, used only through Fisher-vector products (a second
   backward pass), plus cg_damping * I (appendix C of the paper);
4. the largest step on the trust region's boundary, beta x with beta = sqrt(2 max_kl / x'Fx),
   shrunk by line_search_shrink until the mean KL is <= max_kl and the surrogate improved
   (appendix C); if no try qualifies the policy stays as it was;
5. the critic: n_epochs passes of Adam over the rollout in minibatches, on the GAE returns.

Logged: policy/approx_kl = the mean KL of the step taken (exact, not a sample estimate),
policy/surrogate_improvement, policy/line_search_steps (tries used; line_search_steps + 1 means
none qualified), and the family's V, GAE advantages, Q = A + V and explained variance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltrain import tags
from rltrain.algos.actor_critic import (
    Rollout,
    RolloutCollector,
    check_actor_critic_env,
    flat_batch,
    record_histograms,
    record_losses,
    record_values,
    to_env_actions,
)
from rltrain.algos.base import Algorithm, Context, check_iteration_fits, obs_to_tensor
from rltrain.blocks.optim import Adam
from rltrain.config.algos import TRPOConfig
from rltrain.errors import UserError
from rltrain.networks import build_actor_critic


# --- pure math ----------------------------------------------------------------------------------
def surrogate(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, adv: torch.Tensor
) -> torch.Tensor:
    """L(theta) = mean_t[exp(log pi(a_t|s_t) - log pi_old(a_t|s_t)) A_t] (eq. 14)."""
    return (torch.exp(log_prob - old_log_prob) * adv).mean()


def categorical_kl(old_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(p_old || p) = sum_a p_old(a) (log p_old(a) - log p(a)), per state."""
    old_log_p = torch.log_softmax(old_logits, dim=-1)
    return (old_log_p.exp() * (old_log_p - torch.log_softmax(logits, dim=-1))).sum(-1)


def gaussian_kl(
    old_mean: torch.Tensor, old_log_std: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """KL(N_old || N) of diagonal Gaussians, per state:
    sum_i [log s_i - log s_old,i + (s_old,i^2 + (m_old,i - m_i)^2) / (2 s_i^2) - 1/2].
    The same for tanh-squashed Gaussians: KL is invariant under the bijection tanh."""
    var_ratio = torch.exp(2.0 * (old_log_std - log_std))
    diff = (old_mean - mean) * torch.exp(-log_std)
    return (log_std - old_log_std + 0.5 * (var_ratio + diff.pow(2)) - 0.5).sum(-1)


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, tol: float = 1e-10
) -> torch.Tensor:
    """x ~ A^-1 b for symmetric positive definite A given as v -> A v (Hestenes & Stiefel 1952):
    x_0 = 0, r_0 = p_0 = b; alpha = r'r / p'Ap, x += alpha p, r -= alpha Ap,
    p = r + (r'r)_new / (r'r)_old p; stops after `iters` or once r'r < tol."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r.dot(r)
    for _ in range(iters):
        if rr < tol:
            break
        ap = matvec(p)
        alpha = rr / p.dot(ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r.dot(r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def trust_region_step(
    direction: torch.Tensor, fisher_direction: torch.Tensor, max_kl: float
) -> torch.Tensor:
    """beta x with beta = sqrt(2 delta / x'Fx): where the quadratic model of the KL,
    (1/2) (beta x)' F (beta x), equals delta (appendix C)."""
    curvature = direction.dot(fisher_direction).clamp(min=1e-12)
    return torch.sqrt(2.0 * max_kl / curvature) * direction


# --- the algorithm ------------------------------------------------------------------------------
def _flat(tensors: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


class TRPO(Algorithm):
    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_actor_critic_env("trpo", obs_space, action_space)

    def __init__(self, cfg: TRPOConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env = ctx.env
        steps = cfg.n_steps * env.num_envs
        check_iteration_fits(ctx, "trpo", steps, "algo.n_steps x env.num_envs")
        if ctx.cfg.network.shared_trunk:
            raise UserError(
                "algo=trpo fits the critic apart from the policy: network.shared_trunk=true would "
                "let the critic's steps move the policy outside its trust region; remove it"
            )
        self.net = build_actor_critic(
            env.single_observation_space, env.single_action_space, ctx.cfg.network
        ).to(ctx.device)
        self.policy_params = self.net.policy_parameters()
        policy_ids = {id(p) for p in self.policy_params}
        self.critic_params = [p for p in self.net.parameters() if id(p) not in policy_ids]
        self.critic_optimizer = Adam(self.critic_params, lr=cfg.lr, eps=cfg.optimizer_eps)
        self.action_space = env.single_action_space
        self.collector = RolloutCollector(
            env, cfg.n_steps, ctx.device, env.reset(seed=ctx.cfg.seed)
        )
        self._last: Rollout | None = None

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        actions, _, _ = self.net.act(obs_to_tensor(obs, self.ctx.device), deterministic)
        return to_env_actions(actions, self.action_space)

    def mean_kl(
        self, obs: torch.Tensor, old: tuple[torch.Tensor, torch.Tensor | None]
    ) -> torch.Tensor:
        """mean_t KL(pi_old(.|s_t) || pi(.|s_t)) at the current weights."""
        out, log_std = self.net.policy(obs)
        if log_std is None:
            return categorical_kl(old[0], out).mean()
        assert old[1] is not None
        return gaussian_kl(old[0], old[1], out, log_std).mean()

    def _set_policy(self, flat: torch.Tensor) -> None:
        with torch.no_grad():
            offset = 0
            for p in self.policy_params:
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    def policy_step(self, obs: torch.Tensor, actions: torch.Tensor, adv: torch.Tensor) -> None:
        """Steps 2-4: the natural gradient step inside the trust region, by line search."""
        cfg, rec = self.cfg, self.ctx.recorder
        with torch.no_grad():
            old_log_prob = self.net.evaluate(obs, actions)[0]
            old = self.net.policy(obs)
        log_prob, entropy, _ = self.net.evaluate(obs, actions)
        loss = surrogate(log_prob, old_log_prob, adv)
        g = _flat(torch.autograd.grad(loss, self.policy_params))
        rec.scalar(tags.ACTOR_GRAD_NORM, torch.linalg.vector_norm(g))

        # F v = d/dtheta (grad KL . v), + damping v; grad KL is built once with its graph
        kl = self.mean_kl(obs, old)
        grad_kl = _flat(torch.autograd.grad(kl, self.policy_params, create_graph=True))

        def fisher(v: torch.Tensor) -> torch.Tensor:
            hvp = torch.autograd.grad(grad_kl.dot(v), self.policy_params, retain_graph=True)
            return _flat(hvp) + cfg.cg_damping * v

        direction = conjugate_gradient(fisher, g, cfg.cg_iters)
        full_step = trust_region_step(direction, fisher(direction), cfg.max_kl)
        theta_old = _flat([p.detach() for p in self.policy_params]).clone()

        accepted_kl, improvement, tries = 0.0, 0.0, cfg.line_search_steps + 1
        with torch.no_grad():
            for k in range(cfg.line_search_steps):
                self._set_policy(theta_old + cfg.line_search_shrink**k * full_step)
                new_kl = float(self.mean_kl(obs, old))
                new_log_prob = self.net.evaluate(obs, actions)[0]
                gain = float(surrogate(new_log_prob, old_log_prob, adv) - loss)
                if new_kl <= cfg.max_kl and gain > 0:
                    accepted_kl, improvement, tries = new_kl, gain, k + 1
                    break
            else:
                self._set_policy(theta_old)  # nothing qualified: keep the old policy
        rec.scalar(tags.APPROX_KL, accepted_kl)
        rec.scalar(tags.SURROGATE_IMPROVEMENT, improvement)
        rec.scalar(tags.LINE_SEARCH_STEPS, tries)
        record_losses(rec, -loss.detach(), None, entropy.detach().mean())

    def fit_critic(self, obs: torch.Tensor, returns: torch.Tensor) -> None:
        """Step 5: minibatch regression of V on the GAE returns."""
        cfg, n = self.cfg, obs.shape[0]
        for _ in range(cfg.n_epochs):
            order = torch.randperm(n, device=obs.device)
            for start in range(0, n, cfg.batch_size):
                rows = order[start : start + cfg.batch_size]
                loss = (self.net.value(obs[rows]) - returns[rows]).pow(2).mean()
                self.critic_optimizer.zero_grad()
                loss.backward()
                self.ctx.recorder.scalar(tags.GRAD_NORM, self.critic_optimizer.grad_norm())
                self.critic_optimizer.step()
                self.ctx.recorder.scalar(tags.VALUE_LOSS, loss.detach())

    def iterate(self) -> int:
        cfg = self.cfg
        rollout = self.collector.collect(self.net, cfg.gamma, cfg.gae_lambda)
        obs, actions, advantages, returns = flat_batch(rollout, cfg.normalize_advantages)
        self.policy_step(obs, actions, advantages)
        self.fit_critic(obs, returns)
        record_values(self.ctx.recorder, rollout.values, rollout.advantages, rollout.returns)
        self._last = rollout
        return cfg.n_steps * self.ctx.env.num_envs

    def diagnostics(self) -> None:
        if self._last is not None:
            last = self._last
            record_histograms(self.ctx.recorder, last.values, last.advantages, last.returns)

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "obs": torch.from_numpy(np.ascontiguousarray(self.collector.obs)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.collector.obs = state["obs"].numpy()

