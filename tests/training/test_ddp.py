"""DDP on CPU: two gloo processes under torchrun train a tiny model and stay in sync."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from usvid.training.config import TrainConfig
    from usvid.training.loop import fit

    store, run = sys.argv[1], sys.argv[2]
    cfg = TrainConfig(model="lanet_tiny", size=64, stage1_epochs=1, epochs=1, batch_size=2, device="cpu",
                      num_workers=0, frames_per_video=4)
    result = fit(cfg, store, run)
    torch.save(result.model.state_dict(), f"{run}/rank{os.environ['RANK']}.pt")
    """
)


def test_two_process_gloo_training_keeps_replicas_identical(tiny_store, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
         str(tiny_store.path), str(run)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(run / "rank0.pt", weights_only=True)
    r1 = torch.load(run / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    from usvid.checkpoint import load_checkpoint

    last = load_checkpoint(run / "last.pt")
    assert all(torch.equal(last.state_dict[k], r0[k]) for k in r0)
    assert len(last.train_state["rng_per_rank"]) == 2
    import json

    resolved = json.loads((run / "config.json").read_text())
    assert resolved["world_size"] == 2
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # written once (rank 0), one per epoch
