"""Metrics and per-clip scores on hand-made values (docs/method.md, section 3 and 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from condi.methods import METHODS, get_method
from condi.metrics import auroc, softmax_np, video_accuracy
from condi.scores import (
    entropy_np,
    ranking_score,
    sigmoid,
    student_clip_scores,
)


def test_auroc_with_one_positive_or_one_negative():
    # one positive ranked above 2 of the 3 negatives
    assert auroc([0.1, 0.5, 0.3, 0.9], [0, 1, 0, 0]) == pytest.approx(2 / 3)
    # one negative below all 3 positives
    assert auroc([0.4, 0.5, 0.3, 0.9], [1, 1, 0, 1]) == pytest.approx(1.0)
    assert auroc([0.4, 0.5, 0.3, 0.9], [1, 1, 1, 0]) == pytest.approx(0.0)
    assert math.isnan(auroc([0.1, 0.2], [0, 0])) and math.isnan(auroc([0.1, 0.2], [1, 1]))
    # ties count one half
    assert auroc([0.5, 0.5, 0.5], [1, 0, 0]) == pytest.approx(0.5)


def test_video_accuracy_averages_probabilities_per_video():
    # video 7 (label 0): one confident wrong clip outweighs two mildly right ones; video 2
    # (label 1, its clips not adjacent to each other): right; video 5 (label 2): right
    probs = np.array(
        [
            [0.55, 0.45, 0.0],  # video 7
            [0.0, 0.0, 1.0],  # video 5
            [0.55, 0.45, 0.0],  # video 7
            [0.1, 0.9, 0.0],  # video 2
            [0.0, 1.0, 0.0],  # video 7
            [0.4, 0.6, 0.0],  # video 2
        ]
    )
    vids = np.array([7, 5, 7, 2, 7, 2])
    labels = np.array([0, 2, 0, 1, 0, 1])
    assert video_accuracy(probs, vids, labels) == pytest.approx(200 / 3)
    assert video_accuracy(probs, vids, np.array([1, 2, 1, 1, 1, 1])) == pytest.approx(100.0)


def test_softmax_is_stable_per_row():
    out = softmax_np(np.array([[1000.0, 0.0], [0.0, -1000.0], [0.0, math.log(3.0)]]))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [[1.0, 0.0], [1.0, 0.0], [0.25, 0.75]], atol=1e-12)


def test_entropy_and_sigmoid():
    h = entropy_np(np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]]))
    assert h.tolist() == pytest.approx([0.0, math.log(3), math.log(2)])
    z = sigmoid(np.array([0.0, math.log(3.0)], dtype=np.float32))
    assert z.dtype == np.float64 and z.tolist() == pytest.approx([0.5, 0.75])


def test_student_clip_scores_and_ranking():
    logits = np.array([[0.0, math.log(3.0)], [0.0, 0.0]], dtype=np.float32)
    conf = np.array([math.log(3.0), 0.0])
    s = student_clip_scores(logits, conf)
    h0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert s["entropy"].tolist() == pytest.approx([h0, math.log(2)])
    assert s["neg_entropy"].tolist() == pytest.approx([-h0, -math.log(2)])
    assert s["max_prob"].tolist() == pytest.approx([0.75, 0.5])
    assert s["z_tilde"].tolist() == pytest.approx([0.75, 0.5])
    assert "z_tilde" not in student_clip_scores(logits, None)
    assert all(v.dtype == np.float64 for v in s.values())  # float32 logits, float64 scores
    RANKING = {m: get_method(m).ranking for m in METHODS}
    for method, key in RANKING.items():
        assert ranking_score(method, logits, conf).tolist() == s[key].tolist()
    assert RANKING["st_ent"] == "neg_entropy" and RANKING["maxprob"] == "max_prob"
    assert {RANKING[m] for m in ("condi_sr", "bce_conf", "st_conf")} == {"z_tilde"}
