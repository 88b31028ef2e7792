"""torch.distributed: 2 CPU processes on gloo (torchrun) against the single-process result
(issue 5.6). Per optimiser step both see the same global batch, each rank / micro-batch the
same half of it; so the parameters must agree up to float summation order."""

import os
import shutil
import subprocess

import pytest
import torch
import yaml

from condi.data.indexed import load_data
from condi.models import build_model
from condi.models.checkpoint import load_model
from condi.runtime import seed_everything
from condi.training.distributed import GlobalBatchSampler
from condi.training.teacher import train_teacher
from tests.conftest import tiny_params


def test_ranks_split_each_global_batch():
    full = list(GlobalBatchSampler(23, 8, seed=3))
    r0 = list(GlobalBatchSampler(23, 8, seed=3, rank=0, world=2))
    r1 = list(GlobalBatchSampler(23, 8, seed=3, rank=1, world=2))
    assert [a + b for a, b in zip(r0, r1, strict=True)] == full
    assert sorted(i for b in full for i in b) == list(range(23))
    # a final batch with fewer than 2 clips per part is dropped for every rank alike
    assert len(list(GlobalBatchSampler(19, 8, seed=0, world=2, parts=2))) == 2
    assert len(list(GlobalBatchSampler(20, 8, seed=0, world=2, parts=2))) == 3
    # one process: a lone last clip would break BatchNorm in training mode
    assert [len(b) for b in GlobalBatchSampler(33, 32, seed=0)] == [32]


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_two_gloo_ranks_match_one_process_accumulating_two_micro_batches(tiny_data, tmp_path):
    _, index, cache = tiny_data
    params = tiny_params(**{"training.teacher.epochs": 1})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    ddp_out = tmp_path / "ddp.pt"
    cmd = [
        "torchrun",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "condi",
        "train",
        "teacher",
        "--params",
        str(path),
        "--dataset",
        "synthetic",
        "--teacher",
        "resnext14",
        "--index",
        str(index),
        "--cache",
        str(cache),
        "--out",
        str(ddp_out),
    ]
    run = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert run.returncode == 0, run.stderr[-3000:]

    single_out = tmp_path / "single.pt"
    single = tiny_params(**{"training.teacher.epochs": 1, "training.teacher.accumulate": 2})
    train_teacher(single, "resnext14", load_data(index, cache), single_out)

    ddp, ddp_ckpt = load_model(ddp_out, role="teacher")
    one, _ = load_model(single_out, role="teacher")
    seed_everything(params["seed"])
    spec = params["teachers"]["resnext14"]
    init = build_model(spec["arch"], ddp_ckpt["num_classes"], **spec["kwargs"])
    moved = 0
    for (name, a), (_, b), (_, c) in zip(
        ddp.named_parameters(), one.named_parameters(), init.named_parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)
        moved += not torch.allclose(a, c)
    assert moved > len(list(init.parameters())) // 2  # training really moved the weights
