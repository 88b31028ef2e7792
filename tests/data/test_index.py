"""The clip index: one row per clip, frame counts, the validation split, bad videos, I/O."""

from __future__ import annotations

import logging
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from condi.cli import main
from condi.data import index as index_mod
from condi.data.index import (
    INDEX_COLUMNS,
    SKIPPED_NAME,
    assign_val_split,
    build_index,
    clip_rows,
    read_index,
    write_index,
)
from condi.data.records import VideoRecord
from condi.data.video import VideoError, probe_video
from tests.conftest import dataset_params


def test_one_row_per_clip(tiny_index):
    df, skipped = tiny_index
    assert tuple(df.columns) == INDEX_COLUMNS and skipped.empty
    assert df["video"].nunique() == 28
    # video ids are dense and follow the sorted paths; rows sorted by (video_id, clip_index)
    first = df.groupby("video_id")["video"].first()
    assert list(first.index) == list(range(28)) and list(first) == sorted(first)
    assert df.equals(df.sort_values(["video_id", "clip_index"]))
    for _, g in df.groupby("video_id"):
        t, n = int(g["num_frames"].iloc[0]), len(g)
        assert n == math.ceil(t / 16) == g["num_clips"].iloc[0]
        assert list(g["clip_index"]) == list(range(n))
        assert list(g["start_frame"]) == [16 * i for i in range(n)]
        assert (g["end_frame"] - g["start_frame"] == 16).all()
        assert t <= g["end_frame"].iloc[-1] < t + 16
        assert np.allclose(g["duration"], t / g["fps"])
    assert (df["fps"] == 25).all() and (df["width"] == 40).all() and (df["height"] == 32).all()
    assert (
        df["label_name"]
        .map({"MoveLeft": 0, "MoveRight": 1, "MoveUp": 2, "MoveDown": 3})
        .equals(df["label"])
    )
    meta = df.attrs["condi"]
    assert (
        meta["class_names"] == ["MoveLeft", "MoveRight", "MoveUp", "MoveDown"]
        and meta["num_classes"] == 4
    )


def test_frame_counts_match_decoding(tiny_root, tiny_index, decoded_frame_count):
    df, _ = tiny_index
    counts = df.groupby("video")["num_frames"].first()
    for video, t in counts.items():
        assert decoded_frame_count(tiny_root / video) == t, video
    assert counts.nunique() > 5  # lengths vary, and not all are multiples of 16
    assert (counts % 16 != 0).any()


def test_decoded_count_mode_agrees(tiny_root, tiny_index):
    df, _ = tiny_index
    again, _ = build_index("ucf101", tiny_root, 1, count="decode", workers=1)
    pd.testing.assert_frame_equal(again, df)


def test_manifest_aligns_with_index(tiny_root, tiny_index):
    df, _ = tiny_index
    manifest = pd.read_parquet(tiny_root / "manifest.parquet")
    assert list(zip(manifest["video"], manifest["clip_index"], strict=True)) == list(
        zip(df["video"], df["clip_index"], strict=True)
    )
    assert (manifest["label"].to_numpy() == df["label"].to_numpy()).all()
    test = df["split"] == "test"
    assert (manifest["split"][test] == "test").all() and (manifest["split"][~test] == "train").all()


def test_val_split_is_stratified_by_group_and_seeded(tiny_root, tiny_index):
    df, _ = tiny_index
    videos = df.groupby("video")[["label", "group", "split"]].first()
    # 4 training videos per class in groups of 1-2: round(0.1 * 4) = 0, raised to one group
    val = videos[videos["split"] == "val"]
    assert (val.groupby("label")["group"].nunique() == 1).all() and val["label"].nunique() == 4
    assert (videos.groupby("group")["split"].nunique() == 1).all()  # no group straddles
    assert (videos.groupby("label")["split"].apply(lambda s: (s == "test").sum()) == 3).all()
    # the index's group is the reader's <Class>/gGG, parsed here independently
    expect = [f"{v.split('/')[1]}/g{v.split('_g')[1][:2]}" for v in videos.index]
    assert list(videos["group"]) == expect
    other, _ = build_index("ucf101", tiny_root, 1, seed=5)
    val = lambda d: set(d.loc[d["split"] == "val", "video"])  # noqa: E731
    assert val(other) != val(df)
    assert val(build_index("ucf101", tiny_root, 1, seed=0)[0]) == val(df)


