"""A user's own videos: class folders, split folders, list files; AVI/mpeg4 fixtures."""

from __future__ import annotations

import logging
from collections import Counter

import av
import pytest

from condi.data import folder
from condi.data.folder import stratified_holdout


def _class_tree(base, video_writer, counts: dict[str, int], ext: str = ".avi") -> None:
    for name, n in counts.items():
        for i in range(n):
            video_writer(base / name / f"{name}_{i:02d}{ext}", 3, 25, (32, 24), seed=i)


def test_class_folders_all_train_with_seeded_stratified_test(tmp_path, video_writer):
    root = tmp_path / "mine"
    _class_tree(root, video_writer, {"wave": 10, "Jump": 5, "clap": 2})
    (root / "clap" / "notes.txt").write_text("not a video")
    (root / ".hidden").mkdir()
    records, names = folder.list_videos(root, 1)
    assert names == ["Jump", "clap", "wave"]  # sorted folder names
    assert len(records) == 17
    test = Counter(r.label_name for r in records if r.split == "test")
    assert test == Counter({"wave": 2, "Jump": 1, "clap": 1})  # 20% per class, at least one
    assert {r.split for r in records} == {"train", "test"}
    rec = next(r for r in records if r.path == "wave/wave_03.avi")
    assert (rec.label, rec.label_name) == (2, "wave")
    # Deterministic; another seed gives another split of the same sizes.
    assert folder.scan(root).records == folder.scan(root).records
    other = folder.scan(root, seed=5).records
    assert {r.path: r.split for r in other} != {r.path: r.split for r in records}
    assert Counter(r.split for r in other) == Counter(r.split for r in records)


def test_split_folders(tmp_path, video_writer):
    root = tmp_path / "split"
    _class_tree(root / "train", video_writer, {"b": 2, "a": 2}, ext=".mp4")
    _class_tree(root / "test", video_writer, {"a": 1, "b": 1}, ext=".mp4")
    video_writer(root / "train" / "a" / "sub" / "deep.avi", 3, 25, (32, 24))
    records, names = folder.list_videos(root, 1)
    assert names == ["a", "b"]
    splits = {r.path: (r.split, r.label) for r in records}
    assert splits["train/a/sub/deep.avi"] == ("train", 0)
    assert splits["test/b/b_00.mp4"] == ("test", 1)
    assert Counter(s for s, _ in splits.values()) == Counter({"train": 5, "test": 2})


def test_list_files_with_classes_and_missing(tmp_path, video_writer, caplog):
    root = tmp_path / "lists"
    video_writer(root / "videos" / "a 1.avi", 3, 25, (32, 24))
    video_writer(root / "videos" / "b1.avi", 3, 25, (32, 24))
    video_writer(root / "videos" / "c1.avi", 3, 25, (32, 24))
    (root / "classes.txt").write_text("run\nwalk\n")
    (root / "train.txt").write_text(
        "# comment\nvideos/a 1.avi 0\n./videos/b1.avi 1\n\nvideos/gone.avi 1\n"
    )
    (root / "test.txt").write_text("videos/c1.avi 1\n")
    with caplog.at_level(logging.WARNING):
        listing = folder.scan(root)
    assert listing.class_names == ["run", "walk"]
    assert [(r.path, r.label, r.label_name, r.split) for r in listing.records] == [
        ("videos/a 1.avi", 0, "run", "train"),
        ("videos/b1.avi", 1, "walk", "train"),
        ("videos/c1.avi", 1, "walk", "test"),
    ]
    assert listing.missing == ["videos/gone.avi"]
    assert "1 of 4 listed videos are missing" in caplog.text


def test_list_file_without_classes_or_test(tmp_path, video_writer):
    root = tmp_path / "lists"
    lines = []
    for i in range(10):
        video_writer(root / f"v{i}.avi", 3, 25, (32, 24), seed=i)
        lines.append(f"v{i}.avi {i % 3}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    video_writer(root / "extra.avi", 3, 25, (32, 24))
    (root / "val.txt").write_text("extra.avi 0\n")
    records, names = folder.list_videos(root, 1)
    assert names == ["0", "1", "2"]
    counts = Counter(r.split for r in records)
    assert counts == Counter({"train": 7, "test": 3, "val": 1})


def test_list_file_errors(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "train.txt").write_text("only_a_path.avi\n")
    with pytest.raises(ValueError, match="expected 'path label'"):
        folder.scan(root)
    (root / "classes.txt").write_text("one\n")
    (root / "train.txt").write_text("x.avi 3\n")
    with pytest.raises(ValueError, match="only 1 classes"):
        folder.scan(root)
    with pytest.raises(ValueError, match="fold must be 1"):
        folder.scan(root, fold=2)
    with pytest.raises(FileNotFoundError):
        folder.scan(tmp_path / "absent")


def test_avi_mpeg4_fixture_decodes(tmp_path, video_writer):
    path = video_writer(tmp_path / "x.avi", 4, 25, (40, 30))
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
        frames = list(container.decode(video=0))
    assert len(frames) == 4 and (frames[0].width, frames[0].height) == (40, 30)


def test_stratified_holdout_properties():
    labels = [0] * 10 + [1] * 3 + [2]
    held = stratified_holdout(labels, 0.2, seed=0)
    assert Counter(label for label, h in zip(labels, held, strict=True) if h) == Counter(
        {0: 2, 1: 1}
    )
    assert held == stratified_holdout(labels, 0.2, seed=0)
    assert stratified_holdout(labels, 0.0) == [False] * len(labels)
    with pytest.raises(ValueError):
        stratified_holdout(labels, 1.0)
