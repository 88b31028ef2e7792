"""Samplers and the evaluation grid on hand-built scores (docs/method.md, sections 3-5)."""

import math

import numpy as np
import pandas as pd
import pytest

from condi.evaluation.grid import (
    PER_VIDEO_COLUMNS,
    Videos,
    baseline_grid,
    baseline_rows,
    student_grid,
    student_rows,
)
from condi.evaluation.run import evaluate_grid
from condi.evaluation.samplers import (
    equidistant,
    prefix_means,
    ranked,
    split_choice,
    split_prediction,
)
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


# -- the per-video file ----------------------------------------------------------------------


def test_per_video_rows_of_a_hand_built_grid():
    # video 3 (label 0, 5 clips): clips 1, 2, 3 point at class 2, clips 0 and 4 at class 0;
    # video 7 (label 1, 2 clips): both right. Ids 3 and 7: the file is keyed by video_id.
    classes = [0, 2, 2, 2, 0, 1, 1]
    index = pd.DataFrame(
        {"video_id": [3] * 5 + [7] * 2, "label": [0] * 5 + [1] * 2,
         "clip_index": [0, 1, 2, 3, 4, 0, 1]}
    )  # fmt: skip
    videos = Videos.from_index(index)
    df, pv = baseline_grid(one_hot_logits(classes), videos, ks=[1, 3], seeds=[0, 1, 2])
    assert list(pv.columns) == PER_VIDEO_COLUMNS
    assert set(pv["video_id"]) == {3, 7}
    got = {
        (m, k): pv[(pv.method == m) & (pv["K"] == k)].set_index("video_id")["correct"].to_dict()
        for m, k in [("dense", "dense"), ("equidistant", "1"), ("equidistant", "3")]
        + [("oracle", "1"), ("oracle", "3")]
    }
    assert got[("dense", "dense")] == {3: 0, 7: 1}  # 3 of video 3's 5 clips say class 2
    assert got[("equidistant", "1")] == {3: 0, 7: 1}  # centre clip 2 of video 3 is wrong
    assert got[("equidistant", "3")] == {3: 1, 7: 1}  # clips 0, 2, 4: two of three right
    assert got[("oracle", "1")] == {3: 1, 7: 1}
    assert got[("oracle", "3")] == {3: 1, 7: 1}
    # random: one block per seed; video 3 is right at K = 1 iff its first drawn clip is 0 or 4
    rnd = pv[(pv.method == "random") & (pv["K"] == "1")]
    assert sorted(rnd["random_seed"].unique()) == [0, 1, 2]
    for seed in (0, 1, 2):
        first = np.random.default_rng(seed).permutation(5)[0]
        by_video = rnd[rnd.random_seed == seed].set_index("video_id")["correct"]
        assert by_video[3] == int(first in (0, 4)) and by_video[7] == 1
    assert pv.loc[pv.method != "random", "random_seed"].isna().all()
    # every CSV row is the mean of its videos' correctness (random: over videos and seeds)
    for _, r in df.iterrows():
        rows = pv[(pv.method == r["method"]) & (pv["K"] == r["K"])]
        assert len(rows) == 2 * (3 if r["method"] == "random" else 1)
        assert rows["correct"].mean() * 100 == pytest.approx(r["top1"])


def test_per_video_rows_of_students_and_the_split():
    classes = [0, 2, 2, 2, 0, 1, 1]
    videos = videos_of([5, 2], [0, 1])
    teacher = one_hot_logits(classes)
    conf = np.array([-3.0, 3.0, -3.0, -3.0, 2.0, 1.0, 1.0])  # picks clip 1 (wrong) first
    z_test = (np.array(classes) == np.array([0, 0, 0, 0, 0, 1, 1])).astype(int)
    df, pv = student_grid(
        "bce_conf", teacher, np.zeros((7, 3)), conf, videos, [1, 3], z_test, split_k=1
    )
    k1 = pv[(pv.method == "bce_conf") & (pv["K"] == "1")].set_index("video_id")["correct"]
    assert k1.to_dict() == {0: 0, 1: 1}
    k3 = pv[(pv.method == "bce_conf") & (pv["K"] == "3")].set_index("video_id")["correct"]
    assert k3.to_dict() == {0: 1, 1: 1}  # clips 1, 4, then 0 (ties in order): class 0 wins
    df, pv = student_grid(
        "condi_sr", teacher, np.zeros((7, 3)), conf, videos, [1], z_test, split_k=1,
        split_ks=[0, 1],
    )  # fmt: skip
    split = pv[pv.method == "condi_sr_split"]
    assert sorted(split["Ks"].unique()) == [0, 1] and (split["K"] == "1").all()
    for _, r in df.iterrows():
        sel = (pv.method == r["method"]) & (pv["K"] == r["K"])
        sel &= pv["Ks"].isna() if pd.isna(r.get("Ks")) else pv["Ks"] == r["Ks"]
        assert pv.loc[sel, "correct"].mean() * 100 == pytest.approx(r["top1"])


def test_evaluate_grid_names_each_video_by_its_path():
    classes = [0, 2, 2, 2, 0, 1, 1]
    index = pd.DataFrame(
        {"video": ["a.avi"] * 5 + ["b.avi"] * 2, "video_id": [0] * 5 + [1] * 2,
         "label": [0] * 5 + [1] * 2, "clip_index": [0, 1, 2, 3, 4, 0, 1]}
    )  # fmt: skip
    scores = {"rows": np.arange(7), "logits": one_hot_logits(classes)}
    params = {"evaluation": {"K": [1], "Ks": [0], "Ks_K": 1, "random_seeds": [0]}}
    _, pv = evaluate_grid(params, index, scores)
    assert pv.groupby("video_id")["video"].first().to_dict() == {0: "a.avi", 1: "b.avi"}


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
    assert s_clips.dtype == np.int64
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


def test_ties_keep_temporal_order_in_long_videos():
    """Stable sorting: numpy's default sort reorders ties once a video has more than 16 clips."""
    score = np.tile([0.0, 1.0, 0.5], 20)  # 60 clips, 20 of each value
    order = ranked(score)
    assert order.tolist() == [*range(1, 60, 3), *range(2, 60, 3), *range(0, 60, 3)]
    entropy = np.tile([0.3, 0.1], 30)
    s_clips, t_clips = split_choice(np.zeros(60), entropy, k=40, ks=30)
    assert s_clips.tolist() == list(range(1, 60, 2))  # the 30 tied lowest, in temporal order
    assert t_clips.tolist() == list(range(0, 20, 2))  # z~ ties too: the earliest first


def test_ranked_orders_boolean_and_unsigned_scores():
    """A score may be a mask (Eq. 1's "teacher correct", the oracle's kind of ranking) or a
    count: negating it as such would fail (bool) or wrap around (uint8: -0 = 0 < -1 = 255)."""
    assert ranked(np.array([False, True, False, True])).tolist() == [1, 3, 0, 2]
    assert ranked(np.array([0, 2, 1], dtype=np.uint8)).tolist() == [1, 2, 0]
