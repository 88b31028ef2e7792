"""Issue 8.7: ``condi predict`` on a non-video, an empty file, a missing path (and a folder):
a clear error per file on stderr, a non-zero exit, no traceback; a good video of the same call
(here the 10-frame one: one padded clip) is still classified."""

from __future__ import annotations

import json

import pytest

from tests.reliability.conftest import DATA_ROOT, SHORT_VIDEO, STUDENT_OUT, TEACHER_OUT, condi

GOOD_LONG = "MoveUp/v_MoveUp_g05_c01.avi"


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "notes.avi").write_text("this is not a video\n" * 50)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "folder.avi").mkdir()
    return {
        tmp_path / "notes.avi": "cannot open",
        tmp_path / "empty.mp4": "empty file",
        tmp_path / "missing.avi": "no such file",
        tmp_path / "folder.avi": "is a directory",
    }


def predict(ref, cwd, videos, *extra):
    return condi(
        "predict",
        *videos,
        "--teacher-ckpt",
        ref / TEACHER_OUT,
        "--student-ckpt",
        ref / STUDENT_OUT,
        "--k",
        "3",
        "--params",
        ref / "params.yaml",
        *extra,
        cwd=cwd,
    )


def test_bad_files_fail_one_by_one_and_good_videos_are_classified(
    reference_run, tmp_path, bad_files
):
    short = reference_run / DATA_ROOT / "UCF-101" / SHORT_VIDEO
    long = reference_run / DATA_ROOT / "UCF-101" / GOOD_LONG
    videos = [*list(bad_files)[:2], short, *list(bad_files)[2:], long]
    out = predict(reference_run, tmp_path, videos)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    err_lines = out.stderr.splitlines()
    for path, reason in bad_files.items():
        (line,) = [ln for ln in err_lines if str(path) in ln]
        assert line.startswith("condi: error: ") and reason in line, line
        assert str(path) not in out.stdout
    assert f"{len(bad_files)} of {len(videos)} video(s) could not be classified" in out.stderr
    out_lines = out.stdout.splitlines()
    assert len(out_lines) == 2, out.stdout
    assert out_lines[0].startswith(f"{short}: ") and "of 1" in out_lines[0]  # one padded clip
    assert out_lines[1].startswith(f"{long}: ")


def test_json_output_has_an_error_object_per_bad_file(reference_run, tmp_path, bad_files):
    short = reference_run / DATA_ROOT / "UCF-101" / SHORT_VIDEO
    videos = [*bad_files, short]
    out = predict(reference_run, tmp_path, videos, "--json")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    preds = [json.loads(line) for line in out.stdout.splitlines()]
    assert [p["video"] for p in preds] == [str(v) for v in videos]
    for p, reason in zip(preds, bad_files.values(), strict=False):
        assert reason in p["error"] and p["label"] == -1
    good = preds[-1]
    assert good["error"] is None and good["num_clips"] == 1 and good["teacher_clips"] == [0]
    assert good["label_name"] and len(good["top5"]) == 4