def test_assign_val_split_counts_and_order_independence():
    records = [
        VideoRecord(f"c{c}/v{i:03d}.avi", c, f"c{c}", "train") for c in range(3) for i in range(50)
    ]
    records += [VideoRecord(f"t/v{i}.avi", 0, "c0", "test") for i in range(7)]
    out = assign_val_split(records, 0.1, seed=0)
    val = {r.path for r in out if r.split == "val"}
    assert len(val) == 15 and all(sum(p.startswith(f"c{c}/") for p in val) == 5 for c in range(3))
    assert all(r.split == "test" for r in out if r.path.startswith("t/"))
    shuffled = [records[i] for i in np.random.default_rng(1).permutation(len(records))]
    assert {r.path for r in assign_val_split(shuffled, 0.1, seed=0) if r.split == "val"} == val
    assert {r.path for r in assign_val_split(records, 0.1, seed=1) if r.split == "val"} != val
    assert all(r.split != "val" for r in assign_val_split(records, 0.0, seed=0))
    # a reader's own val split is kept (no training video of c0 is moved, though 0.5 would)
    given = [VideoRecord("a.avi", 0, "c0", "val")]
    given += [VideoRecord(f"b{i}.avi", 0, "c0", "train") for i in range(4)]
    assert assign_val_split(given, 0.5, seed=0) == given
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            assign_val_split(records, bad, seed=0)


def test_clip_rows_by_hand():
    videos = pd.DataFrame(
        {
            "video": ["a", "b"],
            "video_id": [0, 1],
            "label": [3, 1],
            "split": ["train", "test"],
            "num_frames": [33, 16],
            "fps": [25.0, 30.0],
        }
    )
    rows = clip_rows(videos, 16)
    assert list(rows.columns) == [
        "video",
        "video_id",
        "label",
        "split",
        "clip_index",
        "num_clips",
        "start_frame",
        "end_frame",
        "num_frames",
        "fps",
    ]
    assert rows["video"].tolist() == ["a", "a", "a", "b"]
    assert rows["clip_index"].tolist() == [0, 1, 2, 0]
    assert rows["num_clips"].tolist() == [3, 3, 3, 1]
    assert rows["start_frame"].tolist() == [0, 16, 32, 0]
    assert rows["end_frame"].tolist() == [16, 32, 48, 16]
    assert rows.index.tolist() == [0, 1, 2, 3]


def test_bad_videos_are_skipped_with_reasons(tiny_root, tmp_path, bad_videos, caplog):
    root = tmp_path / "ds"
    good = sorted((tiny_root / "UCF-101" / "MoveUp").glob("*.avi"))[:2]
    (root / "UCF-101" / "MoveRight").mkdir(parents=True)
    for g in good:
        shutil.copy(g, root / "UCF-101" / "MoveRight" / g.name)
    expected = bad_videos(root / "UCF-101" / "MoveLeft")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 MoveRight\n2 MoveLeft\n")
    (lists / "trainlist01.txt").write_text("".join(f"MoveRight/{g.name} 1\n" for g in good))
    (lists / "testlist01.txt").write_text("".join(f"MoveLeft/{name}\n" for name in expected))

    out = tmp_path / "out" / "index.parquet"
    with caplog.at_level(logging.WARNING):
        assert (
            main(
                ["data", "index", "--params", str(dataset_params(tmp_path / "p.yaml", root))]
                + ["--dataset", "synthetic", "--fold", "1", "--out", str(out)]
            )
            == 0
        )
    assert f"skipped {len(expected)} of {len(expected) + 2} videos" in caplog.text
    df, meta = read_index(out)
    assert set(df["video"]) == {f"UCF-101/MoveRight/{g.name}" for g in good}
    skipped = pd.read_csv(out.parent / SKIPPED_NAME)
    assert list(skipped.columns) == ["video", "label", "label_name", "split", "reason"]
    reasons = dict(zip(skipped["video"].str.split("/").str[-1], skipped["reason"], strict=True))
    assert reasons.keys() == expected.keys()
    for name, reason in expected.items():
        assert reasons[name].startswith(reason), (name, reasons[name])
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "index.parquet",
        SKIPPED_NAME,
    ]  # no temp files


