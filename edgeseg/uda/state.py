"""Resumable training state in one safetensors file: networks (students, EMA teachers, buffers), optimizer
moments, AMP scaler, every RNG state, the step and the config. No pickle: tensors are safetensors
tensors, everything else JSON metadata. Written atomically (temp + rename) so an interrupted save never
leaves a half checkpoint behind; `--resume` then continues bit-for-bit (the test checks final weights).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeseg.errors import CheckpointError
from edgeseg.io_utils import atomic_path

STATE_FORMAT = "edgeseg-train-state"
STATE_VERSION = 1


@dataclass
class RngStates:
    numpy: dict[str, Any]  # numpy Generator bit_generator.state (data sampling)
    mixing: torch.Tensor  # torch.Generator state (ClassMix / augmentation)
    torch_cpu: torch.Tensor  # global torch RNG (dropout, drop-path)
    torch_cuda: list[torch.Tensor]


def capture_rng(np_rng: np.random.Generator, mixing: torch.Generator) -> RngStates:
    cuda = [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return RngStates(np_rng.bit_generator.state, mixing.get_state(), torch.get_rng_state(), cuda)


def restore_rng(states: RngStates, np_rng: np.random.Generator, mixing: torch.Generator) -> None:
    np_rng.bit_generator.state = states.numpy
    mixing.set_state(states.mixing)
    torch.set_rng_state(states.torch_cpu)
    if states.torch_cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states.torch_cuda)


def _flatten_optimizer(opt_state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in opt_state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim/{pid}/{name}"] = value.reshape(-1) if value.dim() == 0 else value
                if value.dim() == 0:
                    scalars.setdefault(str(pid), {})[name] = "scalar"
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": opt_state["param_groups"], "entries": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split("/", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entries in info["entries"].items():
        for name, value in entries.items():
            if value == "scalar":
                state[int(pid)][name] = state[int(pid)][name].reshape(())
            else:
                state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": info["param_groups"]}


def save_train_state(
    path: str | Path,
    *,
    step: int,
    nets: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Any | None,
    rng: RngStates,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    from safetensors.torch import save_file

    tensors = {f"nets/{k}": v for k, v in nets.state_dict().items()}
    opt_tensors, opt_info = _flatten_optimizer(optimizer.state_dict())
    tensors.update(opt_tensors)
    tensors["rng/mixing"] = rng.mixing
    tensors["rng/torch_cpu"] = rng.torch_cpu
    for i, s in enumerate(rng.torch_cuda):
        tensors[f"rng/torch_cuda/{i}"] = s
    meta = {
        "format": STATE_FORMAT,
        "version": str(STATE_VERSION),
        "step": str(step),
        "config": json.dumps(config),
        "optimizer": json.dumps(opt_info),
        "rng_numpy": json.dumps(rng.numpy),
        "scaler": json.dumps(scaler.state_dict() if scaler is not None else None),
        "extra": json.dumps(extra or {}),
    }
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


@dataclass
class TrainState:
    step: int
    nets: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: RngStates
    config: dict[str, Any]
    extra: dict[str, Any]


def read_state_config(path: str | Path) -> tuple[int, dict[str, Any]]:
    """(step, config dict) of a train-state file without loading tensors."""
    from edgeseg.checkpoint import read_safetensors_header

    meta = read_safetensors_header(path).get("__metadata__") or {}
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"'{path}' is not an edgeseg training checkpoint")
    return int(meta["step"]), json.loads(meta["config"])


def load_train_state(path: str | Path) -> TrainState:
    from safetensors import safe_open

    step, config = read_state_config(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            names = list(f.keys())  # noqa: SIM118 - safe_open is not iterable
            tensors = {k: f.get_tensor(k) for k in names}
    except Exception as exc:  # safetensors raises its own types for damaged payloads
        raise CheckpointError(
            f"cannot read training checkpoint '{path}' ({exc}); it may be truncated"
        ) from None
    nets = {k[len("nets/") :]: v for k, v in tensors.items() if k.startswith("nets/")}
    optim = _unflatten_optimizer(
        {k: v for k, v in tensors.items() if k.startswith("optim/")}, json.loads(meta["optimizer"])
    )
    cuda = [
        tensors[k]
        for k in sorted(
            (k for k in tensors if k.startswith("rng/torch_cuda/")), key=lambda k: int(k.rsplit("/", 1)[1])
        )
    ]
    rng = RngStates(json.loads(meta["rng_numpy"]), tensors["rng/mixing"], tensors["rng/torch_cpu"], cuda)
    return TrainState(step, nets, optim, json.loads(meta["scaler"]), rng, config, json.loads(meta["extra"]))
