"""Figures: files written (PNG and SVG), non-empty, one per (dataset, teacher, student)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from condi.evaluation import figures
from tests.conftest import REPO


def _table3() -> pd.DataFrame:
    rows = []
    for fold in (1, 2):
        for k in ("1", "3", "5"):
            for m, base in [("random", 60), ("equidistant", 62), ("oracle", 90)]:
                rows.append(("syn", fold, "tch", "-", m, k, None, base + int(k), 1.5))
            for m, base in [("condi_sr", 70), ("st_ent", 65)]:
                rows.append(("syn", fold, "tch", "stu", m, k, None, base + int(k), None))
            rows.append(("syn", fold, "tch", "stu", "condi_sr_split", "5", 1, 71, None))
        rows.append(("syn", fold, "tch", "-", "dense", "dense", None, 66, None))
    cols = ["dataset", "fold", "teacher", "student", "method", "K", "Ks", "top1", "top1_std"]
    df = pd.DataFrame(rows, columns=cols)
    df["Ks"] = df["Ks"].astype("Int64")
    return df


def _nonempty(paths, n):
    assert len(paths) == n
    for p in paths:
        assert p.stat().st_size > 1000, p
    assert {p.suffix for p in paths} == {".png", ".svg"}


def test_accuracy_vs_k(tmp_path):
    paths = figures.accuracy_vs_k(_table3(), tmp_path)
    _nonempty(paths, 2)
    assert paths[0].name == "accuracy_vs_k_syn_tch_stu.png"
    assert "<svg" in paths[1].read_text()[:500]


def test_accuracy_vs_cost(tmp_path):
    rows = [("dense", "All", None, 66.0, 10.0, 1.0)]
    rows += [("condi_sr", str(k), None, 70.0 + k, 2.0 + k, 0.2 + 0.1 * k) for k in (1, 3, 5)]
    rows += [("equidistant", str(k), None, 60.0 + k, 1.0 * k, 0.1 * k) for k in (1, 3, 5)]
    rows += [("condi_sr_split", "5", ks, 75.0 - ks, 7 - ks, 0.7 - 0.1 * ks) for ks in (0, 1, 3)]
    df = pd.DataFrame(rows, columns=["method", "K", "Ks", "top1", "gmacs_per_video", "time_s"])
    df["Ks"] = df["Ks"].astype("Int64")
    df["dataset"], df["fold"], df["teacher"], df["student"] = "syn", 1, "tch", "stu"
    df["device"], df["threads"] = "cpu", 2
    _nonempty(figures.accuracy_vs_cost(df, tmp_path), 2)


def test_ztilde_timeline(tmp_path):
    n_short, n_long = 3, 9
    index = pd.DataFrame(
        {
            "video": ["a/v_short.avi"] * n_short + ["a/v_long.avi"] * n_long,
            "label": [0] * n_short + [1] * n_long,
            "label_name": ["A"] * n_short + ["B"] * n_long,
            "clip_index": list(range(n_short)) + list(range(n_long)),
        }
    )
    n = len(index)
    rng = np.random.default_rng(0)
    teacher = {"rows": np.arange(n), "logits": rng.normal(size=(n, 3)).astype(np.float32)}
    student = {
        "rows": np.arange(n),
        "logits": rng.normal(size=(n, 3)),
        "confidence_logit": rng.normal(size=n),
    }
    kinds = ["clean", "distractor", "clean", "static", "blur", "clean", "clean", "occlusion"]
    manifest = pd.DataFrame(
        {
            "video": ["a/v_long.avi"] * len(kinds),
            "clip_index": range(len(kinds)),
            "ambiguous": [k != "clean" for k in kinds],
            "kind": kinds,
        }
    )
    paths = figures.ztilde_timeline(index, teacher, student, tmp_path, manifest=manifest)
    _nonempty(paths, 2)
    assert paths[0].name == "ztilde_timeline_v_long.png"  # the longest by default
    svg = paths[1].read_text()
    assert "ambiguous: distractor" in svg or "distractor" in svg
    paths = figures.ztilde_timeline(index, teacher, student, tmp_path, video="v_short")
    assert paths[0].name == "ztilde_timeline_v_short.png"
    with pytest.raises(ValueError, match="not a test video"):
        figures.ztilde_timeline(index, teacher, student, tmp_path, video="nope")
    with pytest.raises(ValueError, match="confidence head"):
        figures.ztilde_timeline(index, teacher, {"logits": student["logits"]}, tmp_path)


def test_cli_figures_needs_an_input(tmp_path):
    from condi.cli import main

    base = ["report", "figures", "--params", str(REPO / "params.yaml"), "--out-dir"]
    assert main([*base, str(tmp_path)]) == 2
    t3 = tmp_path / "table3.csv"
    _table3().to_csv(t3, index=False)
    assert main([*base, str(tmp_path / "f"), "--table3", str(t3)]) == 0
    assert (tmp_path / "f" / "accuracy_vs_k_syn_tch_stu.svg").stat().st_size > 1000
