"""Samplers and the evaluation grid on hand-built scores (SPEC sections 3-5)."""

import math

import numpy as np
import pandas as pd
import pytest

from condi.evaluation.grid import Videos, baseline_rows, student_rows
from condi.evaluation.metrics import auroc
from condi.evaluation.samplers import equidistant, prefix_means, split_choice, split_prediction

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
    # random at K = 1: per seed, video 0 is right iff its first drawn clip is 0 or 4; video 1
    # always. The draws: one permutation per video, in video order, from default_rng(seed).
    accs = []
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        first = rng.permutation(5)[0]
        rng.permutation(2)
        accs.append(100.0 * ((first in (0, 4)) + 1) / 2)
    assert df.loc[("random", "1"), "top1"] == pytest.approx(np.mean(accs))
    assert df.loc[("random", "1"), "top1_std"] == pytest.approx(np.std(accs, ddof=1))
    assert len(set(accs)) == 2  # the seeds disagree: the std is not trivially 0
    assert df.loc[("random", "3"), "n_short"] == 1 and df.loc[("random", "1"), "n_seeds"] == 3
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
    # Ks = 1 = K: the student alone classifies its lowest-entropy clip (clip 0 of each video:
    # all tie); it is uniform, weight 1 - H / log C = 0, so the plain mean is used: uniform,
    # argmax class 0: video 0 (label 0) right, video 1 (label 1) wrong
    assert split.loc[1] == pytest.approx(50.0)
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


def test_split_choice_never_gives_the_student_clip_to_the_teacher():
    # clip 2 has both the lowest entropy and the highest z~: the student takes it, so the
    # teacher gets the next highest z~ of the others (clips 0 and 3), never clip 2 again
    z = np.array([0.7, 0.1, 0.9, 0.5, 0.2])
    h = np.array([0.6, 0.5, 0.1, 0.4, 0.9])
    s_clips, t_clips = split_choice(z, h, k=3, ks=1)
    assert s_clips.tolist() == [2] and t_clips.tolist() == [0, 3]
    s_clips, t_clips = split_choice(z, h, k=3, ks=2)
    assert s_clips.tolist() == [2, 3] and t_clips.tolist() == [0]
    s_clips, t_clips = split_choice(z, h, k=3, ks=0)  # inference (b): top K by z~
    assert s_clips.tolist() == [] and t_clips.tolist() == [2, 0, 3]
    s_clips, t_clips = split_choice(z, h, k=5, ks=2)  # K >= N: the teacher takes every clip
    assert s_clips.tolist() == [] and t_clips.tolist() == [0, 1, 2, 3, 4]
    s_clips, t_clips = split_choice(z, h, k=2, ks=4)  # Ks > K is capped at K
    assert s_clips.tolist() == [2, 3] and t_clips.tolist() == []


@pytest.mark.parametrize("seed", range(20))
def test_split_choice_properties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    k = int(rng.integers(1, n))
    ks = int(rng.integers(0, k + 1))
    z, h = rng.random(n), rng.random(n)
    s_clips, t_clips = split_choice(z, h, k, ks)
    assert len(s_clips) == ks and len(t_clips) == k - ks
    assert not set(s_clips.tolist()) & set(t_clips.tolist())
    assert set(s_clips.tolist()) == set(np.argsort(h)[:ks].tolist())
    rest = sorted(set(range(n)) - set(s_clips.tolist()), key=lambda i: -z[i])
    assert t_clips.tolist() == rest[: k - ks]


def test_split_prediction_falls_back_to_the_plain_mean_and_dense():
    tp = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    sp = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    h = np.full(3, np.log(2))
    # teacher weights z~ = 0 and student weights 1 - H / log 2 = 0: the plain mean of the 2
    p, s_clips, t_clips = split_prediction(tp, sp, np.zeros(3), h, k=2, ks=1)
    assert s_clips.tolist() == [0] and t_clips.tolist() == [1]
    assert p.tolist() == pytest.approx([0.25, 0.75])
    # K >= N: the teacher's dense mean, whatever the weights
    p, s_clips, t_clips = split_prediction(tp, sp, np.array([0.9, 0.1, 0.1]), h, k=3, ks=1)
    assert p.tolist() == pytest.approx([1 / 3, 2 / 3]) and s_clips.tolist() == []


def test_split_prediction_weights_below_one_are_still_weights():
    # z~ 0.6 and 0.2 sum to 0.8: a weighted mean, not the plain one
    tp = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    z = np.array([0.6, 0.2, 0.1])
    p, _, t_clips = split_prediction(tp, tp, z, np.zeros(3), k=2, ks=0)
    assert t_clips.tolist() == [0, 1]
    assert p.tolist() == pytest.approx([0.75, 0.25])
