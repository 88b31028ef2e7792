"""Samplers and the evaluation grid on hand-built scores (SPEC sections 3-5)."""

import math

import numpy as np
import pandas as pd
import pytest

from condi.evaluation.grid import Videos, baseline_rows, student_rows
from condi.evaluation.samplers import equidistant, prefix_means, split_prediction
from condi.metrics import auroc

BIG = 8.0


def one_hot_logits(classes, c=3):
    out = np.zeros((len(classes), c))
    out[np.arange(len(classes)), classes] = BIG
    return out


def videos_of(lengths, labels):
    rows = [
        {"video_id": v, "label": y, "clip_index": i}
        for v, (n, y) in enumerate(zip(lengths, labels, strict=True))
        for i in range(n)
    ]
    return Videos.from_index(pd.DataFrame(rows))


def test_equidistant_centres_and_dense_fallback():
    assert equidistant(10, 1).tolist() == [5]
    assert equidistant(10, 2).tolist() == [2, 7]
    assert equidistant(9, 3).tolist() == [1, 4, 7]
    assert equidistant(3, 5).tolist() == [0, 1, 2]


def test_prefix_means():
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    out = prefix_means(probs, np.array([1, 0, 2]))
    assert out.tolist() == [[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]]


def test_auroc_matches_pairwise_definition():
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    y = np.array([0, 0, 1, 1, 1])
    pairs = [(a, b) for a in s[y == 1] for b in s[y == 0]]
    expected = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert auroc(s, y) == pytest.approx(expected)
    assert math.isnan(auroc(s, np.ones(5)))


def test_baselines_on_a_video_where_averaging_is_pulled_away():
    # video 0 (label 0, 5 clips): clips 1, 2, 3 point at class 2, clips 0 and 4 at class 0
    # video 1 (label 1, 2 clips): both correct
    classes = [0, 2, 2, 2, 0, 1, 1]
    videos = videos_of([5, 2], [0, 1])
    df = baseline_rows(one_hot_logits(classes), videos, ks=[1, 3], seeds=[0, 1, 2]).set_index(
        ["method", "K"]
    )
    assert df.loc[("dense", "dense"), "top1"] == pytest.approx(50.0)  # 3 of 5 clips wrong
    assert df.loc[("oracle", "1"), "top1"] == pytest.approx(100.0)
    assert df.loc[("oracle", "3"), "top1"] == pytest.approx(100.0)  # 2 correct + 1 wrong still wins
    assert df.loc[("equidistant", "1"), "top1"] == pytest.approx(50.0)  # centre clip 2 is wrong
    assert df.loc[("equidistant", "3"), "n_short"] == 1  # video 1 has N = 2 < K = 3
    assert 0 <= df.loc[("random", "1"), "top1_std"] <= 50
    assert (df["n_videos"] == 2).all()


def test_student_ranking_picks_confident_clips_and_ks_split():
    classes = [0, 2, 2, 2, 0, 1, 1]
    videos = videos_of([5, 2], [0, 1])
    teacher = one_hot_logits(classes)
    # the confidence head points at the two clips the teacher gets right
    conf = np.array([3.0, -3.0, -3.0, -3.0, 2.0, 1.0, 1.0])
    student = np.zeros((7, 3))
    z_test = (np.array(classes) == np.array([0, 0, 0, 0, 0, 1, 1])).astype(int)
    df = student_rows(
        "condi_sr", teacher, student, conf, videos, [1, 3], z_test, split_k=1, split_ks=[0, 1]
    )
    by = df.set_index(["method", "K", "Ks"] if "Ks" in df else ["method", "K"])
    assert df[(df.method == "condi_sr") & (df.K == "1")]["top1"].item() == pytest.approx(100.0)
    assert df["auroc_teacher_correct"].iloc[0] == pytest.approx(1.0)
    split = df[df.method == "condi_sr_split"].set_index("Ks")["top1"]
    assert split.loc[0] == pytest.approx(100.0)  # Ks = 0 is inference (b)
    # Ks = 1: the (uniform, maximum-entropy) student classifies alone with weight 0 -> falls back
    assert 0.0 <= split.loc[1] <= 100.0
    assert len(by) == len(df)


def test_split_prediction_weights():
    tp = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    sp = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5]])
    zt = np.array([0.2, 0.9, 0.1])
    h = -(sp * np.log(sp)).sum(1)
    p, s_clips, t_clips = split_prediction(tp, sp, zt, h, k=2, ks=1)
    assert s_clips.tolist() == [0]  # lowest entropy (tie with clip 1 broken by order)
    assert t_clips.tolist() == [1]  # highest z~ among the rest
    w_s = 1 - h[0] / np.log(2)
    expected = (0.9 * tp[1] + w_s * sp[0]) / (0.9 + w_s)
    assert p == pytest.approx(expected)
