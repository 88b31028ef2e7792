"""Group-aware splits (issue 16.1): videos cut from one source never straddle train and val,
the test holdout, or two cross-fitting folds.

The fixtures are datasets whose group members are near-duplicates (one source image, a little
noise per video). Which videos are near-duplicates is measured here from the decoded pixels,
independently of the readers' group names, so the tests would catch a reader that names the
groups wrongly as well as a split that ignores them.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from condi.data import ucf101
from condi.data.index import assign_val_split, build_index
from condi.data.indexed import IndexedData
from condi.data.records import VideoRecord, holdout_by_unit, unit_key
from condi.data.synthetic import encode_avi
from condi.training.pseudo_labels import crossfit_folds
from tests.conftest import cached_input
from tests.data.conftest import write_video

H, W, T = 32, 40, 20
NEAR = 12.0  # mean absolute grey-level difference below which two videos are near-duplicates


def source_frames(source: int, member: int) -> np.ndarray:
    """T frames of one source (a blocky random image drifting right) with per-member noise."""
    rng = np.random.default_rng([7, source])
    blocks = rng.integers(0, 256, (H // 8, W // 8 + T, 3))
    image = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1).astype(np.float64)
    noise = np.random.default_rng([7, source, member]).normal(0, 3, (T, H, W, 3))
    frames = np.stack([image[:, t : t + W] for t in range(T)]) + noise
    return np.clip(frames, 0, 255).astype(np.uint8)


def decoded(path: Path, n: int = 8) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = list(itertools.islice(container.decode(video=0), n))
        frames = [f.to_ndarray(format="rgb24") for f in frames]
    return np.stack(frames).astype(np.float64)


def near_duplicate_pairs(root: Path, videos: list[str]) -> list[tuple[str, str]]:
    """Pairs of videos whose first frames differ by less than NEAR grey levels on average."""
    pixels = {v: decoded(root / v) for v in videos}
    pairs = [
        (a, b)
        for a, b in itertools.combinations(sorted(videos), 2)
        if np.abs(pixels[a] - pixels[b]).mean() < NEAR
    ]
    return pairs


def ucf_dataset(root: Path, classes=("Jump", "Wave"), groups=5, members=3) -> Path:
    """UCF-101 layout; groups 1..groups-1 train, the last one test; group members are
    near-duplicates of one source."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for c, name in enumerate(classes):
        for g in range(1, groups + 1):
            for m in range(1, members + 1):
                rel = f"{name}/v_{name}_g{g:02d}_c{m:02d}.avi"
                encode_avi(root / "UCF-101" / rel, source_frames(c * 100 + g, m), 25)
                (train if g < groups else test).append(f"{rel} {c + 1}" if g < groups else rel)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(classes)))
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory) -> Path:
    return cached_input("groups-ucf-v1", tmp_path_factory.mktemp("ucf_groups"), ucf_dataset)


@pytest.fixture(scope="module")
def ucf_pairs(ucf_root) -> list[tuple[str, str]]:
    videos = [p.relative_to(ucf_root).as_posix() for p in (ucf_root / "UCF-101").rglob("*.avi")]
    pairs = near_duplicate_pairs(ucf_root, videos)
    # the fixture is what it claims: exactly the members of each group are near-duplicates
    assert len(pairs) == 2 * 5 * 3  # 2 classes x 5 groups x C(3, 2)
    assert all(a.split("_c")[0] == b.split("_c")[0] for a, b in pairs)
    return pairs


def test_ucf101_group_names():
    assert ucf101.video_group("Jump", "Jump/v_Jump_g08_c01.avi") == "Jump/g08"
    # the class comes from classInd (the file may spell it differently), GG as two digits
    assert (
        ucf101.video_group("HandstandPushups", "HandstandPushups/v_HandStandPushups_g8_c02.avi")
        == "HandstandPushups/g08"
    )
    assert ucf101.video_group("Jump", "Jump/clip.avi") is None


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ucf101_val_split_and_folds_keep_near_duplicates_together(ucf_root, ucf_pairs, seed):
    df, _ = build_index("ucf101", ucf_root, 1, clip_len=8, val_fraction=0.25, seed=seed)
    split = df.groupby("video")["split"].first()
    for a, b in ucf_pairs:
        assert split[a] == split[b], (a, b)
    # one group (3 of 12 training videos) per class is validation
    val = df[df["split"] == "val"].groupby("label")["video"].nunique()
    assert val.tolist() == [3, 3]
    data = IndexedData(df, df.attrs["condi"], "unused")
    folds = pd.Series(crossfit_folds(data, 2, seed), index=data.rows("train"))
    fold_of = df.loc[folds.index].assign(fold=folds.to_numpy()).groupby("video")["fold"]
    assert (fold_of.nunique() == 1).all()  # a video's clips share a fold
    fold_of = fold_of.first()
    checked = 0
    for a, b in ucf_pairs:
        if a in fold_of and b in fold_of:
            assert fold_of[a] == fold_of[b], (a, b)
            checked += 1
    assert checked == 2 * 3 * 3  # 3 training groups per class, 3 pairs each
    # both folds are used in every class (stratified)
    assert (
        df.loc[folds.index].assign(f=folds.to_numpy()).groupby("label")["f"].nunique() == 2
    ).all()


