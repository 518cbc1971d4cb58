"""Typed configuration shared by every run: the top level and the network / device / logger groups.

The algorithm and environment schemas are in ``rltrain/config/algos.py`` and
``rltrain/config/envs.py``. Defaults live in the dataclasses; YAML files under ``rltrain/conf/``
hold only presets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from rltrain.errors import UserError

ACTIVATIONS = ("tanh", "relu", "elu")
CONV_DTYPES = ("float32", "bfloat16")
LM_DTYPES = ("float32", "bfloat16")


@dataclass
class NetworkConfig:
    # auto: tabular for discrete observations, nature_cnn for images, mlp otherwise
    name: str = "auto"
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])  # MLP layer widths
    activation: str = "tanh"  # tanh | relu | elu
    # actor-critic: one trunk for policy and value (true) or two separate trunks (false, as SB3)
    shared_trunk: bool = False
    # Q-networks: dueling head V(s) + A(s,a) - mean_a A(s,a) (Wang et al. 2016)
    dueling: bool = False
    # orthogonal init, gain sqrt(2); policy head 0.01, value head 1 (Engstrom et al. 2020)
    ortho_init: bool = True
    # Gaussian policies (Box actions only; rejected on discrete action spaces):
    # log-std from a linear head on the actor features instead of one free parameter per action
    state_dependent_std: bool = False
    # a = tanh(u) rescaled to the action box, u ~ N(mean, std); log pi corrected by the Jacobian
    # (Haarnoja et al. 2018, appendix C). Off: the sample is clipped to the box by the algorithm.
    squash_actions: bool = False
    log_std_init: float = 0.0  # initial log-std (RL Zoo uses -2 for A2C on Pendulum)
    # nature_cnn: float32 | bfloat16. bfloat16 runs the three convolutions under autocast (the
    # weights, the 512-unit layer, the heads, the loss and the optimizer stay float32): faster on
    # CPUs with bfloat16 units (docs/benchmarks.md), at 8 mantissa bits in the trunk.
    conv_dtype: str = "float32"
    # transformer (env=text): residual width, blocks and attention heads
    width: int = 64
    layers: int = 2
    heads: int = 4
    # hf (env=llm): a Hugging Face causal language model saved on local disk (save_pretrained),
    # loaded offline; a value head on its last hidden state; LoRA adapters when lora_rank > 0
    # (the reference is then the same weights with the adapters off, not a second copy)
    path: str | None = None
    gguf_file: str | None = None  # a .gguf file inside network.path (needs the gguf package)
    lora_rank: int = 0  # 0: full fine-tuning against a frozen copy
    lora_alpha: int = 16
    lm_dtype: str = "float32"  # float32 | bfloat16 (the model's weights and activations)
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory

    def __post_init__(self) -> None:
        bad = [width for width in self.hidden_sizes if width < 1]
        if bad:
            raise UserError(
                f"network.hidden_sizes={list(self.hidden_sizes)} has a layer of width {bad[0]}; "
                "every width must be at least 1"
            )
        if self.activation not in ACTIVATIONS:
            raise UserError(
                f"network.activation={self.activation} is not known; use {', '.join(ACTIVATIONS)}"
            )
        if self.width < 1 or self.layers < 1 or self.heads < 1 or self.width % self.heads:
            raise UserError(
                f"network.width={self.width}, layers={self.layers}, heads={self.heads}: all must "
                "be positive and width a multiple of heads"
            )
        if self.lora_rank < 0 or self.lora_alpha <= 0:
            raise UserError(
                f"network.lora_rank={self.lora_rank}, lora_alpha={self.lora_alpha}: the rank must "
                "be >= 0 (0 = no LoRA) and alpha > 0"
            )
        if self.lm_dtype not in LM_DTYPES:
            raise UserError(
                f"network.lm_dtype={self.lm_dtype} is not known; use {' or '.join(LM_DTYPES)}"
            )
        if self.conv_dtype not in CONV_DTYPES:
            raise UserError(
                f"network.conv_dtype={self.conv_dtype} is not known; use "
                f"{' or '.join(CONV_DTYPES)} (float16 convolutions are slow or missing on CPUs)"
            )


@dataclass
class DeviceConfig:
    name: str = "auto"  # auto | cpu | cuda
    # torch intra-op threads; 0 = choose: 1 for small MLPs (less overhead), all cores for CNNs
    threads: int = 0
    # torch.use_deterministic_algorithms(True): reproducible GPU runs at some speed cost;
    # CPU runs are reproducible regardless
    deterministic: bool = False
    # flush-to-zero on the CPU (torch.set_flush_denormal): numbers below 1.2e-38 become 0. Adam's
    # moments decay into that range where gradients vanish, and x86 CPUs take ~20x longer per
    # operation on such denormals: a CartPole DQN's Adam step ran 10x slower on them
    flush_denormal: bool = True


@dataclass
class LoggerConfig:
    name: str = "tensorboard"  # tensorboard | mlflow | wandb | none
    # several at once, e.g. [tensorboard, mlflow]; null: the one logger.name names
    backends: list[str] | None = None
    # MLflow tracking URI; null: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db (working dir)
    mlflow_uri: str | None = None
    mlflow_experiment: str = "rltrain"  # the MLflow experiment runs go to
    wandb_project: str = "rltrain"  # the W&B project runs go to
    wandb_mode: str = "offline"  # offline (files under RUN_DIR/wandb, `wandb sync` later) | online
    log_interval: int = 2_000  # environment steps between scalar flushes
    histograms: bool = True  # values/q, values/v, values/advantage histograms at each flush
    images: bool = True  # pictures: gridworld V / arrows / |V - V*|, text's per-token V and A
    video: bool = False  # at each evaluation, record one episode to videos/step<N>-*.mp4
    progress: str = "auto"  # auto (bar on a terminal, lines otherwise) | bar | lines | none


@dataclass
class Config:
    algo: Any = MISSING  # the algorithm group (rltrain list algo)
    env: Any = MISSING  # the environment group (rltrain list env)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # tuned preset (rltrain/tuned/): auto = the one for this algo on this env id, if any;
    # none = schema defaults only; or a preset's name. A run's saved config names the one applied.
    preset: str = "auto"
    seed: int = 0  # seeds python, numpy, torch and the envs: same seed, same CPU run
    # seeds trained one after the other per job (seed, seed+1, ...), each in <run>/seed_<s>;
    # the job returns their mean final eval return (a seed-aware sweep objective)
    num_seeds: int = 1
    # train the num_seeds seeds as one batched program in one process (stacked weights, K x
    # num_envs envs), each seed still in its own <run>/seed_<s>; PPO, A2C or DQN on batched
    # CartPole, MLPs (docs/sweeps.md)
    parallel_seeds: bool = False
    total_steps: int = 100_000  # environment steps, summed over vectorized envs
    eval_interval: int = 0  # environment steps between evaluations; 0 = only at the end
    eval_episodes: int = 10  # deterministic-policy episodes per evaluation, on separate envs
    # chance of a random action during evaluation (Mnih et al. 2015 evaluate Atari with 0.05)
    eval_epsilon: float = 0.0
    checkpoint_interval: int = 50_000  # environment steps between checkpoints; 0 = only at the end
