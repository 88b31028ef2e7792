"""Tables IV and V (pivots of the timing CSVs) and the ambiguity table on hand-built scores."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from condi.evaluation.timing_columns import TIMING_COLUMNS
from condi.tables import ambiguity, table4, table5


def timing_rows(fold: int, dataset: str = "ucf101", scale: float = 1.0) -> pd.DataFrame:
    """A timing CSV's rows: dense, equidistant and condi_sr at K=1, 5, the split at K=5."""
    rows = [("dense", "All", None, 1.0, 80.0, 10.0)]
    for k in (1, 5):
        rows.append(("equidistant", str(k), None, 0.1 * k, 70.0 + k, 0.9 * k))
        rows.append(("condi_sr", str(k), None, 0.3 + 0.1 * k, 75.0 + k + fold, 0.5 + 0.9 * k))
    for ks in (0, 1, 5):
        rows.append(("condi_sr_split", "5", ks, 0.8 - 0.1 * ks, 82.0 - ks, 5.0 - 0.8 * ks))
    df = pd.DataFrame(rows, columns=["method", "K", "Ks", "time_s", "top1", "gmacs_per_video"])
    df["time_s"] *= scale
    df["dataset"], df["fold"], df["teacher"], df["student"] = (
        dataset,
        fold,
        "resnext14",
        "shuffle",
    )
    df["n_videos"] = 10
    df["speedup_time"] = scale * 1.0 / df["time_s"]
    df["speedup_gmacs"] = 10.0 / df["gmacs_per_video"]
    df["device"], df["device_name"], df["threads"] = "cpu", "Test CPU", 2
    df["amp"], df["channels_last"], df["batch_size"] = False, False, 64
    return df.reindex(columns=TIMING_COLUMNS)


@pytest.fixture
def timing_csvs(tmp_path):
    paths = []
    for fold, scale in [(1, 1.0), (2, 3.0)]:
        p = tmp_path / f"t{fold}.csv"
        timing_rows(fold, scale=scale).to_csv(p, index=False)
        paths.append(p)
    return paths


def test_table4_pivot_averages_folds(timing_csvs, tmp_path):
    long = table4.assemble(timing_csvs)
    assert len(long) == 2 * 8
    assert "All" in set(long["K"])
    table = table4.paper_shape(long)
    assert list(table.columns) == ["1", "5", "All"]
    # condi_sr at K=1: time (0.4 + 1.2) / 2, accuracy (77 + 78) / 2
    cell = table.loc[("ucf101", "resnext14+shuffle", "ConDi-SR"), "1"]
    assert cell == "0.8 s (77.50)"
    assert table.loc[("ucf101", "resnext14+shuffle", "Dense (all clips)"), "All"] == "2 s (80.00)"
    assert pd.isna(table.loc[("ucf101", "resnext14+shuffle", "Equidistant"), "All"])
    # paper order: ConDi-SR, Equidistant, (BCE-Conf, ST-Ent), Dense
    assert [i[2] for i in table.index] == ["ConDi-SR", "Equidistant", "Dense (all clips)"]
    out_csv, out_md = tmp_path / "table4.csv", tmp_path / "table4.md"
    table4.write(long, out_csv, out_md)
    md = out_md.read_text()
    assert "Test CPU" in md and "2 torch thread(s)" in md and "decoding excluded" in md
    assert "| K=1 " in md and "x1.00 / x1.00" in md
    back = pd.read_csv(out_csv, dtype={"K": str})
    assert len(back) == len(long)


def test_table5_pivot(timing_csvs, tmp_path):
    long = table4.assemble(timing_csvs)
    t = table5.paper_shape(long)
    assert t["Ks"].tolist() == [0, 1, 5]
    assert t["top1"].tolist() == [82.0, 81.0, 77.0]
    assert t.loc[0, "time_s"] == pytest.approx((0.8 + 2.4) / 2)
    out_md = tmp_path / "table5.md"
    table5.write(long, tmp_path / "table5.csv", out_md)
    md = out_md.read_text()
    assert "Ks = 0 aggregates with z~ weights" in md and "K=5: 81.50%" in md
    with pytest.raises(ValueError, match="condi_sr_split"):
        table5.paper_shape(long[long["method"] != "condi_sr_split"])


def _toy_scores():
    """4 videos of 4 clips, 3 classes. The teacher is right exactly on the clean clips; the
    condi_sr confidence ranks them perfectly, st_ent's entropy in reverse."""
    n, c = 16, 3
    labels = np.repeat([0, 1, 2, 0], 4)
    kinds = np.array(["clean", "distractor", "clean", "blur"] * 4)
    clean = kinds == "clean"
    t_logits = np.zeros((n, c))
    t_logits[np.arange(n), np.where(clean, labels, (labels + 1) % c)] = 5.0
    conf = np.where(clean, 2.0, -2.0) + np.linspace(0, 0.1, n)
    s_logits = np.zeros((n, c))
    s_logits[np.arange(n), 0] = np.where(clean, 0.1, 6.0)  # confident where wrong
    index = pd.DataFrame(
        {
            "video": np.repeat([f"v{i}.avi" for i in range(4)], 4),
            "video_id": np.repeat(np.arange(4), 4),
            "label": labels,
            "clip_index": np.tile(np.arange(4), 4),
            "split": "test",
        }
    )
    manifest = index[["video", "clip_index"]].assign(ambiguous=~clean, kind=kinds)
    rows = np.arange(n)
    teacher = {"rows": rows, "logits": t_logits.astype(np.float32)}
    students = {
        "condi_sr": {"rows": rows, "logits": s_logits, "confidence_logit": conf},
        "st_ent": {"rows": rows, "logits": s_logits, "confidence_logit": conf},
    }
    return index, teacher, students, manifest