def test_video_level_split_would_leak(ucf_root, ucf_pairs):
    """The check above has teeth: the same videos drawn one by one (no groups) put
    near-duplicates on both sides of the validation split."""
    records, _ = ucf101.list_videos(ucf_root, 1)
    alone = [VideoRecord(r.path, r.label, r.label_name, r.split) for r in records]
    leaks = 0
    for seed in range(4):
        split = {r.path: r.split for r in assign_val_split(alone, 0.25, seed)}
        leaks += sum(split[a] != split[b] for a, b in ucf_pairs)
    assert leaks > 0


def test_holdout_by_unit_by_hand():
    labels = [0] * 6 + [1] * 4
    units = ["a", "a", "b", "b", "c", "c", "d", "d", "e", "f"]

    def backwards(_label, n):
        return list(range(n))[::-1]

    # class 0: units a, b, c (2 items each), target round(0.5 * 6) = 3, visited c, b, a: c is
    # taken (the first); b would hold 4, no closer to 3 than 2: skipped, and so is a
    # class 1: units d (2), e, f, target 2, visited f, e, d: f (1), e (2), d skipped
    held = holdout_by_unit(labels, units, 0.5, backwards)
    assert held == [False, False, False, False, True, True, False, False, True, True]
    # target round(0.5 * 7) = 4, visited d, c, b, a: d (1), c (2); b (4 items) would make 6,
    # no closer to 4: skipped; a later, smaller unit is still taken: a (3)
    held = holdout_by_unit([0] * 7, ["a", "b", "b", "b", "b", "c", "d"], 0.5, backwards)
    assert held == [True, False, False, False, False, True, True]
    # never every unit of a class, however large the fraction
    held = holdout_by_unit([0, 0, 0], ["a", "a", "b"], 0.9, backwards)
    assert held == [False, False, True]
    # four units, target round(0.9 * 4) = 4: three taken, the last one never
    held = holdout_by_unit([0] * 4, ["a", "b", "c", "d"], 0.9, backwards)
    assert held == [False, True, True, True]
    # a single unit stays in training; fraction 0 holds nothing
    assert holdout_by_unit([0, 0], ["a", "a"], 0.5, backwards) == [False, False]
    assert not any(holdout_by_unit(labels, units, 0.0, backwards))
    # at least one unit when the fraction rounds to zero items
    assert holdout_by_unit([0] * 4, ["a", "b", "c", "d"], 0.05, backwards) == [
        False,
        False,
        False,
        True,
    ]
    # a unit spanning classes is drawn with its most frequent label (here 1)
    held = holdout_by_unit([0, 1, 1, 0], ["x", "x", "x", "y"], 0.5, lambda _l, n: range(n))
    assert held == [False, False, False, False]  # each class has one unit only


def test_ungrouped_val_split_is_the_video_level_draw():
    """Without groups the draw is the former per-class ``permutation(n)[:k]`` over sorted paths
    (the default datasets' val splits do not move), computed here by hand."""
    records = [
        VideoRecord(f"c{c}/v{i:02d}.avi", c, f"c{c}", "train") for c in range(2) for i in range(12)
    ]
    got = {r.path for r in assign_val_split(records, 0.25, seed=3) if r.split == "val"}
    rng = np.random.default_rng(3)
    want = set()
    for c in range(2):
        paths = sorted(r.path for r in records if r.label == c)
        want |= {paths[i] for i in rng.permutation(12)[:3]}
    assert got == want
    assert [unit_key("p", None), unit_key("p", "g")] == [("v", "p"), ("g", "g")]


KINETICS_TRAIN = "label,youtube_id,time_start,time_end,split\n"


