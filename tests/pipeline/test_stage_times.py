"""The per-stage times of the Snakemake report (``condi report stage-times``): read from
hand-written benchmark files in Snakemake's format, summed per stage in the pipeline's order."""

from __future__ import annotations

import pandas as pd
import pytest

from condi.cli import main
from condi.pipeline import STAGES
from condi.tables import stage_times
from tests.conftest import REPO

PAIR = "synthetic_fold1_resnext14_resnext14half"  # the default params' teacher and student
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(folder, rel, s, rss, cpu="1.00"):
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{s}\t0:00:00\t{rss}\t1.0\t1.0\t1.0\t0\t0\t50.0\t{cpu}\n")


@pytest.fixture
def folder(tmp_path):
    b = tmp_path / "logs/benchmark"
    bench(b, "table3.tsv", "12.30", "260.00")
    bench(b, f"train_student/{PAIR}_condi_sr.tsv", "270.50", "900.00")
    bench(b, f"train_student/{PAIR}_st_ent.tsv", "100.00", "950.00")
    bench(b, "synth/data/synthetic.tsv", "17.19", "-")  # a job named by its root
    bench(b, "train_teacher/synthetic_fold1_resnext14.tsv", "5400.00", "1000.00")
    return b


def test_one_row_per_job(folder):
    jobs = stage_times.collect(folder)
    assert list(jobs.columns) == stage_times.JOB_COLUMNS
    by_job = {(r.stage, r.job): r for r in jobs.itertuples()}
    assert set(by_job) == {
        ("table3", "-"),
        ("train_student", f"{PAIR}_condi_sr"),
        ("train_student", f"{PAIR}_st_ent"),
        ("synth", "data/synthetic"),
        ("train_teacher", "synthetic_fold1_resnext14"),
    }
    assert by_job[("table3", "-")].s == 12.3 and by_job[("table3", "-")].max_rss_mb == 260.0
    assert pd.isna(by_job[("synth", "data/synthetic")].max_rss_mb)


def test_stages_in_the_pipeline_order_with_totals(folder):
    stages = stage_times.summarise(stage_times.collect(folder), list(STAGES))
    assert stages["stage"].tolist() == ["synth", "train_teacher", "train_student", "table3"]
    student = stages.set_index("stage").loc["train_student"]
    assert (student.jobs, student.total_s, student.max_s) == (2, 370.5, 270.5)
    assert student.max_rss_mb == 950.0


def test_the_cli_writes_the_csv_and_the_markdown(folder, tmp_path, capsys):
    # a job the pipeline no longer has (a renamed teacher) and a dropped stage: not counted
    bench(folder, "train_teacher/synthetic_fold1_resnext.tsv", "999.00", "1.00")
    bench(folder, "old_stage.tsv", "999.00", "1.00")
    out_csv, out_md = tmp_path / "st.csv", tmp_path / "st.md"
    params = str(REPO / "params.yaml")
    argv = ["report", "stage-times", "--params", params, "--benchmarks", str(folder)]
    assert main([*argv, "--out-csv", str(out_csv), "--out-md", str(out_md)]) == 0
    assert len(pd.read_csv(out_csv)) == 5
    md = out_md.read_text()
    assert md == capsys.readouterr().out.rstrip("\n") + "\n"
    lines = md.splitlines()
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    assert header == ["stage", "jobs", "total", "longest job", "peak memory (MB)"]
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines[2:6]}
    assert rows == {
        "synth": ["1", "17 s", "17 s", ""],
        "train_teacher": ["1", "1.5 h", "1.5 h", "1000"],
        "train_student": ["2", "6.2 min", "4.5 min", "950"],
        "table3": ["1", "12 s", "12 s", "260"],
    }
    assert "All jobs together: 1.6 h (5 jobs;" in md


def test_the_jobs_of_the_default_pipeline():
    from condi.config import load_params

    jobs = stage_times.job_files(load_params(REPO / "params.yaml"))
    assert {"synth/data/synthetic", "table3", "stage_times", f"train_student/{PAIR}_maxprob",
            "train_teacher/synthetic_fold1_resnext14", f"timing/{PAIR}"} <= jobs  # fmt: skip
    assert "train_teacher/synthetic_fold1_resnext" not in jobs


def test_without_snakemake_records_the_table_says_so(tmp_path):
    md = stage_times.write(tmp_path / "none", tmp_path / "a.csv", tmp_path / "a.md", [])
    assert md.startswith("No Snakemake benchmark records in ")
    assert pd.read_csv(tmp_path / "a.csv").columns.tolist() == stage_times.JOB_COLUMNS


def test_a_file_that_is_no_benchmark_is_named(tmp_path):
    (tmp_path / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="x.tsv: not a Snakemake benchmark file"):
        stage_times.collect(tmp_path)
