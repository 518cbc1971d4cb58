"""`rltrain export RUN --format onnx|torchscript`: a run's deterministic policy as one file.

The file holds the module of `rltrain.networks.policy` for the run's network (MLP or Nature CNN):
input `obs`, a batch in the dtype the policy takes (float32 for Box observations, uint8 frames,
int64 state indices); outputs `action` (the greedy / mean action, as the env takes it) and `value`
(V(s), actor-critics with a value head) or `q_values` (Q(s, .), DQN). Its metadata says what the
observation must be (the env's preprocessing), the spaces and the run: ONNX `metadata_props`;
TorchScript an extra file `rltrain.json` (`torch.jit.load(path, _extra_files={"rltrain.json":
""})`). ONNX goes through torch's TorchScript-based exporter, which needs the `onnx` package only
(the `export` extra, with onnxruntime to run the file).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from rltrain.errors import UserError

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXTRA_FILE = "rltrain.json"
ONNX_OPSET = 17


def export_run(run_dir: Path, which: str, fmt: str, out: Path | None) -> Path:
    """Writes the policy of `run_dir`'s `which` checkpoint as `fmt` to `out` (default
    RUN/export/policy_<which>.<ext>) and returns the path."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: use onnx or torchscript")
    if fmt == "onnx":
        _require_onnx()
    from rltrain.app.commands import build_agent

    loaded = build_agent(run_dir, which)
    cfg = loaded.cfg
    module = loaded.algo.policy_module()
    if module is None:
        raise UserError(
            f"algo={cfg.algo.name} has no neural-network policy to export (a table or a model "
            "of its own); export works for ppo, a2c, a3c, reinforce and dqn"
        )
    path = out if out is not None else run_dir / "export" / f"policy_{which}{FORMATS[fmt]}"
    metadata = policy_metadata(loaded, which, module.output_names)
    example = example_batch(loaded.observation_space)
    path.parent.mkdir(parents=True, exist_ok=True)
    import torch

    module.eval().requires_grad_(False)  # a loaded file then hands out plain tensors
    with torch.no_grad(), warnings.catch_warnings():
        # tracing warns about Python values it records as constants (the action bounds) and the
        # exporter about its own deprecation: neither is the user's business
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            traced = torch.jit.trace(module, (example,))
            extra = {EXTRA_FILE: json.dumps(metadata, indent=2)}
            torch.jit.save(traced, str(path), _extra_files=extra)  # type: ignore[no-untyped-call]
        else:
            write_onnx(module, example, path, metadata)
    print(
        f"exported {cfg.algo.name} on {cfg.env.name} ({which} checkpoint, step "
        f"{loaded.state['step']:,}) to {path}: input obs {metadata['input']}; outputs "
        f"{', '.join(module.output_names)}"
    )
    return path


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        message = "--format onnx needs the onnx package: pip install 'rltrain[export]'"
        raise UserError(message) from None


def example_batch(space: Any) -> Any:
    """A batch of two observations as the policy takes them (the trace's example input)."""
    import gymnasium as gym
    import numpy as np
    import torch

    from rltrain.algos.base import obs_to_tensor

    if isinstance(space, gym.spaces.Discrete):
        return torch.zeros(2, dtype=torch.int64)
    if not isinstance(space, gym.spaces.Box):
        raise UserError(f"export needs Box or Discrete observations, not {space}")
    return obs_to_tensor(np.zeros((2, *space.shape), dtype=space.dtype), torch.device("cpu"))


def policy_metadata(loaded: Any, which: str, outputs: tuple[str, ...]) -> dict[str, str]:
    """String key/values about the file: what goes in, what comes out, where it came from."""
    import gymnasium as gym

    from rltrain import __version__
    from rltrain.envs.factory import observation_preprocessing

    cfg, obs_space, action_space = loaded.cfg, loaded.observation_space, loaded.action_space
    if isinstance(obs_space, gym.spaces.Discrete):
        dtype, shape = "int64", "[batch]"
    else:
        dtype = "uint8" if str(obs_space.dtype) == "uint8" else "float32"
        shape = "[batch, " + ", ".join(map(str, obs_space.shape)) + "]"
    if isinstance(action_space, gym.spaces.Discrete):
        action = f"int64 [batch]: the greedy action index in 0..{int(action_space.n) - 1}"
    else:
        action = (
            "float32 [batch, " + ", ".join(map(str, action_space.shape)) + "]: the mean action, "
            f"clipped to the box [{action_space.low.tolist()}, {action_space.high.tolist()}]"
        )
    described = {
        "action": action,
        "value": "float32 [batch]: V(s), the critic's value estimate",
        "q_values": "float32 [batch, n_actions]: Q(s, .)",
    }
    return {
        "producer": f"rltrain {__version__}",
        "algo": cfg.algo.name,
        "env": cfg.env.name,
        "env_id": str(getattr(cfg.env, "id", None) or getattr(cfg.env, "game", cfg.env.name)),
        "checkpoint": f"{which} ({loaded.checkpoint.name}, step {loaded.state['step']})",
        "input": f"{dtype} {shape}",
        "preprocessing": observation_preprocessing(cfg.env, obs_space),
        "observation_space": str(obs_space),
        "action_space": str(action_space),
        "outputs": "; ".join(f"{name}: {described[name]}" for name in outputs),
        "output_names": ",".join(outputs),  # the order of the module's outputs
        "network": network_name(cfg.network.name, obs_space),
    }


def network_name(name: str, obs_space: Any) -> str:
    """The trunk `network.name=auto` picked for these observations."""
    from rltrain.networks.builders import is_image_space

    if name != "auto":
        return name
    return "nature_cnn" if is_image_space(obs_space) else "mlp"


def write_onnx(module: Any, example: Any, path: Path, metadata: dict[str, str]) -> None:
    """The module as ONNX with a dynamic batch axis, `metadata` in its metadata_props."""
    import onnx
    import torch

    names = list(module.output_names)
    axes = {name: {0: "batch"} for name in ["obs", *names]}
    torch.onnx.export(
        module, (example,), str(path), input_names=["obs"], output_names=names,
        dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False,
    )  # fmt: skip
    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