@pytest.fixture(scope="module")
def kinetics_root(tmp_path_factory) -> Path:
    return cached_input("groups-kinetics-v1", tmp_path_factory.mktemp("k_groups"), kinetics_dataset)


def kinetics_dataset(root: Path) -> Path:
    """Kinetics layout: 2 classes x 4 YouTube videos x 3 clips each (near-duplicates)."""
    for folder in ("annotations", "train", "val"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rows, val = [], []
    for c, label in enumerate(("bowling", "surfing")):
        for y in range(5):
            ytid = f"{label[:3]}{y:08d}"
            for m in range(3):
                start = 10 * m
                name = f"{ytid}_{start:06d}_{start + 10:06d}.mp4"
                split = "train" if y < 4 else "val"
                write_video(root / split / name, source_frames(500 + 10 * c + y, m))
                (rows if split == "train" else val).append(
                    f"{label},{ytid},{start},{start + 10},{split}\n"
                )
    (root / "annotations" / "train.csv").write_text(KINETICS_TRAIN + "".join(rows))
    (root / "annotations" / "validate.csv").write_text(KINETICS_TRAIN + "".join(val))
    return root


@pytest.mark.parametrize("seed", [0, 1])
def test_kinetics_clips_of_one_youtube_video_stay_together(kinetics_root, seed):
    df, _ = build_index("kinetics", kinetics_root, 1, clip_len=8, val_fraction=0.3, seed=seed)
    videos = df.groupby("video")[["group", "split"]].first()
    assert {Path(v).name[:11] for v in videos.index} == set(videos["group"])
    assert all(Path(v).name.startswith(g) for v, g in videos["group"].items())
    pairs = near_duplicate_pairs(kinetics_root, list(videos.index))
    assert len(pairs) == 2 * 5 * 3
    for a, b in pairs:
        assert videos.loc[a, "split"] == videos.loc[b, "split"], (a, b)
    assert (videos["split"] == "val").sum() == 2 * 3  # one YouTube video per class
    data = IndexedData(df, df.attrs["condi"], "unused")
    folds = crossfit_folds(data, 3, seed)
    by_group = pd.DataFrame({"g": df["group"].to_numpy()[data.rows("train")], "f": folds})
    assert (by_group.groupby("g")["f"].nunique() == 1).all()


def folder_dataset(root: Path) -> Path:
    """Class folders; files ``<source>_<n>.avi``, near-duplicates per source."""
    for c, name in enumerate(("pour", "stir")):
        for s in range(5):
            for m in range(2):
                encode_avi(root / name / f"src{s}_{m}.avi", source_frames(900 + 10 * c + s, m), 25)
    return root


def test_folder_group_pattern_keeps_sources_whole(tmp_path):
    root = cached_input("groups-folder-v1", tmp_path / "folder", folder_dataset)
    pattern = r"^([^/]+/[^_]+)_"
    df, _ = build_index("folder", root, 1, clip_len=8, val_fraction=0.25, group_pattern=pattern)
    videos = df.groupby("video")[["group", "split"]].first()
    assert set(videos["group"]) == {f"{c}/src{s}" for c in ("pour", "stir") for s in range(5)}
    pairs = near_duplicate_pairs(root, list(videos.index))
    assert len(pairs) == 10
    for a, b in pairs:
        assert videos.loc[a, "split"] == videos.loc[b, "split"], (a, b)
    # the 20% test holdout and the val split each took one source (2 videos) per class
    counts = videos.assign(c=[v.split("/")[0] for v in videos.index]).groupby(["c", "split"]).size()
    assert counts.to_dict() == {
        (c, s): n for c in ("pour", "stir") for s, n in (("test", 2), ("train", 6), ("val", 2))
    }
    assert df.attrs["condi"]["group_pattern"] == pattern
    # without a pattern every video is its own group
    plain, _ = build_index("folder", root, 1, clip_len=8)
    assert (
        plain.groupby("video")["group"].first() == plain.groupby("video")["video"].first()
    ).all()


def test_group_pattern_errors(tmp_path, ucf_root):
    root = cached_input("groups-folder-v1", tmp_path / "folder", folder_dataset)
    with pytest.raises(ValueError, match="not a valid regular expression"):
        build_index("folder", root, 1, group_pattern="(")
    with pytest.raises(ValueError, match="folder datasets only"):
        build_index("ucf101", ucf_root, 1, group_pattern="x")
