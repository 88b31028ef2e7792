"""Flips per dataset (issue 16.2): a horizontally flipped clip of a direction class trains as
its mirror class, never as itself; SSv2 is not flipped by default.

The direction a clip shows is measured here from the pixels the training loader returns (the
bright actor's horizontal drift), independently of the flip code, and compared with the label
the loader gives it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from condi.data import flips
from condi.data.dataset import ClipDataset
from condi.data.indexed import load_data
from condi.training.trainer import train_loader

SSV2 = [
    "Pushing something from left to right",
    "Pushing something from right to left",
    "Turning the camera left while filming something",
    "Turning the camera right while filming something",
    "Pulling something from left to right",  # its mirror class is not in this list
    "Holding something",
    "Bright light",  # 'right' inside a word is no direction
]
MEAN, STD = [0.45] * 3, [0.225] * 3


def test_words_and_mirror_pairs():
    assert flips.words("MoveLeft") == ("move", "left")
    assert flips.words("Pushing something from left to right")[-3:] == ("left", "to", "right")
    assert flips.words("Move_RIGHT-now") == ("move", "right", "now")
    assert flips.mirror_pairs(SSV2) == {0: 1, 1: 0, 2: 3, 3: 2}
    assert flips.mirror_pairs(["MoveLeft", "MoveRight", "MoveUp", "Circle"]) == {0: 1, 1: 0}
    assert flips.mirror_pairs(["drift leftward", "drift rightward"]) == {0: 1, 1: 0}
    assert flips.mirror_pairs(["ApplyEyeMakeup", "Archery", "Bowling"]) == {}
    assert [flips.names_direction(n) for n in SSV2] == [True] * 5 + [False, False]


def test_flip_tables_per_mode_and_dataset_default():
    names = ["MoveLeft", "MoveRight", "MoveUp", "TurnLeft"]
    assert flips.flip_table("swap", names).tolist() == [1, 0, 2, -1]
    assert flips.flip_table(True, names).tolist() == [0, 1, 2, 3]
    assert flips.flip_table(False, names).tolist() == [-1, -1, -1, -1]
    assert flips.flip_table("auto", names, "ucf101").tolist() == [1, 0, 2, -1]
    assert flips.flip_table("auto", SSV2, "ssv2").tolist() == [-1] * 7  # SSv2: no flips
    assert flips.flip_table("swap", SSV2, "ssv2").tolist() == [1, 0, 3, 2, -1, 5, 6]
    assert flips.flip_table("auto", ["a", "b"], "kinetics").tolist() == [0, 1]
    with pytest.raises(ValueError, match="data.flip"):
        flips.flip_table("mirror", names)
    assert flips.logit_permutation(np.array([1, 0, 2, -1])).tolist() == [1, 0, 2, 3]
    assert (
        flips.resolve_mode("auto", "ucf101") == "swap"
        and flips.resolve_mode("auto", None) == "swap"
    )
    assert flips.resolve_mode("auto", "ssv2") is False and flips.resolve_mode(True, "ssv2") is True
    meta = {"kind": "ssv2", "class_names": SSV2}
    assert (flips.table_for({}, meta) == -1).all()
    assert flips.table_for({"flip": "swap"}, meta).tolist()[:4] == [1, 0, 3, 2]


def drift(x: np.ndarray) -> float:
    """Horizontal drift of the bright pixels over a (3, L, H, W) normalised clip (px)."""
    bright = x.mean(axis=0) > (150 / 255 - MEAN[0]) / STD[0]
    cols = np.arange(bright.shape[2])[None, None, :]
    cx = (bright * cols).sum(axis=(1, 2)) / np.maximum(bright.sum(axis=(1, 2)), 1)
    return float(cx[-4:].mean() - cx[:4].mean())


def moving_blob_cache(path, size=24, length=8):
    """Clips of a blob moving left (row 0), right (1), up (2), left again (3)."""
    yy, xx = np.mgrid[:size, :size]
    clips = np.full((4, length, size, size, 3), 40, np.uint8)
    for row, (dx, dy) in enumerate([(-1, 0), (1, 0), (0, -1), (-1, 0)]):
        for t in range(length):
            cx, cy = size / 2 + dx * (t - length / 2), size / 2 + dy * (t - length / 2)
            clips[row, t][(xx - cx) ** 2 + (yy - cy) ** 2 < 9] = 250
    np.save(path, clips)
    return path


def samples(cache, table, seeds=range(40)):
    """(row, label, drift, flipped) of every clip under ``seeds`` augmentation seeds."""
    plain = ClipDataset(cache, np.arange(4), np.arange(4), 24, False, MEAN, STD)
    originals = [plain[i][0].numpy() for i in range(4)]
    out = []
    for seed in seeds:
        ds = ClipDataset(
            cache, np.arange(4), np.arange(4), 24, True, MEAN, STD, aug_seed=seed, flip_labels=table
        )
        for i in range(4):
            x, y, row = ds[i]
            flipped = not np.array_equal(x.numpy(), originals[i])
            if flipped:
                assert np.array_equal(x.numpy(), originals[i][..., ::-1])
            out.append((int(row), int(y), drift(x.numpy()), flipped))
    return pd.DataFrame(out, columns=["row", "label", "drift", "flipped"])


def test_flipped_left_clip_never_trains_as_itself(tmp_path):
    cache = moving_blob_cache(tmp_path / "c.npy")
    table = flips.flip_table("swap", ["MoveLeft", "MoveRight", "MoveUp", "TurnLeft"])
    df = samples(cache, table)
    sideways = df[df["row"] < 2]
    assert sideways["flipped"].any() and not sideways["flipped"].all()
    # what the pixels show decides the label: leftward drift is MoveLeft (0), rightward MoveRight
    assert ((sideways["drift"] < -2) == (sideways["label"] == 0)).all()
    assert ((sideways["drift"] > 2) == (sideways["label"] == 1)).all()
    up = df[df["row"] == 2]
    assert up["flipped"].any() and (up["label"] == 2).all()  # symmetric: flipped, same label
    turn = df[df["row"] == 3]
    assert not turn["flipped"].any() and (turn["label"] == 3).all()  # no partner: never flipped


def test_plain_flips_would_mislabel_direction_classes(tmp_path):
    """What ``data.flip: true`` does (and what every dataset did before): a flipped MoveLeft
    clip, drifting right, still labelled MoveLeft."""
    cache = moving_blob_cache(tmp_path / "c.npy")
    df = samples(cache, flips.flip_table(True, ["MoveLeft", "MoveRight", "MoveUp", "TurnLeft"]))
    wrong = df[(df["row"] == 0) & (df["drift"] > 2) & (df["label"] == 0)]
    assert len(wrong) > 0
    never = samples(cache, flips.flip_table(False, ["a", "b", "c", "d"]))
    assert not never["flipped"].any() and (never["label"] == never["row"]).all()


@pytest.fixture(scope="module")
def clean_sideways(tiny_data):
    """Index rows of the tiny synthetic dataset's clean MoveLeft/MoveRight training clips."""
    root, index, cache = tiny_data
    data = load_data(index, cache)
    manifest = pd.read_parquet(root / "manifest.parquet")
    kinds = manifest.set_index(["video", "clip_index"])["kind"]
    rows = data.rows("train")
    sub = data.index.iloc[rows]
    keys = pd.MultiIndex.from_arrays([sub["video"], sub["clip_index"]])
    clean = (kinds.reindex(keys).to_numpy() == "clean") & sub["label_name"].isin(
        ["MoveLeft", "MoveRight"]
    ).to_numpy()
    # the last clip of a video may be padded with a frozen frame: keep full clips only
    full = (sub["end_frame"] <= sub["num_frames"]).to_numpy()
    return data, rows[clean & full]


