"""Something-Something V2: label mapping, seeded stratified split, chunk joining, VP9 decoding."""

from __future__ import annotations

import argparse
import io
import json
import random
import tarfile
import zipfile
from collections import Counter

import av
import pytest

from condi.cli.data_sources import register_data_commands
from condi.data import ssv2
from condi.data.folder import stratified_holdout

LABELS = {
    "Approaching something with your camera": "0",
    "Holding something next to something": "1",
    "Pretending to pick something up": "2",
}
TEMPLATES = [
    "Approaching [something] with your camera",
    "Holding [something] next to [something]",
    "Pretending to pick [something] up",
]
PER_CLASS = {0: 10, 1: 20, 2: 5}


def _entry(video_id: int, label: int) -> dict:
    return {
        "id": str(video_id),
        "label": TEMPLATES[label].replace("[something]", "a cup"),
        "template": TEMPLATES[label],
        "placeholders": ["a cup"] * TEMPLATES[label].count("["),
    }


def _write_labels(folder, train, validation) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.json").write_text(json.dumps(LABELS))
    (folder / "train.json").write_text(json.dumps(train))
    (folder / "validation.json").write_text(json.dumps(validation))


def _train_entries() -> list[dict]:
    entries, next_id = [], 100
    for label, n in PER_CLASS.items():
        for _ in range(n):
            entries.append(_entry(next_id, label))
            next_id += 7
    return entries


@pytest.fixture
def ssv2_root(tmp_path, video_writer):
    root = tmp_path / "ssv2"
    train = _train_entries()
    validation = [_entry(5, 0), _entry(6, 1), _entry(7, 2), _entry(8, 2)]
    _write_labels(root / "labels", train, validation)
    videos = root / ssv2.VIDEO_DIR
    # All but two training videos and one validation video exist.
    absent = {train[3]["id"], train[15]["id"], "8"}
    for i, entry in enumerate(train + validation):
        if entry["id"] not in absent:
            video_writer(videos / f"{entry['id']}.webm", 3, 12, (32, 24), seed=i)
    return root


def test_labels_and_splits(ssv2_root):
    records, names = ssv2.list_videos(ssv2_root, 1)
    assert names == list(LABELS)
    by_path = {r.path: r for r in records}
    rec = by_path["20bn-something-something-v2/6.webm"]
    assert (rec.label, rec.label_name, rec.split) == (
        1,
        "Holding something next to something",
        "test",
    )
    assert {r.split for r in records if r.path.split("/")[1] in {"5.webm", "6.webm", "7.webm"}} == {
        "test"
    }
    for r in records:
        assert (ssv2_root / r.path).is_file()


def test_split_is_stratified_and_seeded(ssv2_root):
    listing = ssv2.scan(ssv2_root)
    train_val = [r for r in listing.records if r.split in ("train", "val")]
    assert len(train_val) == sum(PER_CLASS.values()) - 2
    # The split is made over the official list sorted by id (whatever files exist):
    # round(0.1 * n) per class, at least one: 10 -> 1, 20 -> 2, 5 -> 1.
    ids = sorted((int(e["id"]), TEMPLATES.index(e["template"])) for e in _train_entries())
    flags = stratified_holdout([label for _, label in ids], 0.1, 0)
    assert Counter(label for (_, label), f in zip(ids, flags, strict=True) if f) == Counter(
        {0: 1, 1: 2, 2: 1}
    )
    expected_val = {
        f"20bn-something-something-v2/{vid}.webm"
        for (vid, _), f in zip(ids, flags, strict=True)
        if f
    }
    got_val = {r.path for r in listing.records if r.split == "val"}
    assert got_val == expected_val - set(listing.missing)
    # Same seed, same split.
    assert ssv2.scan(ssv2_root, seed=0).records == listing.records


def test_split_ignores_json_order_and_depends_on_seed(ssv2_root):
    base = {r.path: r.split for r in ssv2.scan(ssv2_root).records}
    train = json.loads((ssv2_root / "labels" / "train.json").read_text())
    random.Random(1).shuffle(train)
    (ssv2_root / "labels" / "train.json").write_text(json.dumps(train))
    assert {r.path: r.split for r in ssv2.scan(ssv2_root).records} == base
    other = {r.path: r.split for r in ssv2.scan(ssv2_root, seed=1).records}
    assert other != base
    assert set(other) == set(base)


