"""``predict_videos`` (condi predict over many files): decoding a video ahead of the models in
a worker thread changes no prediction, keeps the order and the per-file failures, and really
runs the next decode while the models classify the current video."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from condi.data.synthetic import encode_avi
from condi.evaluation import predict as predict_mod
from condi.evaluation.predict import predict_video, predict_videos
from condi.models import build_model, build_student

KW = {"layers": [1, 1, 1, 1], "base_width": 8, "cardinality": 4}
DATA = {"clip_len": 4, "short_side": 16, "crop_size": 12, "mean": [0.45] * 3, "std": [0.225] * 3}
NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return build_model("resnext101", 3, **KW).eval(), build_student("resnext101", 3, **KW).eval()


@pytest.fixture
def videos(tmp_path):
    out = []
    for i, n in enumerate([9, 4, 14]):
        frames = np.random.default_rng(i).integers(0, 255, (n, 24, 32, 3), dtype=np.uint8)
        encode_avi(tmp_path / f"v{i}.avi", frames, 25)
        out.append(tmp_path / f"v{i}.avi")
    (tmp_path / "junk.avi").write_text("not a video\n")
    return [out[0], tmp_path / "missing.avi", out[1], tmp_path / "junk.avi", out[2]]


def summary(pred):
    return (pred.video, pred.label, pred.top5, pred.teacher_clips, pred.student_clips,
            pred.num_clips, pred.method, pred.ranking, pred.clip_scores, pred.error)  # fmt: skip


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_same_predictions_in_order_with_failures_in_place(models, videos, prefetch):
    teacher, student = models
    one_by_one = [
        predict_video(v, teacher, student, NAMES, DATA, 2, 1, batch_size=2) for v in videos
    ]
    got = list(predict_videos(videos, teacher, student, NAMES, DATA, 2, 1, batch_size=2,
                              prefetch=prefetch))  # fmt: skip
    assert [summary(p) for p in got] == [summary(p) for p in one_by_one]
    assert [p.error is None for p in got] == [True, False, True, False, True]
    assert got[1].error == "no such file" and got[3].error.startswith("cannot open")
    assert [p.num_clips for p in got] == [3, 0, 1, 0, 4]  # ceil(T / 4)
    assert all(p.decode_s > 0 and p.model_s > 0 for p in got if p.error is None)


def test_the_next_video_decodes_while_the_models_run(models, videos, monkeypatch):
    teacher, student = models
    good = [videos[0], videos[2], videos[4]]
    started = {v: threading.Event() for v in good}
    overlapped = []
    real_decode, real_classify = predict_mod._decode_safely, predict_mod.classify_decoded

    def decode(path, cfg, thread_type="AUTO"):
        assert thread_type == "NONE"  # one decoder thread beside the models
        started[path].set()
        return real_decode(path, cfg, thread_type)

    def classify(decoded, *args, **kwargs):
        i = good.index(decoded.path)
        if i + 1 < len(good):  # the models wait until the next video is being decoded
            overlapped.append(started[good[i + 1]].wait(timeout=60))
        return real_classify(decoded, *args, **kwargs)

    monkeypatch.setattr(predict_mod, "_decode_safely", decode)
    monkeypatch.setattr(predict_mod, "classify_decoded", classify)
    preds = list(predict_videos(good, teacher, student, NAMES, DATA, 2, batch_size=2))
    assert overlapped == [True, True]
    assert [p.error for p in preds] == [None, None, None]


def test_an_unexpected_error_while_classifying_is_that_file_s_failure(models, videos, monkeypatch):
    teacher, student = models
    real = predict_mod.predict_clips

    def boom(x, *args, **kwargs):
        if len(x) == 1:  # the 4-frame video
            raise RuntimeError("kaput")
        return real(x, *args, **kwargs)

    monkeypatch.setattr(predict_mod, "predict_clips", boom)
    preds = list(predict_videos(videos, teacher, student, NAMES, DATA, 2, batch_size=2))
    assert preds[2].error == "RuntimeError: kaput"
    assert preds[0].error is None and preds[4].error is None
