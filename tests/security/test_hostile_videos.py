"""Issue 12.7 and 12.10: ``condi predict`` among hostile files.

* An AVI whose headers claim 4,294,967,295 frames (``avih.dwTotalFrames`` and
  ``strh.dwLength``) must not size a buffer (it asked for 15 TiB): the frame buffer starts
  small and grows as frames decode.
* Every per-file failure, a ``MemoryError`` or an unexpected exception included, is one
  ``condi: error: FILE: reason`` line; the files after it are still classified.
* Class names (from the checkpoint) and file names with control characters are escaped in the
  text output: a newline in a name cannot add a line.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from condi.cli import main
from condi.data import video as video_mod
from condi.data.synthetic import encode_avi
from condi.evaluation import predict as predict_mod
from condi.models import build_model, build_student
from condi.models.checkpoint import save_model
from tests.security.conftest import PARAMS

KW = {"layers": [1, 1, 1, 1], "base_width": 8, "cardinality": 4}
FAKE = "condi: fake line"
EVIL_NAMES = [f"Walk\n{FAKE}", "Run\r\x1b[2K", "Jump\u202e", "Sit", "Stand"]


def good_avi(path, seed=0, n=20):
    frames = np.random.default_rng(seed).integers(0, 255, (n, 48, 64, 3), dtype=np.uint8)
    encode_avi(path, frames, 25)
    return path


def lying_header_avi(path):
    """A valid 20-frame AVI whose main and stream headers claim 0xFFFFFFFF frames."""
    good_avi(path, seed=1)
    data = bytearray(path.read_bytes())
    avih = data.index(b"avih")
    struct.pack_into("<I", data, avih + 24, 0xFFFFFFFF)  # MainAVIHeader.dwTotalFrames
    strh = data.index(b"strh")
    struct.pack_into("<I", data, strh + 40, 0xFFFFFFFF)  # AVIStreamHeader.dwLength
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    info = {"arch": "resnext101", "kwargs": KW, "num_classes": 5, "class_names": EVIL_NAMES}
    save_model(d / "teacher.pt", build_model("resnext101", 5, **KW), role="teacher", **info)
    student = build_student("resnext101", 5, **KW)
    save_model(d / "student.pt", student, role="student", method="condi_sr", **info)
    return d / "teacher.pt", d / "student.pt"


def predict(checkpoints, videos, *extra):
    teacher, student = checkpoints
    args = ["predict", *map(str, videos), "--teacher-ckpt", str(teacher)]
    args += ["--student-ckpt", str(student)]
    return main([*args, "--k", "1", "--params", str(PARAMS), *extra])


def test_a_lying_frame_count_sizes_no_buffer(tmp_path, monkeypatch):
    path = lying_header_avi(tmp_path / "liar.avi")
    import av

    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0xFFFFFFFF  # the lie is what PyAV reports
    sizes, real_empty = [], np.empty

    def recording_empty(shape, *args, **kwargs):
        sizes.append(shape[0] if isinstance(shape, tuple) else shape)
        return real_empty(shape, *args, **kwargs)

    monkeypatch.setattr(video_mod.np, "empty", recording_empty)
    frames = video_mod.read_video_frames(path, 36)
    assert frames.shape == (20, 36, 36, 3)
    assert max(sizes) <= video_mod.INITIAL_FRAME_BUFFER


def test_predict_reports_each_failure_on_its_own_line_and_goes_on(
    tmp_path, checkpoints, monkeypatch, capsys
):
    good1 = good_avi(tmp_path / "good1.avi", seed=2)
    liar = lying_header_avi(tmp_path / "liar.avi")
    huge = good_avi(tmp_path / "huge.avi", seed=3)
    boom = good_avi(tmp_path / "boom.avi", seed=4)
    odd = good_avi(tmp_path / f"odd\n{FAKE}.avi", seed=5)
    missing = tmp_path / "missing.avi"
    good2 = good_avi(tmp_path / "good2.avi", seed=6)

    real_read, real_classify = video_mod.read_video_clips, predict_mod.classify_decoded

    def read(path, *args, **kwargs):
        if path.name == "huge.avi":
            raise MemoryError  # what a 15 TiB np.empty raised (numpy's _ArrayMemoryError)
        return real_read(path, *args, **kwargs)

    def classify_decoded(decoded, *args, **kwargs):  # the models' step, after decoding ahead
        if decoded.path.name == "boom.avi":
            raise RuntimeError("something unexpected")
        return real_classify(decoded, *args, **kwargs)

    monkeypatch.setattr(video_mod, "read_video_clips", read)
    monkeypatch.setattr(predict_mod, "classify_decoded", classify_decoded)
    videos = [good1, liar, huge, boom, odd, missing, good2]
    rc = predict(checkpoints, videos)
    out, err = capsys.readouterr()
    assert rc == 1
    assert "Traceback" not in err
    out_lines, err_lines = out.splitlines(), err.splitlines()
    # the classified files: one line each, in order, the odd file name escaped
    classified = [str(good1), str(liar), str(odd).replace("\n", "\\n"), str(good2)]
    assert len(out_lines) == len(classified)
    for line, name in zip(out_lines, classified, strict=True):
        assert line.startswith(f"{name}: "), line
    # the failures: one line each
    for path, reason in [
        (huge, "out of memory"),
        (boom, "RuntimeError: something unexpected"),
        (missing, "no such file"),
    ]:
        (line,) = [ln for ln in err_lines if ln.startswith(f"condi: error: {path}: ")]
        assert reason in line, line
    assert err_lines[-1] == f"condi: error: 3 of {len(videos)} video(s) could not be classified"
    # no name added a line of its own
    assert not any(ln.startswith(FAKE) for ln in out_lines + err_lines)
    assert all(ln.startswith(("condi: error: ", str(tmp_path))) for ln in out_lines + err_lines)
    for line in out_lines:
        assert "\x1b" not in line and "\r" not in line and "\u202e" not in line
        assert "Walk\\ncondi: fake line" in line  # every class scores; all five are in the top 5


def test_json_output_escapes_by_construction(tmp_path, checkpoints, capsys):
    import json

    rc = predict(checkpoints, [good_avi(tmp_path / "g.avi")], "--json")
    out = capsys.readouterr().out
    assert rc == 0 and len(out.splitlines()) == 1
    pred = json.loads(out)
    assert pred["error"] is None and pred["label_name"] in EVIL_NAMES


def test_printable_escapes_control_characters():
    assert predict_mod.printable("a\nb\r\tc\x1b[31m\x00\x7f\u2028\u202e é") == (
        "a\\nb\\r\\tc\\x1b[31m\\x00\\x7f\\u2028\\u202e é"
    )
