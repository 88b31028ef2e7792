"""The UCF-101 reader: official list formats, case-insensitive class folders, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from condi.data.ucf101 import ListError, list_videos


def _layout(root: Path, class_ind: str, train: str, test: str, fold: int = 1) -> Path:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text(class_ind)
    (lists / f"trainlist0{fold}.txt").write_text(train)
    (lists / f"testlist0{fold}.txt").write_text(test)
    return root


CLASS_IND = "1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n"


def test_reads_the_tiny_synthetic_dataset(tiny_root):
    records, names = list_videos(tiny_root, 1)
    assert names == ["MoveLeft", "MoveRight", "MoveUp", "MoveDown"]
    assert [r.split for r in records].count("train") == 16
    assert [r.split for r in records].count("test") == 12
    for r in records:
        assert r.path.startswith("UCF-101/") and (tiny_root / r.path).is_file()
        assert r.label_name == names[r.label] and f"/v_{r.label_name}_" in r.path


def test_official_format_and_handstand_case(tmp_path):
    root = _layout(
        tmp_path,
        CLASS_IND,
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n\r\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n",
        "HandstandPushups/v_HandStandPushups_g01_c01.avi\nyoyo/v_YoYo_g01_c02.avi\n",
    )
    records, names = list_videos(root, 1)
    assert names == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    by_path = {r.path: r for r in records}
    hs = by_path["UCF-101/HandstandPushups/v_HandStandPushups_g01_c01.avi"]
    assert (hs.label, hs.label_name, hs.split) == (1, "HandstandPushups", "test")
    assert by_path["UCF-101/yoyo/v_YoYo_g01_c02.avi"].label == 2  # folder matched ignoring case
    assert by_path["UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"].split == "train"
    assert len(records) == 4


@pytest.mark.parametrize(
    ("train", "test", "where", "message"),
    [
        ("ApplyEyeMakeup/v_a.avi\n", "", "trainlist01.txt:1", "expected"),
        ("ApplyEyeMakeup/v_a.avi 2\n", "", "trainlist01.txt:1", "disagrees with folder"),
        ("ApplyEyeMakeup/v_a.avi one\n", "", "trainlist01.txt:1", "not a positive integer"),
        (
            "ApplyEyeMakeup/v_a.avi 1\n",
            "\nJuggling/v_b.avi\n",
            "testlist01.txt:2",
            "not under a class folder",
        ),
        ("ApplyEyeMakeup/v_a.avi 1\n", "v_b.avi\n", "testlist01.txt:1", "not under a class folder"),
        ("ApplyEyeMakeup/v_a.avi 1\n", "YoYo/v_b.avi 3 extra\n", "testlist01.txt:1", "expected"),
    ],
)
def test_malformed_lists_name_file_and_line(tmp_path, train, test, where, message):
    root = _layout(tmp_path, CLASS_IND, train, test)
    with pytest.raises(ListError, match=message) as info:
        list_videos(root, 1)
    assert where in str(info.value)


@pytest.mark.parametrize(
    ("class_ind", "message"),
    [
        ("1 A\n3 B\n", "class ids must be 1..2"),
        ("1 A\n1 B\n", "classInd.txt:2: class id 1 listed twice"),
        ("1 A extra\n", "classInd.txt:1: expected"),
        ("1 Abc\n2 ABC\n", "differ ignoring case"),
    ],
)
def test_malformed_class_index(tmp_path, class_ind, message):
    root = _layout(tmp_path, class_ind, "", "")
    with pytest.raises(ListError, match=message):
        list_videos(root, 1)


def test_duplicates_and_missing_lists(tmp_path):
    root = _layout(tmp_path, CLASS_IND, "YoYo/v_a.avi 3\n", "YoYo/v_a.avi\n")
    with pytest.raises(ListError, match="listed twice"):
        list_videos(root, 1)
    with pytest.raises(FileNotFoundError, match="trainlist02.txt"):
        list_videos(root, 2)