def test_missing_videos_counted(ssv2_root, caplog):
    listing = ssv2.scan(ssv2_root)
    assert len(listing.missing) == 3
    assert "20bn-something-something-v2/8.webm" in listing.missing
    assert "3 of 39 listed videos are missing" in caplog.text


def test_unknown_template_is_an_error(ssv2_root):
    train = json.loads((ssv2_root / "labels" / "train.json").read_text())
    train[0]["template"] = "Juggling [something]"
    (ssv2_root / "labels" / "train.json").write_text(json.dumps(train))
    with pytest.raises(ValueError, match="Juggling something"):
        ssv2.scan(ssv2_root)


def test_webm_vp9_decodes(ssv2_root):
    path = ssv2_root / ssv2.VIDEO_DIR / "5.webm"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("vp9", "libvpx-vp9")
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 3 and frames[0].shape == (24, 32, 3)


# ----------------------------------------------------------------------------------------------
# condi data ssv2: instructions, joining chunks
# ----------------------------------------------------------------------------------------------


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="condi data")
    register_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _make_chunks(source_root, dest, n_chunks: int) -> bytes:
    """A gzipped tar of ``source_root/20bn-something-something-v2`` cut into ``n_chunks``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(source_root / ssv2.VIDEO_DIR, arcname=ssv2.VIDEO_DIR)
    data = buffer.getvalue()
    step = len(data) // n_chunks + 1
    for i in range(n_chunks):
        (dest / f"20bn-something-something-v2-{i:02d}").write_bytes(data[i * step : (i + 1) * step])
    return data


def test_cli_without_files_prints_instructions(tmp_path, capsys):
    root = tmp_path / "empty"
    root.mkdir()
    assert _run_cli(["ssv2", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "20bn-something-something-v2-00" in out
    assert str(root / "labels") in out
    assert "labels.json, train.json and validation.json" in out
    assert f"{root / ssv2.VIDEO_DIR}/<id>.webm" in out
    assert "Still missing" in out


def test_prepare_joins_chunks_and_unzips_labels(ssv2_root, tmp_path, capsys):
    root = tmp_path / "placed"
    root.mkdir()
    _make_chunks(ssv2_root, root, 3)
    # One chunk arrives still inside its zip, as downloaded.
    chunk1 = root / "20bn-something-something-v2-01"
    with zipfile.ZipFile(root / "20bn-something-something-v2-01.zip", "w") as zf:
        zf.write(chunk1, arcname=chunk1.name)
    chunk1.unlink()
    with zipfile.ZipFile(root / ssv2.LABELS_ZIP, "w") as zf:
        for name in ("labels.json", "train.json", "validation.json"):
            zf.write(ssv2_root / "labels" / name, arcname=f"labels/{name}")

    assert _run_cli(["ssv2", "--root", str(root)]) == 0
    assert "SSv2 ready" in capsys.readouterr().out
    expected = sorted(p.name for p in (ssv2_root / ssv2.VIDEO_DIR).glob("*.webm"))
    assert sorted(p.name for p in (root / ssv2.VIDEO_DIR).glob("*.webm")) == expected
    assert (root / ssv2.VIDEO_DIR / "5.webm").read_bytes() == (
        ssv2_root / ssv2.VIDEO_DIR / "5.webm"
    ).read_bytes()
    records, _ = ssv2.list_videos(root, 1)
    assert len(records) == 36

    # A second run skips the extraction (marker), and can delete the chunks.
    (root / ssv2.VIDEO_DIR / "5.webm").unlink()
    report = ssv2.prepare(root, delete_chunks=True)
    assert report.ready and report.chunks == []
    assert not (root / ssv2.VIDEO_DIR / "5.webm").exists()


def test_chunk_gap_is_reported(ssv2_root, tmp_path):
    root = tmp_path / "gap"
    root.mkdir()
    _make_chunks(ssv2_root, root, 3)
    (root / "20bn-something-something-v2-01").unlink()
    with pytest.raises(FileNotFoundError, match="v2-01 is missing"):
        ssv2.prepare(root)


def test_prepare_accepts_videos_extracted_by_hand(ssv2_root):
    report = ssv2.prepare(ssv2_root)
    assert report.ready and report.missing == []
