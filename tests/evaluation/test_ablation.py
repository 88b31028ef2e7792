"""The ablation table: mean and std over seeds per switch combination (issue 9.3), and paired
differences with bootstrap intervals, seeds averaged per video (issue 13.4)."""

import re

import numpy as np
import pandas as pd
import pytest

from condi.tables import ablation


def eval_csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_seeds_are_averaged_per_switch_combination(tmp_path):
    common = {
        "dataset": "synthetic",
        "fold": 1,
        "teacher": "t",
        "student": "s",
        "n_videos": 10,
        "protocol": "transfer",
        "kd_reduction": "class_mean",
    }
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
    crossfit = "condi_sr [transfer, crossfit, attached, class_mean]"
    assert table.loc[("synthetic", crossfit), "K=1"] == "74.00 ± 4.00"
    assert table.loc[("synthetic", "dense [transfer]"), "Dense"] == "66.00"
    ablation.write(long, tmp_path / "a.csv", tmp_path / "a.md")
    assert "condi_sr [transfer, train, attached, class_mean]" in (tmp_path / "a.md").read_text()


def video_rows(method, k, correct, seed=None, student="s", **switches):
    base = {"dataset": "synthetic", "fold": 1, "teacher": "t", "student": student}
    return pd.DataFrame(
        {**base, "method": method, "K": k, "Ks": pd.array([None] * len(correct), dtype="Int64"),
         "random_seed": pd.array([None] * len(correct), dtype="Int64"),
         "video_id": range(len(correct)), "correct": correct, "seed": seed, **switches}
    )  # fmt: skip


def test_differences_average_seeds_per_video_and_pair_the_videos(tmp_path):
    from condi.tables.table3 import Bootstrap

    sw = {"protocol": "transfer", "pseudo_labels": "train", "detach_confidence": False,
          "kd_reduction": "class_mean"}  # fmt: skip
    teacher_only = {"protocol": "transfer", "pseudo_labels": None, "detach_confidence": None,
                    "kd_reduction": None}  # fmt: skip
    condi = [[1, 1, 0, 1, 0, 1], [1, 0, 0, 1, 1, 1]]  # two seeds
    st_ent = [[0, 1, 0, 1, 0, 0], [0, 1, 1, 1, 0, 0]]
    frames = [video_rows("condi_sr", "1", c, seed=i, **sw) for i, c in enumerate(condi)]
    frames += [video_rows("st_ent", "1", c, seed=i, **sw) for i, c in enumerate(st_ent)]
    frames += [
        video_rows("equidistant", "1", [1, 1, 1, 1, 1, 1], student="-", **teacher_only),
        video_rows("dense", "dense", [0, 0, 0, 0, 0, 0], student="-", **teacher_only),
    ]
    paths = []
    for i, f in enumerate(frames):
        paths.append(tmp_path / f"{i}.parquet")
        f.to_parquet(paths[-1])
    boot = Bootstrap(resamples=500, level=0.95, seed=0)
    diffs = ablation.differences(ablation.load_videos(paths), [1], boot)
    d = diffs[diffs["method"] == "condi_sr"].set_index("reference")
    # per video: condi_sr's seed mean minus st_ent's seed mean, averaged over the videos
    per_video = (pd.DataFrame(condi).mean() - pd.DataFrame(st_ent).mean()).to_numpy()
    assert d.loc["st_ent", "diff"] == pytest.approx(per_video.mean() * 100)
    assert d.loc["st_ent", "lo"] <= d.loc["st_ent", "diff"] <= d.loc["st_ent", "hi"]
    assert d.loc["st_ent", "lo"] >= per_video.min() * 100 - 1e-9
    assert d.loc["st_ent", "hi"] <= per_video.max() * 100 + 1e-9
    assert (d["n_seeds"] == 2).all() and (d["n_videos"] == 6).all()
    # condi_sr's seed mean against a constant reference: a fixed offset
    condi_mean = pd.DataFrame(condi).mean().mean() * 100
    assert d.loc["equidistant", "diff"] == pytest.approx(condi_mean - 100)
    assert d.loc["dense", "diff"] == pytest.approx(condi_mean)
    # st_ent is compared with the teacher-only samplers, never with itself
    s = diffs[diffs["method"] == "st_ent"]
    assert set(s["reference"]) == {"equidistant", "dense"}
    long = pd.DataFrame(
        [{"dataset": "synthetic", "teacher": "t", "student": "s", "method": "condi_sr", **sw,
          "K": "1", "top1": 50.0, "top1_std": 1.0, "n_seeds": 2, "auroc_teacher_correct": 0.6,
          "auroc_std": 0.01, "unambiguous_share": 0.5,
          "variant": "condi_sr [transfer, train, attached, class_mean]"}]
    )  # fmt: skip
    ablation.write(long, tmp_path / "a.csv", tmp_path / "a.md", diffs, boot)
    text = (tmp_path / "a.md").read_text()
    row = r"\| synthetic \| condi_sr \[transfer, train, attached, class_mean\] +\| st_ent +\|"
    assert re.search(row, text), text
    assert (tmp_path / "a_differences.csv").is_file()