def test_probe_video_reasons(tmp_path, bad_videos):
    for name, reason in bad_videos(tmp_path).items():
        with pytest.raises(VideoError, match=reason) as info:
            probe_video(tmp_path / name)
        assert info.value.reason.startswith(reason) and str(tmp_path / name) in str(info.value)


@pytest.mark.parametrize(
    ("name", "codec", "fmt", "options", "container_options"),
    [
        ("mpeg4.avi", "mpeg4", "avi", None, None),
        ("mpeg4.mp4", "mpeg4", "mp4", None, None),
        ("bframes.mp4", "libx264", "mp4", {"preset": "veryfast", "bf": "3"}, None),
        ("faststart.mp4", "mpeg4", "mp4", None, {"movflags": "faststart"}),
        ("vp9.webm", "libvpx-vp9", "webm", {"deadline": "realtime", "cpu-used": "8"}, None),
    ],
)
def test_probe_counts_agree_with_decoding(
    tmp_path, video_file, decoded_frame_count, name, codec, fmt, options, container_options
):
    frames = np.random.default_rng(0).integers(0, 255, (37, 32, 48, 3), dtype=np.uint8)
    path = video_file(tmp_path / name, frames, 25, codec, fmt, options, container_options)
    auto, full = probe_video(path), probe_video(path, count="decode")
    assert auto == full
    assert auto.num_frames == decoded_frame_count(path) == 37
    assert (auto.width, auto.height, auto.fps) == (48, 32, 25.0)
    # cut in half, a file whose index sits in front still opens but is truncated
    data = path.read_bytes()
    (tmp_path / f"half_{name}").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="truncated|cannot open|no decodable"):
        probe_video(tmp_path / f"half_{name}")


def test_write_read_roundtrip(tiny_index, tmp_path):
    df, skipped = tiny_index
    path = tmp_path / "i" / "index.parquet"
    write_index(df, path, df.attrs["condi"], skipped=skipped)
    back, meta = read_index(path)
    pd.testing.assert_frame_equal(back, df, check_like=False)
    assert {"kind", "root", "fold", "clip_len", "class_names", "num_classes"} <= meta.keys()
    assert (meta["kind"], meta["fold"], meta["clip_len"], meta["num_classes"]) == (
        "ucf101",
        1,
        16,
        4,
    )
    assert pd.read_csv(path.parent / SKIPPED_NAME).empty
    plain = df.copy()
    plain.attrs = {}
    with pytest.raises(ValueError, match="no metadata"):
        write_index(plain, path)


def test_reader_dispatch(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="unknown dataset kind"):
        build_index("hmdb", tmp_path, 1)
    monkeypatch.setitem(index_mod.READERS, "nope", "condi.data.nope_reader:list_videos")
    with pytest.raises(ValueError, match="no reader yet"):
        index_mod.get_reader("nope")
    assert index_mod.get_reader("ucf101").__module__ == "condi.data.ucf101"


def test_clip_len_changes_the_cut(tiny_root):
    df, _ = build_index("ucf101", tiny_root, 1, clip_len=8)
    per_video = df.groupby("video")[["num_frames", "num_clips"]].first()
    assert (per_video["num_clips"] == np.ceil(per_video["num_frames"] / 8)).all()