@pytest.mark.parametrize("flip", ["auto", True])
def test_training_loader_labels_follow_the_visible_direction(clean_sideways, flip):
    data, rows = clean_sideways
    cfg = {"crop_size": 32, "mean": MEAN, "std": STD, "flip": flip}
    names = data.meta["class_names"]
    left, right = names.index("MoveLeft"), names.index("MoveRight")
    seen = []
    for epoch in range(3):
        for x, y, r in train_loader(data, rows, cfg, batch_size=16, seed=0, epoch=epoch):
            for clip, label, row in zip(x.numpy(), y.tolist(), r.tolist(), strict=True):
                truth = int(data.index["label"].iloc[row])
                seen.append((drift(clip), label, truth))
    df = pd.DataFrame(seen, columns=["drift", "label", "truth"])
    moving = df[df["drift"].abs() > 2]
    assert len(moving) >= 0.8 * len(df)  # clean sideways clips do drift
    agree = (moving["drift"] < 0) == (moving["label"] == left)
    relabelled = (df["label"] != df["truth"]).sum()
    if flip == "auto":  # the default for a UCF-101-layout dataset: swap
        assert agree.all() and (moving["label"].isin([left, right])).all()
        assert relabelled > 0  # flips did happen, and were relabelled
    else:
        assert not agree.all() and relabelled == 0