def test_ambiguity_auroc_and_shares(tmp_path):
    index, teacher, students, manifest = _toy_scores()
    params = {"evaluation": {"K": [1], "Ks": [0], "Ks_K": 2, "random_seeds": [0, 1]}}
    df = ambiguity.compute(params, index, teacher, students, manifest, share_ks=(1, 3))
    au = df[(df["metric"] == "auroc")].set_index(["method", "score", "target"])["value"]
    assert au[("condi_sr", "z_tilde", "teacher_correct")] == 1.0
    assert au[("condi_sr", "z_tilde", "clean_vs_distractor")] == 1.0
    assert au[("st_ent", "neg_entropy", "teacher_correct")] == 0.0
    assert ("st_ent", "z_tilde", "teacher_correct") not in au.index  # untrained head
    assert au[("teacher", "max_prob", "teacher_correct")] == 0.5  # same max-softmax everywhere
    # within each video (2 clean clips the teacher gets right, 2 it gets wrong): the same
    assert au[("condi_sr", "z_tilde", "teacher_correct_within_video")] == 1.0
    assert au[("st_ent", "neg_entropy", "teacher_correct_within_video")] == 0.0
    assert au[("teacher", "max_prob", "teacher_correct_within_video")] == 0.5
    within = df[df["target"] == "teacher_correct_within_video"]
    assert (within["n_videos"] == 4).all() and (within["n_pos"] == 8).all()
    prim = df[(df["metric"] == "auroc") & (df["primary"])]
    assert set(zip(prim["method"], prim["score"], strict=True)) == {
        ("teacher", "max_prob"),
        ("condi_sr", "z_tilde"),
        ("st_ent", "neg_entropy"),
    }
    rate = df[df["metric"] == "teacher_correct_rate"].set_index("target")["value"]
    assert rate["clean"] == 1.0 and rate["distractor"] == 0.0
    share = df[df["metric"] == "unambiguous_share"].set_index(["method", "K"])["value"]
    assert share[("condi_sr", 1)] == 1.0 and share[("st_ent", 1)] == 0.0
    assert share[("oracle", 1)] == 1.0 and share[("all clips", 3)] == 0.5
    assert share[("condi_sr", 3)] == pytest.approx(2 / 3)
    # long CSV and Markdown
    df.insert(0, "student", "s")
    df.insert(0, "teacher", "t")
    df.insert(0, "fold", 1)
    df.insert(0, "dataset", "synthetic")
    df.reindex(columns=ambiguity.COLUMNS).to_csv(tmp_path / "a.csv", index=False)
    long = ambiguity.assemble([tmp_path / "a.csv"])
    ambiguity.write(long, tmp_path / "amb.csv", tmp_path / "amb.md")
    md = (tmp_path / "amb.md").read_text()
    assert "teacher_correct" in md and "clean_vs_distractor" in md and "| K=1 " in md
    assert "teacher_correct_within_video" in md and "4 videos (synthetic, fold 1, t)" in md
    # no video with both right and wrong clips: the column stays, empty
    none = long.copy()
    none.loc[none["target"] == "teacher_correct_within_video", ["value", "n_videos"]] = np.nan
    assert ambiguity.auroc_table(none)["teacher_correct_within_video"].isna().all()
    t = ambiguity.auroc_table(long)
    assert t.index[0][2] == "teacher" and t.loc[("synthetic", "t+s", "condi_sr", "z~")].iloc[0] == 1


def test_ambiguity_without_manifest():
    index, teacher, students, _ = _toy_scores()
    df = ambiguity.compute({"evaluation": {}}, index, teacher, students, None)
    assert set(df["metric"]) == {"auroc"}
    assert set(df["target"]) == {"teacher_correct", "teacher_correct_within_video"}
    assert df["K"].isna().all()
    assert not math.isnan(df["value"].iloc[0])


def test_within_video_auroc_by_hand():
    # video 5: the right clip scores highest: 1. Video 2: right clips 0.2 and 0.8, wrong 0.8 and
    # 0.3: pairs (0.2, 0.8) 0, (0.2, 0.3) 0, (0.8, 0.8) 0.5, (0.8, 0.3) 1 -> 0.375. Video 9: all
    # right, video 4: one clip: skipped. Clips of the videos interleaved on purpose.
    clips = [
        (5, 0.9, 1), (2, 0.2, 1), (5, 0.1, 0), (9, 0.7, 1), (2, 0.8, 1), (5, 0.5, 0),
        (2, 0.8, 0), (9, 0.1, 1), (4, 0.3, 0), (2, 0.3, 0),
    ]  # fmt: skip
    video, score, right = (np.array(c) for c in zip(*clips, strict=True))
    value, n_videos, n_pos, n_neg = ambiguity.within_video_auroc(score, right, video)
    assert value == pytest.approx((1.0 + 0.375) / 2)  # each video counts once
    assert (n_videos, n_pos, n_neg) == (2, 3, 4)
    # the pooled AUROC of the same clips is another number
    from condi.metrics import auroc

    assert auroc(score, right) != pytest.approx(value)
    assert math.isnan(ambiguity.within_video_auroc(score[:1], right[:1], video[:1])[0])
