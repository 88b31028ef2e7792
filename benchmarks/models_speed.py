"""Time forward+backward (training step) and forward-only (inference) of the default models.

    PYTHONPATH=src python benchmarks/models_speed.py [--threads 2] [--batch 32] [--repeats 5]

Defaults: the pipeline's teacher (``resnext101`` with layers [1,1,1,1], base_width 16,
cardinality 8) and student (``shufflenetv2`` 0.25x) of ``params.yaml`` on 3x16x32x32 clips,
plus optional ``--channels-last``. Prints the median of ``--repeats`` timed runs after one
warm-up, the spread, and the machine load (timings on a shared machine are noisy: report the
load with them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from condi.models import build_model, build_student, to_channels_last_3d

CONFIGS = {
    "teacher resnext101 (layers 1111, w16, c8)": (
        "resnext101",
        {"layers": [1, 1, 1, 1], "base_width": 16, "cardinality": 8},
        False,
    ),
    "student shufflenetv2 0.25x (+confidence head)": ("shufflenetv2", {"width_mult": 0.25}, True),
}


def time_it(fn, repeats: int) -> list[float]:
    fn()  # warm-up (oneDNN primitive creation)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--classes", type=int, default=101)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
        f"input 3x{args.frames}x{args.size}x{args.size}, load average {os.getloadavg()[0]:.2f}"
    )
    for name, (arch, kwargs, student) in CONFIGS.items():
        model = (build_student if student else build_model)(arch, args.classes, **kwargs)
        xin = x
        if args.channels_last:
            model, xin = to_channels_last_3d(model), to_channels_last_3d(x)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def train_step(model=model, xin=xin, opt=opt, student=student):
            model.train()
            opt.zero_grad(set_to_none=True)
            out = model(xin)
            logits = out[0] if student else out
            loss = torch.nn.functional.cross_entropy(logits, y)
            if student:
                loss = loss + out[1].sigmoid().mean()
            loss.backward()
            opt.step()

        def infer(model=model, xin=xin):
            model.eval()
            with torch.no_grad():
                model(xin)

        for label, fn in (("forward+backward+step", train_step), ("forward (eval)", infer)):
            ts = time_it(fn, args.repeats)
            print(
                f"{name:48s} {label:22s} median {statistics.median(ts):.3f} s "
                f"(min {min(ts):.3f}, max {max(ts):.3f})"
            )


if __name__ == "__main__":
    main()
