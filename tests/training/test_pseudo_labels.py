"""Eq. 1 and cross-fitting on hand-made arrays (docs/method.md, section 1 and 9, issue 16.3): expectations are
written out here, never computed with the function under test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from condi.data.indexed import IndexedData
from condi.training.pseudo_labels import (
    crossfit_folds,
    crossfit_judge,
    eq1_labels,
    load_pseudo_labels,
    save_pseudo_labels,
    summary,
)


def test_eq1_by_hand():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 4.0, 0.0]])
    # the top classes are 0, 1, 2 and 0 (a tie goes to the first): right, wrong, right, wrong
    z = eq1_labels(logits, np.array([0, 0, 2, 1]))
    assert z.tolist() == [1, 0, 1, 0] and z.dtype == np.uint8
    # softmax keeps the argmax: a shifted row gives the same z
    assert eq1_labels(logits - 7.0, np.array([1, 1, 2, 0])).tolist() == [0, 1, 1, 1]


def index_of(videos):
    """An index with one clip per (video, clip): videos = [(label, group, split, n_clips)]."""
    rows = []
    for vid, (label, group, split, n) in enumerate(videos):
        for c in range(n):
            rows.append(
                {
                    "video": f"v{vid:02d}",
                    "video_id": vid,
                    "label": label,
                    "group": group,
                    "split": split,
                    "clip_index": c,
                }
            )
    df = pd.DataFrame(rows)
    return IndexedData(df, {"num_classes": 2}, "unused")


def test_crossfit_folds_without_groups_are_the_round_robin():
    # the first group by key (v0) is of class 1: classes are still drawn in id order
    videos = [(y, f"v{i}", "train", 1 + i % 3) for i, y in enumerate([1, 0] * 7)]
    videos.append((0, "val0", "val", 2))
    data = index_of(videos)
    folds = crossfit_folds(data, 3, seed=4)
    # by hand: per class in id order, the class's videos (by key) permuted, then an offset
    rng = np.random.default_rng(4)
    want = {}
    for y in (0, 1):
        keys = sorted(f"v{i}" for i, (lab, *_rest) in enumerate(videos[:-1]) if lab == y)
        order = [keys[i] for i in rng.permutation(len(keys))]
        offset = int(rng.integers(3))
        want.update({k: (i + offset) % 3 for i, k in enumerate(order)})
    rows = data.rows("train")
    groups = data.index["group"].to_numpy()[rows]
    assert folds.tolist() == [want[g] for g in groups]


@pytest.mark.parametrize("seed", range(8))
def test_crossfit_folds_keep_groups_whole_and_balance_videos(seed):
    # class 0: group A of 3 videos, B, C, D of 1; class 1: E and F of 2 videos
    videos = [(0, "A", "train", 2)] * 3 + [(0, g, "train", 1) for g in "BCD"]
    videos += [(1, "E", "train", 1)] * 2 + [(1, "F", "train", 3)] * 2
    data = index_of(videos)
    folds = crossfit_folds(data, 2, seed)
    df = data.index.iloc[data.rows("train")].assign(fold=folds)
    assert (df.groupby("group")["fold"].nunique() == 1).all()
    per_video = df.drop_duplicates("video")
    # the big group first, the small ones against it: 3 videos per fold, whatever the order
    assert sorted(per_video[per_video["label"] == 0]["fold"].value_counts().tolist()) == [3, 3]
    assert sorted(per_video[per_video["label"] == 1]["fold"].value_counts().tolist()) == [2, 2]
    assert folds.dtype == np.int64


def test_crossfit_folds_depend_on_the_seed():
    videos = [(i % 2, f"g{i // 2}", "train", 1) for i in range(40)]
    data = index_of(videos)
    assert (crossfit_folds(data, 2, 0) == crossfit_folds(data, 2, 0)).all()
    assert (crossfit_folds(data, 2, 0) != crossfit_folds(data, 2, 1)).any()


def test_crossfit_folds_fall_back_to_videos_without_a_group_column():
    data = index_of([(0, "a", "train", 2), (0, "a", "train", 1), (1, "b", "train", 1)] * 2)
    plain = IndexedData(data.index.drop(columns="group"), data.meta, "unused")
    folds = crossfit_folds(plain, 2, 0)
    video = plain.index["video"].to_numpy()[plain.rows("train")]
    assert pd.Series(folds).groupby(video).nunique().max() == 1
    assert sorted(pd.Series(folds).groupby(video).first().tolist()) == [0, 0, 0, 1, 1, 1]


def test_crossfit_judge_by_hand():
    teacher = np.array([[1.0, 0.0]] * 3 + [[0.0, 5.0], [5.0, 0.0]])  # 3 train, 2 val clips
    folds = np.array([1, 0, 1])
    calls = []

    def fold_logits(j):
        calls.append(j)
        return {0: np.array([[0.0, 9.0]]), 1: np.array([[0.0, 7.0], [8.0, 0.0]])}[j]

    judge = crossfit_judge(teacher, folds, 2, fold_logits)
    assert calls == [0, 1]
    assert judge.tolist() == [[0.0, 7.0], [0.0, 9.0], [8.0, 0.0], [0.0, 5.0], [5.0, 0.0]]
    assert teacher[0].tolist() == [1.0, 0.0]  # the teacher's logits are not overwritten
    with pytest.raises(ValueError, match="fold teacher 0"):
        crossfit_judge(teacher, folds, 2, lambda j: np.zeros((5, 2)))


def test_summary_and_round_trip(tmp_path):
    pl = {
        "rows": np.array([4, 5, 6, 9], np.int64),
        "logits": np.zeros((4, 2), np.float16),
        "z": np.array([1, 0, 0, 1], np.uint8),
        "split": np.array(["train", "train", "train", "val"]),
    }
    assert summary(pl) == {"z1_share_train": pytest.approx(1 / 3), "z1_share_val": 1.0}
    assert summary({**pl, "split": np.array(["train"] * 4)}) == {"z1_share_train": 0.5}
    save_pseudo_labels(tmp_path / "pl.npz", pl)
    back = load_pseudo_labels(tmp_path / "pl.npz")
    assert back.keys() == pl.keys() and all((back[k] == pl[k]).all() for k in pl)
    with pytest.raises(FileNotFoundError, match="pseudo-labels not found"):
        load_pseudo_labels(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="unreadable"):
        load_pseudo_labels(tmp_path / "bad.npz")


@pytest.mark.parametrize("mixed", [[0, 0, 1], [0, 1]])
def test_a_group_spanning_classes_counts_for_its_most_frequent_label(mixed):
    """Group X holds videos of both classes; it belongs to class 0 (the majority, or on a tie
    the smaller id). Class 1 is then two single videos Z, W, which stratification puts in
    different folds; counted in class 1, X (the largest) would take one fold and Z, W the
    other."""
    videos = [(y, "X", "train", 1) for y in mixed]
    videos += [(0, "Y", "train", 1), (1, "Z", "train", 1), (1, "W", "train", 1)]
    data = index_of(videos)
    for seed in range(6):
        folds = crossfit_folds(data, 2, seed)
        by_group = pd.Series(folds).groupby(data.index["group"].to_numpy()).agg(set)
        assert all(len(f) == 1 for f in by_group)
        assert by_group["Z"] != by_group["W"]
