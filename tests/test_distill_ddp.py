"""DistributedDataParallel: two CPU processes (gloo) launched by torchrun run one DUDA step; gradients are
averaged, so both ranks end with identical student / auxiliary-student / teacher parameters while having
trained on different batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import edgeseg

WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import numpy as np
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    from edgeseg.uda.config import load_config
    from edgeseg.uda.data_setup import load_run_data
    from edgeseg.uda.trainer import distributed, train_run

    data_root, out = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = load_config("synthetic", overrides=json.loads(sys.argv[3]))
    with distributed("cpu") as info:
        assert info.world == 2
        data = load_run_data(cfg, out, out / f"stats{info.rank}.json")
        first = data.source.batch(np.random.default_rng([cfg.seed, info.rank]), cfg.data.batch_size)[0]
        result = train_run(cfg, out, data, info, log=lambda m: None)
        params = {f"{name}.{k}": v.detach().clone() for name, module in
                  (("student", result.nets.student), ("aux", result.nets.aux[0]), ("teacher", result.nets.teachers[0]))
                  for k, v in module.named_parameters()}
        save_file(params, str(out / f"rank{info.rank}.safetensors"))
        (out / f"rank{info.rank}.json").write_text(json.dumps({"batch_sum": int(first.astype(np.int64).sum())}))
""")


@pytest.mark.slow
def test_two_process_gloo_step(tiny_uda: SimpleNamespace, tmp_path: Path) -> None:
    data_root = tiny_uda.render_tiny(tmp_path / "synth")
    overrides = tiny_uda.tiny_overrides(data_root, "iters=1", "duda.inconsistency.enabled=false")
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / "out"
    out.mkdir()
    repo = Path(edgeseg.__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(worker),
        str(data_root),
        str(out),
        json.dumps(overrides),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    assert set(r0) == set(r1) and any(k.startswith("teacher.") for k in r0)
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    sums = [json.loads((out / f"rank{r}.json").read_text())["batch_sum"] for r in (0, 1)]
    assert sums[0] != sums[1]  # each rank trained on its own batch
    assert (out / "checkpoint.safetensors").is_file()  # written once, by rank 0
