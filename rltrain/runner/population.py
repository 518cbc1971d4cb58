"""The trainer loop of a population (`num_seeds=K parallel_seeds=true`): one process, one batched
program for the K seeds (PPO's or A2C's in rltrain/algos/population.py, DQN's in
dqn_population.py), and one ordinary run per seed around it (`SeedRun`: its own run directory,
curves, evaluations, checkpoints, summary)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rltrain.algos.a2c_population import A2CPopulation
from rltrain.algos.base import Context
from rltrain.algos.dqn_population import DQNPopulation
from rltrain.algos.population import ActorCriticPopulation, SeedStreams
from rltrain.algos.ppo_population import PPOPopulation
from rltrain.config.algos import A2CConfig, DQNConfig, PPOConfig
from rltrain.config.validate import typed_config
from rltrain.envs.batched_cartpole import BatchedCartPole
from rltrain.errors import UserError
from rltrain.runner.device import configure_denormals, configure_threads, select_device
from rltrain.runner.loop import SeedRun, StopFlag, job_label, make_recorder, read_checkpoint
from rltrain.runner.run_lock import run_lock
from rltrain.trackers import require_backend_packages


def train_population(
    nodes: list[DictConfig], run_dirs: list[Path], job_dir: Path, resume: bool = False
) -> list[float]:
    """Trains seed k as configured in `nodes[k]` into `run_dirs[k]`, all K at once; returns each
    seed's final eval return. Resuming needs every seed's checkpoint at the same step."""
    cfgs = [typed_config(node) for node in nodes]
    cfg = cfgs[0]
    device = select_device(cfg.device)
    configure_denormals(cfg.device)
    configure_threads(cfg.device, image_observations=False)
    require_backend_packages(cfg.logger)
    with ExitStack() as stack:
        for run_dir in run_dirs:
            stack.enter_context(run_lock(run_dir))
        saved: list[dict[str, Any] | None] = [None] * len(cfgs)
        if resume:
            saved = [read_checkpoint(c, d) for c, d in zip(cfgs, run_dirs, strict=True)]
            at = {int(state["step"]) for state in saved if state is not None}
            if len(at) > 1:
                raise UserError(
                    f"the seeds of {job_dir} have checkpoints at different steps "
                    f"({', '.join(f'{s:,}' for s in sorted(at))}); resume each seed_<s> "
                    "directory on its own with `rltrain resume <job>/seed_<s>`"
                )
        envs = BatchedCartPole(
            len(cfgs) * cfg.env.num_envs, cfg.env.max_episode_steps or 500, blocks=len(cfgs)
        )
        contexts = []
        for k, (seed_cfg, node, run_dir) in enumerate(zip(cfgs, nodes, run_dirs, strict=True)):
            recorder = make_recorder(seed_cfg, node, run_dir, saved[k], resume)
            stack.callback(recorder.close)
            contexts.append(Context(
                cfg=seed_cfg, env=envs.block(k), device=device, recorder=recorder,
                rng=np.random.default_rng(seed_cfg.seed), run_dir=run_dir,
            ))  # fmt: skip
        seeds = [c.seed for c in cfgs]
        population: ActorCriticPopulation | DQNPopulation
        if isinstance(cfg.algo, A2CConfig):
            population = A2CPopulation(cfg.algo, contexts, envs, seeds)
        elif isinstance(cfg.algo, DQNConfig):
            population = DQNPopulation(cfg.algo, contexts, envs, seeds)
        else:
            assert isinstance(cfg.algo, PPOConfig), "validation admits PPO, A2C and DQN only"
            population = PPOPopulation(cfg.algo, contexts, envs, seeds)
        shown = f"{job_label()}{cfg.algo.name}/{cfg.env.name} x{len(cfgs)} seeds (seed {cfg.seed})"
        runs = [
            SeedRun(
                member, c, node, member.ctx, run_dir, state, SeedStreams(generator),
                description=shown, show_progress=k == 0,
            )
            for k, (member, c, node, run_dir, state, generator) in enumerate(zip(
                population.members, cfgs, nodes, run_dirs, saved, population.generators,
                strict=True,
            ))
        ]  # fmt: skip
        with StopFlag() as stop:
            try:
                while not runs[0].done():  # the seeds share total_steps: they end together
                    steps = population.iterate()
                    for run in runs:
                        run.advance(steps)
                    if stop.signum is not None:
                        for run in runs[1:]:
                            run.save()
                        raise runs[0].interrupted(stop.signum, f"rltrain resume {job_dir}")
            finally:
                for run in runs:
                    run.progress.close()
            return [run.finish() for run in runs]
