"""Kinetics reader on a tiny fixture in the official CSV + flat/nested MP4 layout."""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import pytest

from condi.data import kinetics

TRAIN_CSV = """\
label,youtube_id,time_start,time_end,split,is_cc
abseiling,aaaaaaaaaaa,0,10,train,0
"passing American football (in game)",bbbbbbbbbbb,17,27,train,0
"tying tie, bow",ccccccccccc,5,15,train,1
abseiling,ddddddddddd,120,130,train,0
"tying tie, bow",eeeeeeeeeee,3,13,train,0
"passing American football (in game)",-f_-f_-f_-f,40,50,train,0
"""

VAL_CSV = """\
label,youtube_id,time_start,time_end,split
"tying tie, bow",vvvvvvvvvv1,0,10,val
abseiling,vvvvvvvvvv2,1,11,val
"passing American football (in game)",vvvvvvvvvv3,20,30,val
"""

TEST_CSV = """\
youtube_id,time_start,time_end,split
tttttttttt1,0,10,test
"""

SORTED_CLASSES = ["abseiling", "passing American football (in game)", "tying tie, bow"]


def _clip(ytid: str, start: int, end: int) -> str:
    return f"{ytid}_{start:06d}_{end:06d}.mp4"


@pytest.fixture
def kinetics_root(tmp_path, video_writer):
    root = tmp_path / "k400"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "train.csv").write_text(TRAIN_CSV)
    (root / "annotations" / "validate.csv").write_text(VAL_CSV)
    (root / "annotations" / "test.csv").write_text(TEST_CSV)
    # Train flat, varying fps and sizes; ddddddddddd is missing.
    video_writer(root / "train" / _clip("aaaaaaaaaaa", 0, 10), 5, 30, (32, 24))
    video_writer(root / "train" / _clip("bbbbbbbbbbb", 17, 27), 5, Fraction(30000, 1001), (48, 32))
    video_writer(root / "train" / _clip("ccccccccccc", 5, 15), 5, 24, (64, 48))
    video_writer(root / "train" / _clip("eeeeeeeeeee", 3, 13), 5, 25, (32, 24))
    video_writer(root / "train" / _clip("-f_-f_-f_-f", 40, 50), 5, 15, (32, 24))
    # Validation nested by label (the arrange-by-class layout); vvvvvvvvvv3 is missing.
    video_writer(
        root / "validate" / "tying tie, bow" / _clip("vvvvvvvvvv1", 0, 10), 5, 30, (32, 24)
    )
    video_writer(root / "validate" / "abseiling" / _clip("vvvvvvvvvv2", 1, 11), 5, 30, (32, 24))
    return root


def test_classes_sorted_from_train_labels_with_quotes(kinetics_root):
    records, names = kinetics.list_videos(kinetics_root, 1)
    assert names == SORTED_CLASSES
    by_path = {r.path: r for r in records}
    rec = by_path[f"train/{_clip('ccccccccccc', 5, 15)}"]
    assert (rec.label, rec.label_name, rec.split) == (2, "tying tie, bow", "train")
    rec = by_path[f"train/{_clip('bbbbbbbbbbb', 17, 27)}"]
    assert (rec.label, rec.label_name) == (1, "passing American football (in game)")
    assert f"train/{_clip('-f_-f_-f_-f', 40, 50)}" in by_path


def test_official_val_is_test_and_nested_layout(kinetics_root):
    records, _ = kinetics.list_videos(kinetics_root, 1)
    splits = {r.path: r.split for r in records}
    assert splits[f"validate/tying tie, bow/{_clip('vvvvvvvvvv1', 0, 10)}"] == "test"
    assert splits[f"validate/abseiling/{_clip('vvvvvvvvvv2', 1, 11)}"] == "test"
    assert sorted(set(splits.values())) == ["test", "train"]
    # The official test CSV (no labels) is not read.
    assert not any("tttttttttt1" in p for p in splits)
    for r in records:
        assert (kinetics_root / r.path).is_file()


def test_missing_videos_counted_not_fatal(kinetics_root, caplog):
    with caplog.at_level(logging.WARNING):
        listing = kinetics.scan(kinetics_root)
    assert len(listing.records) == 7
    assert listing.missing == [
        f"train/{_clip('ddddddddddd', 120, 130)}",
        f"validate/{_clip('vvvvvvvvvv3', 20, 30)}",
    ]
    assert "2 of 9 listed videos are missing" in caplog.text


def test_val_csv_name_and_flat_val_dir(tmp_path, video_writer):
    root = tmp_path / "k"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "train.csv").write_text(TRAIN_CSV)
    (root / "annotations" / "val.csv").write_text(VAL_CSV)
    video_writer(root / "val" / _clip("vvvvvvvvvv1", 0, 10), 3, 30, (32, 24))
    listing = kinetics.scan(root)
    assert [r.path for r in listing.records] == [f"val/{_clip('vvvvvvvvvv1', 0, 10)}"]
    assert len(listing.missing) == 8
    assert listing.missing[0].startswith("train/")


def test_mp4_fixture_decodes_with_its_fps(kinetics_root):
    path = kinetics_root / "train" / _clip("bbbbbbbbbbb", 17, 27)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert abs(float(stream.average_rate) - 29.97) < 0.01
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 5 and frames[0].shape == (32, 48, 3)


def test_errors(tmp_path, kinetics_root):
    with pytest.raises(FileNotFoundError, match="train annotations"):
        kinetics.scan(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="fold must be 1"):
        kinetics.list_videos(kinetics_root, 2)
    bad = tmp_path / "bad"
    (bad / "annotations").mkdir(parents=True)
    (bad / "annotations" / "train.csv").write_text("youtube_id,time_start\nx,1\n")
    (bad / "annotations" / "val.csv").write_text(VAL_CSV)
    with pytest.raises(ValueError, match="missing columns"):
        kinetics.scan(bad)
