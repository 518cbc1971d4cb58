"""Stable-Baselines3 side of `make bench`: one training run in this process, JSON on the last line.

Hyperparameters are the RL Zoo presets (rl-baselines3-zoo hyperparams/*.yml), the same values
rltrain's rltrain/tuned/ presets carry.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def linear(start: float):  # RL Zoo's "lin_<x>": x * progress_remaining
    return lambda progress_remaining: progress_remaining * start


def presets(name: str) -> tuple[str, dict, int, int]:
    """(algorithm, kwargs, n_envs, total_steps)."""
    if name == "ppo_cartpole":
        return "PPO", dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                           ent_coef=0.0, learning_rate=linear(1e-3),
                           clip_range=linear(0.2)), 8, 100_000
    if name == "a2c_cartpole":
        return "A2C", dict(ent_coef=0.0), 8, 500_000
    if name == "dqn_cartpole":
        return "DQN", dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                           learning_starts=1000, gamma=0.99, target_update_interval=10,
                           train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                           exploration_final_eps=0.04,
                           policy_kwargs=dict(net_arch=[256, 256])), 1, 50_000
    if name == "dqn_cartpole_preset":  # rltrain's DQN CartPole preset (rltrain/tuned) in SB3
        from stable_baselines3.common.buffers import NStepReplayBuffer

        return "DQN", dict(learning_rate=linear(2.3e-3), batch_size=256, buffer_size=100_000,
                           learning_starts=1000, gamma=0.98, target_update_interval=10,
                           train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                           exploration_final_eps=0.04, replay_buffer_class=NStepReplayBuffer,
                           replay_buffer_kwargs=dict(n_steps=3, gamma=0.98),
                           policy_kwargs=dict(net_arch=[256, 256])), 1, 100_000
    raise SystemExit(f"unknown preset {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--algo", required=True)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--preset", required=True)
    args = parser.parse_args()

    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    algo_name, kwargs, n_envs, total = presets(args.preset)
    state = {"solved_wall": None, "solved_step": None, "returns": []}

    class Solved(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    state["returns"].append(info["episode"]["r"])
                    last = state["returns"][-10:]
                    solved = len(last) == 10 and np.mean(last) >= args.threshold
                    if state["solved_wall"] is None and solved:
                        state["solved_wall"] = time.time()
                        state["solved_step"] = self.num_timesteps
            return True

    env = make_vec_env(args.env, n_envs=n_envs, seed=args.seed)
    model = getattr(sb3, algo_name)(
        "MlpPolicy", env, seed=args.seed, device="cpu", verbose=0, **kwargs
    )
    start = time.time()
    model.learn(total_timesteps=total, callback=Solved())
    train_time = time.time() - start
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 1000)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    print(json.dumps({"solved_wall": state["solved_wall"], "solved_step": state["solved_step"],
                      "sps": total / train_time, "eval_return": float(mean)}))


if __name__ == "__main__":
    main()