def test_differences_to_the_cells_one_switch_closer_to_the_base(tmp_path):
    """With the base switches given, each cell is also compared with the cells of its method one
    switch closer to the base: a one-switch cell with the base, [crossfit, detached] with
    [crossfit] and with [detached], never the other way round and never across methods."""
    from condi.tables.table3 import Bootstrap

    base = {"protocol": "transfer", "pseudo_labels": "train", "detach_confidence": "false",
            "kd_reduction": "class_mean"}  # fmt: skip
    cells = {  # (source, detach) -> per-video correctness of one seed
        ("train", False): [1, 0, 0, 1, 0, 1, 0, 0],
        ("crossfit", False): [1, 1, 0, 1, 0, 1, 0, 0],
        ("train", True): [1, 0, 1, 1, 1, 1, 0, 0],
        ("crossfit", True): [0, 0, 0, 1, 1, 1, 1, 1],
    }
    frames = [
        video_rows("condi_sr", "1", c, seed=0, **{**base, "pseudo_labels": s,
                                                   "detach_confidence": d})
        for (s, d), c in cells.items()
    ]  # fmt: skip
    frames.append(
        video_rows("st_ent", "1", [0] * 8, seed=0, **{**base, "kd_reduction": "batchmean"})
    )
    teacher_only = {"protocol": "transfer", "pseudo_labels": None, "detach_confidence": None,
                    "kd_reduction": None}  # fmt: skip
    frames.append(video_rows("dense", "dense", [1] * 8, student="-", **teacher_only))
    paths = []
    for i, f in enumerate(frames):
        paths.append(tmp_path / f"{i}.parquet")
        f.to_parquet(paths[-1])
    videos = ablation.load_videos(paths)
    boot = Bootstrap(resamples=300, level=0.95, seed=0)
    label = "condi_sr [transfer, {}, {}, class_mean]".format
    diffs = ablation.differences(videos, [1], boot, base)
    neighbour = diffs[diffs["reference"].str.startswith("condi_sr")]
    found = {
        (r.pseudo_labels, str(r.detach_confidence), r.reference): r.diff
        for r in neighbour.itertuples()
    }

    def gap(a, b):
        return (np.mean(cells[a]) - np.mean(cells[b])) * 100

    assert found == pytest.approx({
        ("crossfit", "false", label("train", "attached")):
            gap(("crossfit", False), ("train", False)),
        ("train", "true", label("train", "attached")): gap(("train", True), ("train", False)),
        ("crossfit", "true", label("crossfit", "attached")):
            gap(("crossfit", True), ("crossfit", False)),
        ("crossfit", "true", label("train", "detached")): gap(("crossfit", True), ("train", True)),
    })  # fmt: skip
    # the st_ent cell's only neighbour of its own method would be st_ent at the base: not run
    st = diffs[diffs["method"] == "st_ent"]
    assert not st["reference"].str.startswith("st_ent").any()
    # without the base there are no such comparisons
    plain = ablation.differences(videos, [1], boot)
    assert set(plain["reference"]) <= set(ablation.REFERENCES)
    assert len(diffs) == len(plain) + 4
    # the Markdown shows the neighbour by its label
    long = pd.DataFrame(
        [{"dataset": "synthetic", "teacher": "t", "student": "s", "method": "condi_sr", **base,
          "K": "1", "top1": 50.0, "top1_std": 1.0, "n_seeds": 1, "auroc_teacher_correct": 0.6,
          "auroc_std": 0.01, "unambiguous_share": 0.5, "variant": label("train", "attached")}]
    )  # fmt: skip
    ablation.write(long, tmp_path / "a.csv", tmp_path / "a.md", diffs, boot)
    text = (tmp_path / "a.md").read_text()
    assert re.search(
        r"\| condi_sr \[transfer, crossfit, detached, class_mean\] +\| "
        r"condi_sr \[transfer, train, detached, class_mean\] +\|",
        text,
    ), text
