"""Share of a training step spent waiting for data (issue 3.6; target: under 10%).

Runs one epoch of the configured teacher (or student backbone) on a clip index + cache and
times, per step, how long ``next(loader)`` takes against the whole step (data + forward +
backward + optimiser). Prints both and their ratio measured in this one run.

    python benchmarks/data_wait.py --params params.yaml \
        --index data/index/synthetic_fold1.parquet --cache data/cache/synthetic_fold1.npy
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from condi.config import load_params
from condi.data.indexed import load_data
from condi.models import build_model
from condi.runtime import setup
from condi.training.trainer import train_loader


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--index", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument(
        "--model", default=None, help="teacher or student name (default: the first teacher)"
    )
    ap.add_argument(
        "--steps", type=int, default=0, help="stop after this many steps (0: one epoch)"
    )
    args = ap.parse_args()

    params = load_params(args.params)
    device = setup(params["seed"], params["threads"], params["device"])
    data = load_data(args.index, args.cache)
    models = {**params["teachers"], **params["students"]}
    name = args.model or next(iter(params["teachers"]))
    spec = models[name]
    model = build_model(spec["arch"], data.num_classes, **spec.get("kwargs", {})).to(device)
    cfg = params["training"]["teacher"]
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9)
    loader = train_loader(
        data, data.rows("train"), params["data"], cfg["batch_size"], params["seed"], 0
    )

    wait = total = 0.0
    steps = clips = 0
    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            x, y, _ = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if steps > 0:  # the first step includes one-off start-up
            wait += t1 - t0
            total += t2 - t0
            clips += len(y)
        steps += 1
        if args.steps and steps >= args.steps:
            break
    print(
        f"model {name} ({spec['arch']}), device {device}, threads {torch.get_num_threads()}, "
        f"batch {cfg['batch_size']}, {steps - 1} timed steps, {clips / total:.0f} clips/s"
    )
    print(
        f"data wait {wait:.3f} s of {total:.3f} s per epoch: share {wait / total:.3%} (target < 10%)"
    )


if __name__ == "__main__":
    main()
