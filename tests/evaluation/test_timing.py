"""Timing (Tables IV, V): on tiny models, a hand-made index and clip cache, the accuracy of
the timed inference equals the evaluation grid's on the stored scores, and the multiply-adds
per video add up."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from condi.data.index import INDEX_COLUMNS, write_index
from condi.data.indexed import load_data
from condi.evaluation.run import clip_scores, evaluate, save_scores
from condi.evaluation.timing import configurations, run_timing
from condi.methods import TIMED_METHODS
from condi.models import build_model, build_student
from condi.models.checkpoint import save_model
from condi.models.complexity import multiply_adds

REPO = Path(__file__).resolve().parents[2]
C, L, S, CROP = 3, 4, 10, 8
TEST_LENGTHS = [2, 5, 7, 1, 4, 8]
TEACHER_KW = {"layers": [1, 1, 1, 1], "base_width": 8, "cardinality": 4, "stem_width": 8}
STUDENT_KW = {"width_mult": 0.25}
METHODS = TIMED_METHODS


def params_dict() -> dict:
    with open(REPO / "params.yaml") as f:
        p = yaml.safe_load(f)
    p["threads"] = 1
    p["device"] = "cpu"
    p["data"].update(clip_len=L, short_side=S, crop_size=CROP)
    p["evaluation"].update(K=[1, 3, 5], Ks=[0, 1, 3], Ks_K=3, random_seeds=[0, 1], batch_size=4)
    return p


def make_index(tmp: Path) -> tuple[Path, Path]:
    """Two training videos and len(TEST_LENGTHS) test videos; uint8 clip cache."""
    vids = [("train", 2, i % C) for i in range(2)]
    vids += [("test", n, i % C) for i, n in enumerate(TEST_LENGTHS)]
    rows = []
    for vid, (split, n, label) in enumerate(vids):
        for c in range(n):
            rows.append(
                {
                    "video": f"c{label}/v{vid:02d}.avi",
                    "video_id": vid,
                    "label": label,
                    "label_name": f"class{label}",
                    "group": f"c{label}/v{vid:02d}.avi",
                    "split": split,
                    "clip_index": c,
                    "num_clips": n,
                    "start_frame": c * L,
                    "end_frame": (c + 1) * L,
                    "num_frames": n * L,
                    "fps": 25.0,
                    "duration": n * L / 25.0,
                    "width": S,
                    "height": S,
                }
            )
    df = pd.DataFrame(rows)[list(INDEX_COLUMNS)]
    meta = {
        "kind": "ucf101",
        "root": str(tmp),
        "fold": 1,
        "clip_len": L,
        "class_names": [f"class{i}" for i in range(C)],
        "num_classes": C,
    }
    index = tmp / "index.parquet"
    write_index(df, index, meta)
    cache = tmp / "cache.npy"
    arr = np.lib.format.open_memmap(cache, mode="w+", dtype=np.uint8, shape=(len(df), L, S, S, 3))
    arr[:] = np.random.default_rng(0).integers(0, 256, size=arr.shape, dtype=np.uint8)
    arr.flush()
    del arr
    return index, cache


def make_models(tmp: Path) -> tuple[Path, dict[str, Path]]:
    torch.manual_seed(0)
    teacher = build_model("resnext101", C, **TEACHER_KW)
    t_path = tmp / "teacher.pt"
    save_model(t_path, teacher, role="teacher", arch="resnext101", kwargs=TEACHER_KW, num_classes=C)
    students = {}
    for i, m in enumerate(METHODS):
        torch.manual_seed(10 + i)
        s = build_student("shufflenetv2", C, **STUDENT_KW)
        students[m] = tmp / f"student_{m}.pt"
        save_model(
            students[m],
            s,
            role="student",
            arch="shufflenetv2",
            kwargs=STUDENT_KW,
            num_classes=C,
            method=m,
        )
    return t_path, students


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("timing")
    index, cache = make_index(tmp)
    t_path, s_paths = make_models(tmp)
    params = params_dict()
    data = load_data(index, cache)
    t_scores = clip_scores(params, t_path, data)
    save_scores(tmp / "teacher.npz", t_scores)
    s_scores = {}
    for m, p in s_paths.items():
        s_scores[m] = clip_scores(params, p, data)
        save_scores(tmp / f"student_{m}.npz", s_scores[m])
    return dict(
        tmp=tmp,
        index=index,
        cache=cache,
        teacher=t_path,
        students=s_paths,
        params=params,
        data=data,
        t_scores=t_scores,
        s_scores=s_scores,
    )


def _models(a):
    from condi.models.checkpoint import load_model

    teacher, _ = load_model(a["teacher"])
    students = {m: load_model(p)[0] for m, p in a["students"].items()}
    return teacher, students


def test_configurations():
    cfgs = configurations(["condi_sr", "st_ent"], [1, 5], split_k=5, split_ks=[0, 2])
    names = [(c.method, c.k_label, c.ks) for c in cfgs]
    assert names[0] == ("dense", "All", None)
    assert ("equidistant", "5", None) in names and ("st_ent", "1", None) in names
    assert [n for n in names if n[0] == "condi_sr_split"] == [
        ("condi_sr_split", "5", 0),
        ("condi_sr_split", "5", 2),
    ]
    assert len(configurations(["st_ent"], [1], split_k=5, split_ks=[0])) == 3  # no split
    with pytest.raises(ValueError):
        configurations(["oracle"], [1])


@pytest.fixture(scope="module")
def timed(artefacts):
    a = artefacts
    teacher, students = _models(a)
    summary, per_video = run_timing(
        a["params"],
        a["data"],
        teacher,
        students,
        torch.device("cpu"),
        warmup=1,
        teacher_scores=a["t_scores"],
        student_scores=a["s_scores"],
    )
    return summary, per_video, teacher, students


def test_timed_accuracy_equals_the_grid(artefacts, timed):
    a = artefacts
    summary, per_video, _, _ = timed
    # the grid of Table III on the same stored scores, computed independently here
    grid = pd.concat(
        [
            evaluate(a["params"], a["data"].index, a["t_scores"]),
            evaluate(a["params"], a["data"].index, a["t_scores"], a["s_scores"]),
        ]
    )
    grid["K"] = grid["K"].replace({"dense": "All"})
    grid["Ks"] = grid["Ks"].astype("Int64")
    merged = summary.merge(grid[["method", "K", "Ks", "top1"]], on=["method", "K", "Ks"])
    assert len(merged) == len(summary) == 1 + 3 + 3 * 3 + 3  # dense, equidistant, 3 students, split
    np.testing.assert_allclose(merged["top1_x"], merged["top1_y"], atol=1e-9)
    np.testing.assert_allclose(summary["top1"], summary["top1_grid"], atol=1e-9)
    assert (summary["time_s"] > 0).all() and (summary["n_videos"] == len(TEST_LENGTHS)).all()
    assert set(summary["device"]) == {"cpu"} and set(summary["decoding"]) == {"excluded"}
    assert len(per_video) == len(TEST_LENGTHS) * len(summary)


def test_multiply_adds_per_video(timed):
    summary, _, teacher, students = timed
    t = multiply_adds(teacher, (1, 3, L, CROP, CROP)) / 1e9
    s = multiply_adds(students["condi_sr"], (1, 3, L, CROP, CROP)) / 1e9
    n = np.array(TEST_LENGTHS)
    row = summary.set_index(["method", "K", "Ks"])

    def get(method, k, ks=pd.NA):
        return row.loc[(method, k, ks)]

    dense = get("dense", "All")
    assert dense["gmacs_per_video"] == pytest.approx(n.mean() * t)
    assert dense["teacher_gmacs_per_clip"] == pytest.approx(t)
    assert dense["student_gmacs_per_clip"] == pytest.approx(s)
    # condi_sr at K=3: teacher on min(3, N) clips, the student on all N only when N > 3
    expect = (np.minimum(n, 3) * t + np.where(n > 3, n, 0) * s).mean()
    r = get("condi_sr", "3")
    assert r["gmacs_per_video"] == pytest.approx(expect)
    assert r["speedup_gmacs"] == pytest.approx(n.mean() * t / expect)
    assert r["teacher_clips_per_video"] == pytest.approx(np.minimum(n, 3).mean())
    eq = get("equidistant", "3")
    assert eq["gmacs_per_video"] == pytest.approx(np.minimum(n, 3).mean() * t)
    # the split at K=3 with Ks=1: the teacher sees 2 clips where N > 3
    sp = get("condi_sr_split", "3", 1)
    expect = (np.where(n > 3, 2, n) * t + np.where(n > 3, n, 0) * s).mean()
    assert sp["gmacs_per_video"] == pytest.approx(expect)
    assert dense["speedup_time"] == pytest.approx(1.0)


def test_max_videos_sample_matches_grid_on_the_same_videos(artefacts):
    a = artefacts
    teacher, students = _models(a)
    summary, per_video = run_timing(
        a["params"],
        a["data"],
        teacher,
        {"condi_sr": students["condi_sr"]},
        torch.device("cpu"),
        max_videos=3,
        ks=[1, 3],
        warmup=0,
        teacher_scores=a["t_scores"],
        student_scores={"condi_sr": a["s_scores"]["condi_sr"]},
    )
    assert (summary["n_videos"] == 3).all()
    assert per_video["video"].nunique() == 3
    np.testing.assert_allclose(summary["top1"], summary["top1_grid"], atol=1e-9)


def test_cli_timing_writes_the_csv(artefacts, tmp_path, monkeypatch):
    from condi.cli import main

    monkeypatch.setenv("CONDI_TRACKING", "0")
    a = artefacts
    p = copy.deepcopy(a["params"])
    p["timing"].update(max_videos=3, warmup=0)  # what the stage reads from params.yaml
    p["evaluation"]["K"] = [2]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(p))
    out = tmp_path / "timing.csv"
    argv = ["report", "timing", "--params", str(params), "--dataset", "synthetic", "--fold", "1"]
    argv += ["--teacher", "resnext14", "--student", next(iter(p["students"]))]
    argv += ["--index", str(a["index"]), "--cache", str(a["cache"])]
    argv += ["--teacher-ckpt", str(a["teacher"]), "--student-ckpt", str(a["students"]["condi_sr"])]
    argv += ["--teacher-scores", str(a["tmp"] / "teacher.npz"), "--out", str(out)]
    argv += ["--student-scores", str(a["tmp"] / "student_condi_sr.npz")]
    assert main(argv) == 0
    df = pd.read_csv(out, dtype={"K": str})
    assert df.loc[0, "teacher"] == "resnext14" and df.loc[0, "student"] == next(
        iter(a["params"]["students"])
    )
    assert set(df["method"]) == {"dense", "equidistant", "condi_sr", "condi_sr_split"}
    np.testing.assert_allclose(df["top1"], df["top1_grid"], atol=1e-9)
    assert (df["threads"] == 1).all()
