"""The synthetic benchmark: layout, determinism, manifest, and visible ambiguity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from condi.cli import main
from condi.data import synthetic
from condi.data.synthetic import KINDS, MANIFEST_COLUMNS, MOTIONS, generate, make_config
from tests.conftest import dataset_params


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_and_lists(tiny_root):
    cfg = make_config("tiny")
    names = (tiny_root / "ucfTrainTestlist" / "classInd.txt").read_text().splitlines()
    assert names == [f"{i + 1} {n}" for i, n in enumerate(MOTIONS[: cfg.num_classes])]
    train = (tiny_root / "ucfTrainTestlist" / "trainlist01.txt").read_text().splitlines()
    test = (tiny_root / "ucfTrainTestlist" / "testlist01.txt").read_text().splitlines()
    assert len(train) == cfg.num_classes * cfg.train_per_class
    assert len(test) == cfg.num_classes * cfg.test_per_class
    for line in train:
        rel, label = line.split()
        cls = rel.split("/")[0]
        assert int(label) == MOTIONS.index(cls) + 1
        assert (tiny_root / "UCF-101" / rel).stat().st_size > 0
    assert all(len(line.split()) == 1 and (tiny_root / "UCF-101" / line).is_file() for line in test)
    videos = sorted((tiny_root / "UCF-101").rglob("*.avi"))
    assert len(videos) == len(train) + len(test)
    config = json.loads((tiny_root / "synth_config.json").read_text())
    assert config["config"]["num_classes"] == cfg.num_classes and config["preset"] == "tiny"


def test_same_seed_same_bytes_other_seed_differs(tiny_root, tmp_path):
    generate(tmp_path / "again", preset="tiny", seed=0)
    assert _digest(tmp_path / "again") == _digest(tiny_root)
    generate(tmp_path / "other", preset="tiny", seed=1)
    other = _digest(tmp_path / "other")
    # the group sizes are drawn too, so only the first video of a class surely exists in both
    first = "UCF-101/MoveUp/v_MoveUp_g01_c01.avi"
    assert first in other and other[first] != _digest(tiny_root)[first]


def test_manifest_ground_truth(tiny_root):
    cfg = make_config("tiny")
    m = pd.read_parquet(tiny_root / "manifest.parquet")
    assert tuple(m.columns) == MANIFEST_COLUMNS
    assert set(m["kind"]) <= set(KINDS)
    assert (m["ambiguous"] == (m["kind"] != "clean")).all()
    per_video = m.groupby("video")
    assert per_video.ngroups == cfg.num_classes * (cfg.train_per_class + cfg.test_per_class)
    n = per_video["clip_index"].agg(["count", "max"])
    assert (n["count"] == n["max"] + 1).all()
    assert n["count"].between(cfg.min_clips, cfg.max_clips).all()
    assert (
        per_video["kind"].agg(lambda k: (k == "clean").sum()) >= 1
    ).all()  # one clean clip at least
    # distractor clips name one other class, the same throughout a video; others say -1
    d = m[m["kind"] == "distractor"]
    assert len(d) > 0 and (d["distractor_class"] != d["label"]).all()
    assert (d.groupby("video")["distractor_class"].nunique() == 1).all()
    assert (m.loc[m["kind"] != "distractor", "distractor_class"] == -1).all()
    assert 0.2 < m["ambiguous"].mean() < 0.8


def _video(label: int, distractor: int, cfg) -> synthetic._Video:
    h, w = cfg.height, cfg.width
    return synthetic._Video(
        label=label,
        distractor=distractor,
        background=np.full((h, w, 3), 40.0, np.float32),
        colour=np.full(3, 250.0),
        sigma=0.08 * min(h, w),
        speed=0.03 * min(h, w),
    )


def _centroid_y(frames: np.ndarray, threshold: float) -> np.ndarray:
    """Per-frame y centroid of the pixels brighter than ``threshold``."""
    mask = frames.mean(axis=-1) > threshold
    ys = np.arange(frames.shape[1])[None, :, None]
    return (mask * ys).sum(axis=(1, 2)) / np.maximum(mask.sum(axis=(1, 2)), 1)


def test_ambiguity_is_visible_in_rendered_clips():
    cfg = make_config("default")
    up, down = MOTIONS.index("MoveUp"), MOTIONS.index("MoveDown")
    video = _video(up, down, cfg)
    rng = np.random.default_rng
    clean = synthetic._render_clip(video, "clean", 16, cfg, rng(3))
    assert np.all(np.diff(_centroid_y(clean, 150)) < 0)  # the actor moves up
    # a distractor clip: the salient blob moves like the distractor class (down), and the faint
    # true actor is still there: the same clip without it differs
    distractor = synthetic._render_clip(video, "distractor", 16, cfg, rng(3))
    assert np.all(np.diff(_centroid_y(distractor, 150)) > 0)
    no_faint = make_config("default", faint_alpha=[0, 0])
    without = synthetic._render_clip(video, "distractor", 16, no_faint, rng(3))
    assert np.abs(distractor - without).max(axis=(1, 2, 3)).min() > 20
    # occlusion: a static block hides most of the motion the clean clip shows (same rng: same
    # path), so less than half of the clean clip's temporal variation remains
    occluded = synthetic._render_clip(video, "occlusion", 16, cfg, rng(3))
    assert np.ptp(occluded, axis=0).sum() < 0.5 * np.ptp(clean, axis=0).sum()
    assert np.abs(occluded - clean).max() > 50  # the block is there
    # static: every frame identical; blur: noisy frame differences everywhere
    static = synthetic._render_clip(video, "static", 16, cfg, rng(3))
    assert np.array_equal(static, np.broadcast_to(static[0], static.shape))
    blur = synthetic._render_clip(video, "blur", 16, cfg, rng(3))
    assert np.diff(blur, axis=0).std() > 20


def test_every_motion_renders_and_moves():
    cfg = make_config("default")
    for label, motion in enumerate(MOTIONS):
        video = _video(label, (label + 1) % len(MOTIONS), cfg)
        clip = synthetic._render_clip(video, "clean", 16, cfg, np.random.default_rng(0))
        assert clip.shape == (16, cfg.height, cfg.width, 3), motion
        assert np.abs(np.diff(clip, axis=0)).max() > 10, f"{motion} does not move"


def test_lengths_cover_the_range_and_last_clip_is_partial():
    cfg = make_config("default")
    ns = [synthetic._num_clips(cfg, np.random.default_rng(i)) for i in range(2000)]
    assert min(ns) == cfg.min_clips and max(ns) == cfg.max_clips
    assert 8 < np.mean(ns) < 14
    frames, kinds, _ = synthetic.render_video(0, make_config("tiny"), np.random.default_rng(5))
    assert (len(kinds) - 1) * 16 < len(frames) <= len(kinds) * 16


def test_config_errors():
    with pytest.raises(ValueError, match="unknown parameters"):
        make_config("tiny", colour="red")
    with pytest.raises(ValueError, match="num_classes"):
        make_config("tiny", num_classes=len(MOTIONS) + 1)
    with pytest.raises(ValueError, match="unknown kinds"):
        make_config("tiny", kind_probs={"fog": 1.0})
    with pytest.raises(ValueError, match="unknown preset"):
        make_config("huge")
    assert make_config("tiny", ambiguous_share=[0.5, 0.5]).ambiguous_share == (0.5, 0.5)


def test_cli_synth_with_overrides(tmp_path):
    out = tmp_path / "s"
    overrides = {"num_classes": 2, "max_clips": 3, "kind_probs": {"static": 1}}
    params = dataset_params(tmp_path / "p.yaml", out, preset="tiny", seed=3, overrides=overrides)
    rc = main(["data", "synth", "--params", str(params), "--dataset", "synthetic"])
    assert rc == 0
    m = pd.read_parquet(out / "manifest.parquet")
    assert m["label"].nunique() == 2 and m["num_clips"].max() <= 3
    assert set(m["kind"]) <= {"clean", "static"}
    assert json.loads((out / "synth_config.json").read_text())["seed"] == 3


def _centroid_x(frames: np.ndarray, threshold: float) -> np.ndarray:
    mask = frames.mean(axis=-1) > threshold
    xs = np.arange(frames.shape[2])[None, None, :]
    return (mask * xs).sum(axis=(1, 2)) / np.maximum(mask.sum(axis=(1, 2)), 1)


def test_direction_classes_move_their_way_and_the_others_both_ways():
    cfg = make_config("default")
    left, right = MOTIONS.index("MoveLeft"), MOTIONS.index("MoveRight")
    for label, sign in ((left, -1), (right, 1)):
        for seed in range(6):
            clip = synthetic._render_clip(
                _video(label, 2, cfg), "clean", 16, cfg, np.random.default_rng(seed)
            )
            assert np.all(sign * np.diff(_centroid_x(clip, 150)) > 0), (MOTIONS[label], seed)
    # ZigZag (a sideways class that is not a direction class) faces either way
    zigzag = MOTIONS.index("ZigZag")
    signs = set()
    for seed in range(12):
        clip = synthetic._render_clip(
            _video(zigzag, 2, cfg), "clean", 16, cfg, np.random.default_rng(seed)
        )
        x = _centroid_x(clip, 150)
        signs.add(int(np.sign(x[-1] - x[0])))
    assert signs == {-1, 1}


def test_groups_as_ucf101_has_them(tiny_root, tiny_index):
    cfg = make_config("tiny")
    m = pd.read_parquet(tiny_root / "manifest.parquet")
    videos = m.groupby("video")[["group", "split", "label"]].first()
    # file names say the group (v_<Class>_gGG_cCC), the manifest agrees, a group has one split
    parsed = [f"{v.split('/')[1]}/g{v.split('_g')[1][:2]}" for v in videos.index]
    assert list(videos["group"]) == parsed
    assert (videos.groupby("group")["split"].nunique() == 1).all()
    sizes = videos.groupby("group").size()
    assert sizes.between(1, int(cfg.group_size[1])).all() and (sizes == 2).any()
    # the index's groups are the manifest's
    df, _ = tiny_index
    assert df.groupby("video")["group"].first().equals(videos["group"])


def test_group_members_are_near_duplicates_of_one_appearance():
    """Members share the background (up to the jitter); other groups of the class do not."""
    cfg = make_config("default")
    look = synthetic._draw_video(0, cfg, np.random.default_rng([0, 0, 1]))
    other = synthetic._draw_video(0, cfg, np.random.default_rng([0, 0, 2]))
    members = [
        synthetic._group_member(look, cfg, np.random.default_rng([0, 0, 1, c])) for c in (1, 2, 3)
    ]
    for a in members:
        diff = a.background - look.background
        assert np.abs(diff - diff.mean()).max() < 1e-3  # one offset over the whole frame
        assert abs(diff.mean()) <= cfg.video_jitter
        assert np.array_equal(a.colour, look.colour) and a.sigma == look.sigma
        assert abs(a.speed / look.speed - 1) <= 0.05
        d = a.background - other.background  # another group: another texture, not an offset
        assert np.abs(d - d.mean()).mean() > 3


def test_group_sizes_fill_the_count():
    cfg = make_config("default")
    for seed in range(20):
        sizes = synthetic.group_sizes(25, cfg, np.random.default_rng(seed))
        assert sum(sizes) == 25 and all(1 <= s <= 4 for s in sizes)
        assert all(s >= 2 for s in sizes[:-1])
    with pytest.raises(ValueError, match="group_size"):
        make_config("tiny", group_size=[0, 2])


def test_the_source_palette_is_disjoint_from_the_target_s():
    """The transfer protocol's source (preset ``source``, palette ``colour``) and the target
    (``default``, ``grey``) share no actor colour and no background tint: every grey actor
    channel is >= 255 - actor_tint, every colour one < 255 - colour_actor_dim[0]; a grey
    background's channels differ by at most 2 * background_tint, a colour one's by far more
    (docs/method.md, section 2.5)."""
    grey, colour = make_config("default"), make_config("source")
    assert (grey.palette, colour.palette) == ("grey", "colour")
    assert colour.num_classes > grey.num_classes  # more classes in Kinetics' role
    for seed in range(30):
        g = synthetic._draw_video(1, grey, np.random.default_rng(seed))
        c = synthetic._draw_video(1, colour, np.random.default_rng(seed))
        assert (g.colour >= 255 - grey.actor_tint).all()
        assert (c.colour <= 255 - colour.colour_actor_dim[0]).all()
        # the background's per-channel level (texture and gradient average out over the frame)
        gl, cl = g.background.mean(axis=(0, 1)), c.background.mean(axis=(0, 1))
        assert np.ptp(gl) <= 2 * grey.background_tint + 1
        assert np.ptp(cl) >= 2 * grey.background_tint + 20
    with pytest.raises(ValueError, match="palette"):
        make_config("tiny", palette="sepia")


def test_training_videos_can_be_shorter_than_test_videos(tmp_path):
    generate(tmp_path, preset="tiny", seed=2, train_max_clips=3, min_clips=2, max_clips=6)
    m = pd.read_parquet(tmp_path / "manifest.parquet").groupby("video").first()
    assert m.loc[m["split"] == "train", "num_clips"].between(2, 3).all()
    assert m.loc[m["split"] == "test", "num_clips"].max() > 3
    assert make_config("default").train_max_clips == 12
    with pytest.raises(ValueError, match="train_max_clips"):
        make_config("tiny", train_max_clips=1)
