"""Time of Table III's paired bootstrap (condi.tables.table3): 2000 resamples of a fold's
comparisons at a few sizes, printed in one run (a benchmark, not a test)."""

from __future__ import annotations

import time

import numpy as np

from condi.tables import table3


def main() -> None:
    rng = np.random.default_rng(0)
    for comparisons, videos in ((1, 300), (60, 500), (60, 3783), (60, 20000)):
        x = rng.integers(0, 2, (comparisons, videos)).astype(float)
        t0 = time.perf_counter()
        table3.bootstrap_means(x, 2000, rng)
        print(
            f"{comparisons:3d} comparisons x {videos:6d} videos, 2000 resamples: "
            f"{time.perf_counter() - t0:.3f} s"
        )


if __name__ == "__main__":
    main()
