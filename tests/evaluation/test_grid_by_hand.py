"""The evaluation grid, every column, on two videos worked out by hand (docs/method.md, sections 3-6).

Video 0 (label 0, 5 clips): the teacher says class 0 on clips 0 and 4, class 2 on clips 1-3
(the manifest marks 1-3 ambiguous). Video 1 (label 1, 2 clips): class 1 on both, clean.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from condi.evaluation.grid import (
    PER_VIDEO_COLUMNS,
    Videos,
    baseline_grid,
    baseline_rows,
    per_video_frame,
    student_accuracy,
    student_grid,
    student_rows,
)

BIG = 8.0
CLASSES = [0, 2, 2, 2, 0, 1, 1]
CLEAN = np.array([True, False, False, False, True, True, True])


def teacher_logits():
    out = np.zeros((7, 3))
    out[np.arange(7), CLASSES] = BIG
    return out


def videos(unambiguous=CLEAN):
    index = pd.DataFrame(
        {"video_id": [3] * 5 + [8] * 2, "label": [0] * 5 + [1] * 2, "clip_index": [*range(5), 0, 1]}
    )
    return Videos.from_index(index, unambiguous)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_videos_from_index():
    v = videos()
    assert v.labels.tolist() == [0, 1]
    assert v.slices == [slice(0, 5), slice(5, 7)]
    unsorted = pd.DataFrame({"video_id": [1, 0], "label": [0, 0], "clip_index": [0, 0]})
    with pytest.raises(ValueError, match="sorted"):
        Videos.from_index(unsorted)


def baselines():
    df = baseline_rows(teacher_logits(), videos(), ks=[1, 3], seeds=[0, 1, 2])
    return df.set_index(["method", "K"])


def test_equidistant_and_dense_rows():
    df = baselines()
    # K = 1: the centre clips 2 (wrong) and 1 (right)
    row = df.loc[("equidistant", "1")]
    assert row[["top1", "n_short", "clips_per_video", "unambiguous_share"]].tolist() == [
        50.0,
        0,
        1.0,
        0.5,
    ]
    # K = 3: clips 0, 2, 4 of video 0 (class 0 twice), video 1 whole (N = 2 < 3)
    row = df.loc[("equidistant", "3")]
    assert row[["top1", "n_short", "clips_per_video", "unambiguous_share"]].tolist() == [
        100.0,
        1,
        2.5,
        0.8,
    ]
    # dense: video 0 averages to class 2 (3 of 5 clips)
    row = df.loc[("dense", "dense")]
    assert row[["top1", "n_short", "clips_per_video"]].tolist() == [50.0, 0, 3.5]
    assert row["unambiguous_share"] == pytest.approx(4 / 7)


def test_videos_with_at_most_k_clips_are_dense_by_definition():
    # N = 5 and N = 2: at K = 2 video 1 is whole (N = K, not N < K); at K = 5 both are
    df = baseline_rows(teacher_logits(), videos(), ks=[1, 2, 5], seeds=[0, 1]).set_index(
        ["method", "K"]
    )
    for method in ("equidistant", "oracle", "random"):
        assert df.loc[(method, "1"), ["n_short", "n_dense"]].tolist() == [0, 0]
        assert df.loc[(method, "2"), ["n_short", "n_dense"]].tolist() == [0, 1]
        assert df.loc[(method, "5"), ["n_short", "n_dense"]].tolist() == [1, 2]
    assert df.loc[("dense", "dense"), "n_dense"] == 2
    # counts, also where they are means over seeds (random): integers, like n_short
    assert df["n_dense"].dtype == np.int64


def test_oracle_rows():
    df = baselines()
    # the highest p(true) first: video 0's clips 0 and 4, then the class-2 clips in order
    assert df.loc[("oracle", "1"), ["top1", "unambiguous_share"]].tolist() == [100.0, 1.0]
    assert df.loc[("oracle", "3"), ["top1", "unambiguous_share", "n_short"]].tolist() == [
        100.0,
        0.8,
        1,
    ]


def test_random_rows_every_column():
    df = baselines()
    top1, share = {1: [], 3: []}, {1: [], 3: []}
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        o0, o1 = rng.permutation(5), rng.permutation(2)
        for k in (1, 3):
            first = o0[:k]
            right0 = sum(CLASSES[i] == 0 for i in first) > sum(CLASSES[i] == 2 for i in first)
            top1[k].append(100.0 * (right0 + 1) / 2)
            chosen = [*CLEAN[first], *CLEAN[5 + o1[:k]]]
            share[k].append(np.mean(chosen))
    for k in (1, 3):
        row = df.loc[("random", str(k))]
        assert row["top1"] == pytest.approx(np.mean(top1[k]))
        assert row["top1_std"] == pytest.approx(np.std(top1[k], ddof=1))
        assert row["unambiguous_share"] == pytest.approx(np.mean(share[k]))
        assert row["n_seeds"] == 3
    assert df.loc[("random", "1"), "n_short"] == 0 and df.loc[("random", "3"), "n_short"] == 1
    assert df.loc[("random", "3"), "clips_per_video"] == 2.5
    assert (df["n_videos"] == 2).all() and df["n_short"].dtype == np.int64
    # the random rows come in the order of the K asked for
    order = baseline_rows(teacher_logits(), videos(), ks=[3, 1], seeds=[0, 1])
    assert order[order["method"] == "random"]["K"].tolist() == ["3", "1"]
    assert list(df.index.get_level_values("method").unique()) == [
        "random",
        "equidistant",
        "dense",
        "oracle",
    ]


def test_without_ground_truth_there_is_no_unambiguous_share():
    df = baseline_rows(teacher_logits(), videos(None), ks=[1], seeds=[0])
    assert "unambiguous_share" not in df.columns
    assert np.isnan(df.set_index("method").loc["random", "top1_std"])  # one seed: no std


# The student: z~ ranks video 0's clips 0, 4, then 1, 2, 3; its own softmax is nearly one-hot on
# class 2 at clip 2 (the lowest entropy), uniform on clips 1, 3 and 6.
CONF = np.array([-2.0, -3.0, -3.0, -3.0, -2.5, 1.0, -1.0])
STUDENT = np.array(
    [[4.0, 0, 0], [0, 0, 0], [0, 0, 20.0], [0, 0, 0], [2.0, 0, 0], [0, 3.0, 0], [0, 0, 0]]
)
Z_TEST = (np.array(CLASSES) == np.array([0] * 5 + [1] * 2)).astype(int)


def test_student_rows_condi_sr_and_its_split():
    df = student_rows(
        "condi_sr", teacher_logits(), STUDENT, CONF, videos(), [1, 3], Z_TEST, 3, [0, 1]
    )
    sr = df[df["method"] == "condi_sr"].set_index("K")
    assert sr.loc["1", ["top1", "n_short", "clips_per_video", "unambiguous_share"]].tolist() == [
        100.0,
        0,
        1.0,
        1.0,
    ]
    # K = 3: clips 0, 4, 1 of video 0 (class 0 twice): right; video 1 whole
    assert sr.loc["3", ["top1", "n_short", "clips_per_video", "unambiguous_share"]].tolist() == [
        100.0,
        1,
        2.5,
        0.8,
    ]
    # every clip the teacher gets right has a higher z~ than every clip it gets wrong
    assert (df["auroc_teacher_correct"] == 1.0).all()
    split = df[df["method"] == "condi_sr_split"].set_index("Ks")
    assert (split["K"] == "3").all() and (split["n_short"] == 1).all()
    # Ks = 0: the teacher's clips 0, 4, 1 weighted by z~: class 0 wins
    assert split.loc[0, "top1"] == 100.0
    # Ks = 1: the student's near-certain class 2 on clip 2 (weight ~1) outweighs the teacher's
    # clips 0 and 4 (z~ 0.12 + 0.08): video 0 wrong
    assert split.loc[1, "top1"] == 50.0
    assert (df["n_videos"] == 2).all()


@pytest.mark.parametrize(
    ("split_k", "n_short", "n_dense"), [(5, 1, 2), (6, 2, 2), (2, 0, 1), (1, 0, 0)]
)
def test_split_rows_count_the_short_and_the_dense_videos(split_k, n_short, n_dense):
    # N = 5 and N = 2 (video 1's clips are 5 and 6): short if N < split_k, dense if N <= split_k
    df = student_rows(
        "condi_sr", teacher_logits(), STUDENT, CONF, videos(), [1], Z_TEST, split_k, [0, 1]
    )
    split = df[df["method"] == "condi_sr_split"]
    assert split["Ks"].tolist() == [0, 1]  # the counts start again for every Ks
    assert split["n_short"].tolist() == [n_short, n_short]
    assert split["n_dense"].tolist() == [n_dense, n_dense]


@pytest.mark.parametrize(
    ("method", "order0"),
    [("st_ent", [2, 0, 4, 1, 3]), ("maxprob", [2, 0, 4, 1, 3]), ("bce_conf", [0, 4, 1, 2, 3])],
)
def test_other_students_rank_by_their_score(method, order0):
    df = student_rows(method, teacher_logits(), STUDENT, CONF, videos(), [1, 2], Z_TEST, 3, [1])
    assert set(df["method"]) == {method}  # the Ks split is condi_sr's only
    row = df.set_index("K").loc["1"]
    right = CLASSES[order0[0]] == 0
    assert row["top1"] == 100.0 * (right + 1) / 2
    assert row["unambiguous_share"] == (CLEAN[order0[0]] + 1) / 2


def test_student_accuracy_is_the_dense_student():
    p = np.exp(STUDENT) / np.exp(STUDENT).sum(1, keepdims=True)
    want = [p[:5].mean(0).argmax() == 0, p[5:].mean(0).argmax() == 1]
    assert student_accuracy(STUDENT, videos()) == pytest.approx(100.0 * np.mean(want))
    assert student_accuracy(STUDENT[:, [1, 0, 2]], videos()) == pytest.approx(0.0)
    assert sigmoid(CONF[0]) > sigmoid(CONF[4]) > sigmoid(CONF[1])


def test_per_video_frame_types():
    """The per-video file's columns keep their types whether or not a row has a Ks or a seed
    (nullable integers, not objects; correctness as 0/1 integers)."""
    _, pv = baseline_grid(teacher_logits(), videos(), ks=[1], seeds=[0])
    assert list(pv.columns) == PER_VIDEO_COLUMNS
    assert pv["Ks"].dtype == "Int64" and pv["Ks"].isna().all()
    assert pv["random_seed"].dtype == "Int64" and pv["correct"].dtype == np.int8
    assert pv["video_id"].tolist()[:2] == [3, 8]
    _, pv = student_grid("st_ent", teacher_logits(), STUDENT, CONF, videos(), [1], Z_TEST)
    assert pv["random_seed"].dtype == "Int64" and pv["random_seed"].isna().all()
    assert pv["correct"].dtype == np.int8
    empty = per_video_frame([], videos())
    assert list(empty.columns) == PER_VIDEO_COLUMNS and len(empty) == 0
