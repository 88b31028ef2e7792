"""``condi models table2`` and ``condi models summary``."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from condi.cli import main

REPO_PARAMS = __import__("pathlib").Path(__file__).resolve().parents[2] / "params.yaml"


def _index(path, num_classes=None, labels=(0, 1, 2), dataset=None):
    table = pa.table({"video": [f"v{i}" for i in range(len(labels))], "label": list(labels)})
    meta = {"num_classes": num_classes} if num_classes is not None else {}
    if dataset:
        meta["dataset"] = dataset
    if meta:
        table = table.replace_schema_metadata({b"condi": json.dumps(meta)})
    pq.write_table(table, path)
    return path


def test_table2_cli(tmp_path, capsys):
    params = yaml.safe_load(REPO_PARAMS.read_text())
    params["datasets"]["other"] = dict(params["datasets"]["synthetic"], root="data/other")
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    out_csv, out_md = tmp_path / "results" / "table2.csv", tmp_path / "results" / "table2.md"
    idx = _index(tmp_path / "i1.parquet", num_classes=8, dataset="synthetic")
    other = _index(tmp_path / "other.parquet", labels=tuple(range(101)))
    rc = main(
        ["models", "table2", "--params", str(params_path), "--out-csv", str(out_csv),
         "--out-md", str(out_md), "--index", str(idx), str(other)]
    )  # fmt: skip
    assert rc == 0
    df = pd.read_csv(out_csv)
    assert list(df["model"][:4]) == [
        "3D ResNeXt-101", "R(2+1)D-34", "3D-ShuffleNet-V2 2.0x", "3D-MobileNet-V2 1.0x"
    ]  # fmt: skip
    assert list(df["params"][:4]) == [48_340_816, 63_697_175, 6_639_816, 3_122_648]
    ours = df[df["model"].str.startswith(("teacher", "student"))]
    # 2 datasets x (1 teacher + 1 student) x (paper input + pipeline input)
    assert len(ours) == 8
    assert set(ours[ours["model"].str.contains("synthetic")]["num_classes"]) == {8}
    assert set(ours[ours["model"].str.contains("other")]["num_classes"]) == {101}
    assert set(ours["input"]) == {"1x3x16x112x112", "1x3x16x32x32"}
    md = out_md.read_text()
    assert "| 3D ResNeXt-101" in md and "FlopCounterMode total / 2" in md
    assert md in capsys.readouterr().out
    assert not list(out_csv.parent.glob("*.tmp"))


def test_table2_prints_to_stdout_by_default_with_the_index_class_count(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    idx = _index(tmp_path / "i.parquet", num_classes=8, dataset="synthetic")
    rc = main(["models", "table2", "--params", str(REPO_PARAMS), "--index", str(idx)])
    assert rc == 0
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [idx]  # nothing written without --out-csv / --out-md
    params = yaml.safe_load(REPO_PARAMS.read_text())
    for role in ("teacher", "student"):
        name = next(iter(params[role + "s"]))
        rows = [ln for ln in out.splitlines() if ln.startswith(f"| {role} {name} (synthetic)")]
        assert len(rows) == 2, out  # the paper's input and the pipeline's
        assert all(ln.split("|")[2].strip() == "8" for ln in rows), rows  # from the index


def test_table2_index_without_metadata_counts_labels(tmp_path):
    from condi.cli.models import num_classes_of_index

    assert num_classes_of_index(_index(tmp_path / "a.parquet", labels=(0, 3, 3, 5))) == 3
    assert num_classes_of_index(_index(tmp_path / "b.parquet", num_classes=51)) == 51


def test_table2_without_an_index_lists_the_paper_models_only(tmp_path):
    out_csv, out_md = tmp_path / "t.csv", tmp_path / "t.md"
    rc = main(["models", "table2", "--params", str(REPO_PARAMS), "--out-csv", str(out_csv),
               "--out-md", str(out_md)])  # fmt: skip
    assert rc == 0
    models = list(pd.read_csv(out_csv)["model"])
    assert not any(m.startswith(("teacher", "student")) for m in models) and len(models) >= 4


def test_summary_cli(capsys):
    rc = main(
        [
            "models",
            "summary",
            "mobilenetv2",
            "--num-classes",
            "600",
            "--kwargs",
            '{"width_mult": 1.0}',
        ]
    )
    assert rc == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    assert json.loads(lines["params"]) == 3_122_648
    assert abs(json.loads(lines["gmacs"]) - 0.519) < 0.005
    assert json.loads(lines["output"]) == [[1, 600]]
    rc = main(["models", "summary", "shufflenetv2", "--num-classes", "5", "--kwargs", '{"width_mult": 0.25}',
               "--input", "1,3,16,32,32", "--as-student"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "output: [[1, 5], [1]]" in out and "num_features: 1024" in out
    assert main(["models", "summary", "shufflenetv2", "--num-classes", "5", "--kwargs", "[1]"]) == 2
