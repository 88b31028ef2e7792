"""The speed report (condi report speed, condi.evaluation.speed) on tiny models and videos: the
videos it writes have the drawn lengths, the table has one row per (device, dataset, pair,
mode, configuration), the clips each model ran on follow the method, and every ratio is
computed from the measured times and the multiply-adds (no wall-clock assertion)."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from condi.evaluation import speed
from condi.models import build_model, build_student
from condi.models.complexity import multiply_adds

REPO = Path(__file__).resolve().parents[2]
L, CROP = 4, 12
T_KW = {"layers": [1, 1, 1, 1], "base_width": 4, "cardinality": 2, "stem_width": 8}


def tiny_cfg() -> dict:
    return {
        "teachers": {"tea": {"arch": "resnext101", "kwargs": T_KW}},
        "students": {"stu": {"arch": "shufflenetv2", "kwargs": {"width_mult": 0.25}}},
        "num_classes": 3,
        "clip_len": L,
        "short_side": 16,
        "crop_size": CROP,
        "K": [1, 2],
        "Ks": [0, 1, 5],  # 5 > Ks_K: left out
        "Ks_K": 2,
        "videos": 3,
        "datasets": {
            "ucf": {
                "seconds": 0.6,
                "min_seconds": 0.3,
                "max_seconds": 0.9,
                "cv": 0.8,
                "fps": [20],
                "width": 32,
                "height": 24,
                "codec": "h264",
                "container": "avi",
                "source": "made up for the test",
            },
            "kin": {
                "seconds": 0.5,
                "cv": 0.0,
                "fps": [10, 20],
                "width": 34,
                "height": 26,
                "codec": "mpeg4",
                "container": "mp4",
            },
        },  # fmt: skip
        "modes": ["model", "end_to_end"],
        "devices": ["cpu", "cuda"],
        "repeats": 1,
        "channels_last": False,
        "fuse": True,
        "batch_size": 2,
    }


def test_lengths_are_lognormal_quantiles():
    got = speed.length_quantiles(7.21, 0.5, 4)
    sigma = math.sqrt(math.log(1 + 0.25))
    mu = math.log(7.21) - sigma**2 / 2
    want = [math.exp(mu + sigma * NormalDist().inv_cdf(q)) for q in (0.125, 0.375, 0.625, 0.875)]
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert speed.length_quantiles(10.0, 0.0, 3).tolist() == [10.0, 10.0, 10.0]
    assert speed.length_quantiles(7.21, 3.0, 5, 1.06, 71.04).min() == 1.06  # clipped


def test_specs_follow_the_dataset_figures():
    specs = speed.video_specs(tiny_cfg())
    kin = [s for s in specs if s.dataset == "kin"]
    assert [(s.seconds, s.fps, s.frames, s.n_clips) for s in kin] == [
        (0.5, 10.0, 5, 2),
        (0.5, 20.0, 10, 3),
        (0.5, 10.0, 5, 2),
    ]
    ucf = [s for s in specs if s.dataset == "ucf"]
    for s in ucf:
        assert 0.3 <= s.seconds <= 0.9 and s.frames == round(s.seconds * 20)
        assert s.n_clips == math.ceil(s.frames / L)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("speed_videos")
    return speed.run_speed(tiny_cfg(), seed=0, work_dir=work), work


def test_the_videos_are_written_with_their_sizes_and_lengths(result):
    from condi.data.video import probe_video

    res, work = result
    for s in res.specs:
        info = probe_video(work / s.name, count="decode")
        assert (info.num_frames, info.width, info.height) == (s.frames, s.width, s.height)
        assert info.codec == s.codec


def test_table_structure(result):
    res, _ = result
    s = res.summary
    assert list(s.columns) == speed.SPEED_COLUMNS
    configs = [("dense", "All", None), ("condi_sr", "1", None), ("condi_sr", "2", None),
               ("condi_sr_split", "2", 0), ("condi_sr_split", "2", 1)]  # fmt: skip
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    assert len(s) == len(devices) * 2 * 2 * len(configs)  # devices x datasets x modes x configs
    for _, sub in s.groupby(["device", "dataset", "mode"]):
        got = [(r.method, r.K, None if pd.isna(r.Ks) else int(r.Ks)) for r in sub.itertuples()]
        assert got == configs  # in the order of the configurations
        assert (sub["n_videos"] == 3).all() and (sub["teacher"] == "tea").all()
    if not torch.cuda.is_available():
        assert res.notes == ["cuda: skipped, no CUDA device is available on this machine"]
    assert (s["clip_shape"] == f"3x{L}x{CROP}x{CROP}").all()
    assert s["fuse"].all() and not s["channels_last"].any()
    assert (s["teacher_batch"] == "2").all() and (s["student_batch"] == "2").all()
    model = s[s["mode"] == "model"]
    assert (model["decode_s"] == 0).all()
    assert (s[s["mode"] == "end_to_end"]["decode_s"] > 0).all()
    assert set(s["video_file"]) == {"32x24 h264 avi", "34x26 mpeg4 mp4"}


def test_clips_per_model_follow_the_method(result):
    pv = result[0].per_video
    for r in pv.itertuples():
        n = r.n_clips
        if r.method == "dense":
            want = (n, 0)
        else:
            k = int(r.K)
            if k >= n:  # every method is dense, the student is not run
                want = (n, 0)
            elif r.method == "condi_sr":
                want = (k, n)
            else:
                want = (k - int(r.Ks), n)
        assert (r.teacher_clips, r.student_clips) == want, r


def test_ratios_come_from_the_measured_times_and_macs(result):
    res, _ = result
    cfg = tiny_cfg()
    shape = (1, 3, L, CROP, CROP)
    t_macs = multiply_adds(build_model("resnext101", 3, **T_KW), shape)
    s_macs = multiply_adds(build_student("shufflenetv2", 3, width_mult=0.25), shape)
    pv = res.per_video
    for r in res.summary.itertuples():
        grp = pv[(pv["device"] == r.device) & (pv["dataset"] == r.dataset) & (pv["mode"] == r.mode)]
        sel = grp[(grp["method"] == r.method) & (grp["K"] == r.K)]
        if not pd.isna(r.Ks):
            sel = sel[sel["Ks"] == r.Ks]
        dense = grp[grp["method"] == "dense"]
        assert len(sel) == cfg["videos"]
        time_ratio = sel["seconds"].mean() / dense["seconds"].mean()
        gm = (sel["teacher_clips"] * t_macs + sel["student_clips"] * s_macs).mean() / 1e9
        gm_dense = (dense["teacher_clips"] * t_macs).mean() / 1e9
        assert r.time_s == pytest.approx(sel["seconds"].mean(), rel=1e-12)
        assert r.time_ratio == pytest.approx(time_ratio, rel=1e-12)
        assert r.gmacs_per_video == pytest.approx(gm, rel=1e-12)
        assert r.mac_ratio == pytest.approx(gm / gm_dense, rel=1e-12)
        assert r.time_over_mac == pytest.approx(time_ratio / (gm / gm_dense), rel=1e-12)
        cpu_ratio = sel["cpu_s"].mean() / dense["cpu_s"].mean()
        assert r.cpu_ratio == pytest.approx(cpu_ratio, rel=1e-12)
        assert r.clips_per_video == pytest.approx(sel["n_clips"].mean())
    dense = res.summary[res.summary["method"] == "dense"]
    assert (dense["time_ratio"] == 1.0).all() and (dense["mac_ratio"] == 1.0).all()


def test_markdown_and_csv(result, tmp_path):
    res, _ = result
    cfg = tiny_cfg()
    speed.write(res, cfg, tmp_path / "speed.csv", tmp_path / "speed.md")
    back = pd.read_csv(tmp_path / "speed.csv", dtype={"K": str})
    assert list(back.columns) == speed.SPEED_COLUMNS and len(back) == len(res.summary)
    md = (tmp_path / "speed.md").read_text()
    assert "made up for the test" in md and "cv 0.8 (assumed)" in md
    assert "### ucf" in md and "### kin" in md
    assert "| tea + stu | condi_sr_split | 2 | 1 |" in md
    if not torch.cuda.is_available():
        assert "Note: cuda: skipped" in md


def test_target_rows():
    summary = pd.DataFrame(
        {
            "device": ["cpu", "cpu", "cpu", "cuda"],
            "mode": ["model", "model", "end_to_end", "model"],
            "method": ["condi_sr"] * 4,
            "K": ["5"] * 4,
            "dataset": ["ucf101"] * 4,
            "teacher": ["t"] * 4,
            "student": ["shuffle", "mobile", "shuffle", "shuffle"],
            "time_ratio": [0.55, 0.65, 0.6, 0.9],
            "mac_ratio": [0.5, 0.5, 0.5, 0.5],
            "time_over_mac": [1.1, 1.3, 1.2, 1.8],
            "cpu_ratio": [0.5, 0.6, 0.6, 0.9],
        }
    )
    students = {"shuffle": {"arch": "shufflenetv2"}, "mobile": {"arch": "mobilenetv2"}}
    rows = speed.target_rows(summary, students)
    assert rows["pair"].tolist() == ["t + shuffle", "t + mobile"]  # CPU, models alone only
    assert rows["meets_time_over_mac"].tolist() == [True, True]  # 1.1 <= 1.15, 1.3 <= 1.3
    assert rows["meets_paper_ratio"].tolist() == [True, False]  # 0.55, 0.65 vs 2.31 / 3.7
    assert rows["cpu_over_mac"].tolist() == pytest.approx([1.0, 1.2])


def test_the_stage_is_apart_from_the_default_run(tmp_path):
    from condi.cli import main
    from condi.config import validate
    from condi.pipeline import SPEED_CSV, SPEED_MD, STAGES, targets

    with open(REPO / "params.yaml") as f:
        p = yaml.safe_load(f)
    config = validate(p)
    assert SPEED_CSV not in targets(config)
    assert targets(config, part="speed") == [SPEED_CSV, SPEED_MD]
    assert STAGES["speed"].part == "speed"
    # the command, from params only
    cfg = tiny_cfg()
    cfg.update(videos=1, devices=["cpu"], modes=["model"])
    cfg["datasets"] = {"kin": cfg["datasets"]["kin"]}
    p.update(threads=1, speed=cfg)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    out_csv, out_md = tmp_path / "speed.csv", tmp_path / "speed.md"
    rc = main(["report", "speed", "--params", str(tmp_path / "params.yaml"),
               "--out-csv", str(out_csv), "--out-md", str(out_md)])  # fmt: skip
    assert rc == 0
    df = pd.read_csv(out_csv)
    assert len(df) == 5 and set(df["mode"]) == {"model"}
    assert np.isclose(df.loc[df["method"] == "dense", "time_ratio"], 1.0).all()
