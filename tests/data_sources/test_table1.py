"""Table I from tiny hand-made index parquet files, and the data-source CLI commands."""

from __future__ import annotations

import argparse
import io
import json
import tarfile

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from condi.cli.data_sources import register_data_commands
from condi.data.table1 import COLUMNS, table1_rows, write_table


def _write_index(path, videos: list[tuple[str, int, str, int, float]], meta: dict | None) -> None:
    """``videos``: (video_id, label, split, num_clips, duration); one row per clip is written."""
    rows = []
    for video_id, label, split, num_clips, duration in videos:
        for clip in range(num_clips):
            rows.append(
                {
                    "video": f"{video_id}.avi",
                    "video_id": video_id,
                    "label": label,
                    "split": split,
                    "clip": clip,
                    "num_clips": num_clips,
                    "duration": duration,
                }
            )
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    if meta is not None:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"condi": json.dumps(meta).encode()}
        )
    pq.write_table(table, path)


@pytest.fixture
def indexes(tmp_path):
    ucf = tmp_path / "ucf.parquet"
    _write_index(
        ucf,
        [
            ("a", 0, "train", 3, 2.0),
            ("b", 1, "train", 5, 3.0),
            ("c", 1, "val", 1, 0.5),
            ("d", 0, "test", 7, 4.5),
        ],
        {"num_classes": 101, "class_names": ["x"] * 101, "dataset": "ucf101", "fold": 1},
    )
    synth = tmp_path / "synth.parquet"
    _write_index(synth, [("s1", 0, "train", 2, 1.0), ("s2", 2, "test", 4, 2.0)], None)
    return {"ucf101": ucf, "synthetic": synth}


def test_table1_rows(indexes):
    df = table1_rows(indexes)
    assert list(df.columns) == COLUMNS
    assert list(df["dataset"]) == ["ucf101", "synthetic"]
    ucf = df.iloc[0]
    assert (ucf.instances_train, ucf.instances_val, ucf.instances_test, ucf.instances) == (
        2,
        1,
        1,
        4,
    )
    assert ucf.mean_length_s == pytest.approx(2.5)
    assert ucf.classes == 101  # from the metadata, not the 2 labels seen
    assert ucf.clips_per_video_mean == pytest.approx(4.0)
    assert (ucf.clips_per_video_min, ucf.clips_per_video_max) == (1, 7)
    synth = df.iloc[1]
    assert (synth.instances_val, synth.instances, synth.classes) == (0, 2, 2)  # labels fallback


def test_write_table_atomic(indexes, tmp_path):
    df = table1_rows(indexes)
    csv_path, md_path = tmp_path / "results" / "table1.csv", tmp_path / "results" / "table1.md"
    write_table(df, csv_path, md_path)
    back = pd.read_csv(csv_path)
    assert list(back.columns) == COLUMNS and len(back) == 2
    md = md_path.read_text()
    assert md.startswith("| dataset") and "| ucf101" in md and "2.50" in md
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["table1.csv", "table1.md"]


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="condi data")
    register_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_table1(indexes, tmp_path, capsys):
    out_csv, out_md = tmp_path / "r" / "t1.csv", tmp_path / "r" / "t1.md"
    argv = ["table1", "--out-csv", str(out_csv), "--out-md", str(out_md), "--index"]
    assert _run_cli(argv + [str(p) for p in indexes.values()]) == 0
    # named by the dataset the index records, else by its file name
    assert list(pd.read_csv(out_csv)["dataset"]) == ["ucf101", "synth"]
    assert out_md.exists()
    assert "2 datasets" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="none.parquet: index not found"):
        _run_cli([*argv[:5], "--index", str(tmp_path / "none.parquet")])


def test_indexes_are_named_per_fold_when_a_dataset_has_several(tmp_path):
    from condi.data.index import named_indexes

    paths = []
    for fold in (1, 2):
        paths.append(tmp_path / f"u{fold}.parquet")
        _write_index(paths[-1], [("a", 0, "train", 1, 1.0)], {"dataset": "ucf", "fold": fold})
    assert named_indexes(paths) == {"ucf_fold1": paths[0], "ucf_fold2": paths[1]}
    assert named_indexes(paths, per_fold=False) == {"ucf": paths[0]}


def test_cli_download_kinetics_from_local_server(http_server, tmp_path, monkeypatch, capsys):
    from condi.data import download

    base, state = http_server
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        info = tarfile.TarInfo("yyyyyyyyyyy_000000_000010.mp4")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"mp4!"))
    (state.root / "part_0.tar.gz").write_bytes(buffer.getvalue())
    (state.root / "k600_val_path.txt").write_text(f"{base}/part_0.tar.gz\n")
    for split in ("train", "val", "test"):
        (state.root / f"{split}.csv").write_text("label,youtube_id,time_start,time_end,split\n")
    monkeypatch.setitem(download.KINETICS_PATH_LIST_URLS, 600, {"val": f"{base}/k600_val_path.txt"})
    monkeypatch.setitem(
        download.KINETICS_ANNOTATION_URLS,
        600,
        {s: f"{base}/{s}.csv" for s in ("train", "val", "test")},
    )
    root = tmp_path / "k600"
    argv = ["download", "--dataset", "kinetics600", "--root", str(root), "--splits", "val"]
    assert _run_cli(argv + ["--keep-archives"]) == 0
    assert (root / "val" / "yyyyyyyyyyy_000000_000010.mp4").read_bytes() == b"mp4!"
    assert (root / "downloads" / "val" / "part_0.tar.gz").exists()
    assert "kinetics600 ready" in capsys.readouterr().out

    (state.root / "k600_val_path.txt").write_text(f"{base}/absent.tar.gz\n")
    (root / "downloads" / "val" / "k600_val_path.txt").unlink()
    assert _run_cli(argv + ["--retries", "0"]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_cli_download_ucf101_without_rar_tool(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert _run_cli(["download", "--dataset", "ucf101", "--root", str(tmp_path / "u")]) == 1
    assert "apt-get install unar" in capsys.readouterr().err
