"""Issue 8.6: corrupt, missing and zero-byte videos, a class without test videos and a video
shorter than one clip. Indexing and the whole pipeline go on (the shared reference run is made
on exactly such a dataset, see conftest.py); skipped videos are listed with their reasons;
evaluation handles the class without test videos; the short video is one padded clip."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from condi.data.index import SKIPPED_NAME, read_index
from condi.evaluation.run import load_scores
from tests.reliability.conftest import (
    BASELINES,
    CACHE,
    INDEX,
    NO_TEST_CLASS,
    SHORT_FRAMES,
    SHORT_VIDEO,
    SKIPPED,
    TABLE,
    TEACHER_SCORES,
)

STUDENTS = "results/eval/synthetic/fold1/students_resnext14_resnext14half.csv"


def test_skipped_videos_are_listed_with_reasons(reference_run):
    skipped = pd.read_csv((reference_run / INDEX).parent / SKIPPED_NAME)
    got = dict(zip(skipped["video"], skipped["reason"], strict=True))
    assert set(got) == {f"UCF-101/{v}" for v in SKIPPED}
    for video, reason in SKIPPED.items():
        assert got[f"UCF-101/{video}"].startswith(reason), (video, got[f"UCF-101/{video}"])
    log = next((reference_run / "logs" / "index").glob("*.log")).read_text()
    assert f"skipped {len(SKIPPED)} of 28 videos" in log


def test_index_keeps_only_usable_videos_and_the_short_one(reference_run):
    df, meta = read_index(reference_run / INDEX)
    assert not set(df["video"]) & {f"UCF-101/{v}" for v in SKIPPED}
    assert df["video"].nunique() == 28 - len(SKIPPED)
    assert meta["num_classes"] == 4 and NO_TEST_CLASS in meta["class_names"]
    test = df[df["split"] == "test"]
    assert NO_TEST_CLASS not in set(test["label_name"])
    assert NO_TEST_CLASS in set(df.loc[df["split"] == "train", "label_name"])
    short = df[df["video"] == f"UCF-101/{SHORT_VIDEO}"]
    assert len(short) == 1 == math.ceil(SHORT_FRAMES / 16)
    assert short.iloc[0][["num_frames", "num_clips", "start_frame", "end_frame"]].tolist() == [
        SHORT_FRAMES,
        1,
        0,
        16,
    ]
    # the cached clip repeats the last frame (docs/method.md: padding), and is not all-zero
    clip = np.load(reference_run / CACHE, mmap_mode="r")[short.index[0]]
    assert clip[:SHORT_FRAMES].any()
    for t in range(SHORT_FRAMES, 16):
        assert np.array_equal(clip[t], clip[SHORT_FRAMES - 1])


def test_evaluation_covers_every_test_video_and_handles_the_empty_class(reference_run):
    df, _ = read_index(reference_run / INDEX)
    n_test = df.loc[df["split"] == "test", "video"].nunique()
    scores = load_scores(reference_run / TEACHER_SCORES)
    assert np.array_equal(scores["rows"], np.flatnonzero(df["split"] == "test"))
    assert np.isfinite(scores["logits"]).all()
    for path in (BASELINES, STUDENTS):
        ev = pd.read_csv(reference_run / path)
        assert (ev["n_videos"] == n_test).all(), path
        assert ev["top1"].between(0, 100).all() and ev["top1"].notna().all(), path
    table = pd.read_csv(reference_run / TABLE)
    assert set(table["method"]) >= {"dense", "condi_sr", "random", "oracle", "equidistant"}
    assert table["top1"].notna().all()
