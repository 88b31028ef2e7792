"""The ablation table: mean and std over seeds per switch combination (issue 9.3)."""

import pandas as pd
import pytest

from condi.tables import ablation


def eval_csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_seeds_are_averaged_per_switch_combination(tmp_path):
    common = {"dataset": "synthetic", "fold": 1, "teacher": "t", "student": "s", "n_videos": 10}
    students = []
    for seed, (a, b) in enumerate([(60.0, 70.0), (62.0, 74.0), (64.0, 78.0)]):
        rows = [
            {
                **common,
                "method": "condi_sr",
                "K": "1",
                "top1": a,
                "pseudo_labels": "train",
                "detach_confidence": False,
                "seed": seed,
                "auroc_teacher_correct": 0.6,
            },
            {
                **common,
                "method": "condi_sr",
                "K": "1",
                "top1": b,
                "pseudo_labels": "crossfit",
                "detach_confidence": False,
                "seed": seed,
                "auroc_teacher_correct": 0.7,
            },
            {
                **common,
                "method": "condi_sr_split",
                "K": "1",
                "Ks": 1,
                "top1": 0.0,
                "pseudo_labels": "train",
                "detach_confidence": False,
                "seed": seed,
            },
            {
                **common,
                "method": "condi_sr",
                "K": "7",
                "top1": 99.0,
                "pseudo_labels": "train",
                "detach_confidence": False,
                "seed": seed,
            },
        ]
        students.append(eval_csv(tmp_path / f"s{seed}.csv", rows))
    base = eval_csv(
        tmp_path / "b.csv",
        [
            {
                **common,
                "student": "-",
                "method": "random",
                "K": "1",
                "top1": 55.0,
                "top1_std": 2.0,
                "n_seeds": 3,
            },
            {**common, "student": "-", "method": "dense", "K": "dense", "top1": 66.0},
            {**common, "student": "-", "method": "equidistant", "K": "1", "top1": 57.0},
        ],
    )
    long = ablation.assemble(students, [base], ks=[1, 3, 5])
    sr = long[long["method"] == "condi_sr"].set_index("pseudo_labels")
    assert sr.loc["train", "top1"] == pytest.approx(62.0)
    assert sr.loc["train", "top1_std"] == pytest.approx(2.0)
    assert sr.loc["crossfit", "top1"] == pytest.approx(74.0)
    assert sr.loc["crossfit", "top1_std"] == pytest.approx(4.0)
    assert (sr["n_seeds"] == 3).all()
    assert "7" not in set(long["K"])  # only the requested K
    assert "condi_sr_split" not in set(long["method"])
    assert long.set_index("method").loc["random", "top1_std"] == pytest.approx(2.0)
    table = ablation.paper_shape(long)
    assert table.loc[("synthetic", "condi_sr[crossfit, detach=False]"), "K=1"] == "74.00 ± 4.00"
    assert table.loc[("synthetic", "dense"), "Dense"] == "66.00"
    ablation.write(long, tmp_path / "a.csv", tmp_path / "a.md")
    assert "condi_sr[train, detach=False]" in (tmp_path / "a.md").read_text()
