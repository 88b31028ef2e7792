"""Time per stage (condi report stages, condi.tables.stage_times) from hand-written Snakemake
benchmark files: one row per job (repeats averaged), per-stage sums in the stage table's
order, a total, and a clear error for a file that is not a benchmark."""

from __future__ import annotations

import pandas as pd
import pytest

from condi.tables import stage_times

HEAD = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path, *rows):
    """rows: (s, max_rss, cpu_time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{s}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t{100 * cpu / s:.2f}\t{cpu}\n"
                   for s, rss, cpu in rows)  # fmt: skip
    path.write_text(HEAD + body)


@pytest.fixture
def folder(tmp_path):
    b = tmp_path / "logs" / "benchmark"
    bench(b / "train_student" / "synthetic_fold1_t_s_condi_sr.tsv", (100.0, 900.0, 50.0))
    bench(b / "train_student" / "synthetic_fold1_t_s_st_ent.tsv", (60.0, 1100.0, 30.0))
    # two benchmark repeats: times averaged, the peak memory
    bench(
        b / "train_teacher" / "synthetic_fold1_t.tsv", (200.0, 1200.0, 150.0), (100.0, 1000.0, 50.0)
    )
    bench(b / "table3.tsv", (4.0, 100.0, 2.0))
    bench(b / "my_extra" / "x.tsv", (1.0, 10.0, 1.0))  # not a stage of the table: last
    return b


def test_jobs_and_stages(folder):
    jobs = stage_times.read_benchmarks(folder)
    assert list(jobs.columns) == stage_times.JOB_COLUMNS
    teacher = jobs[jobs["stage"] == "train_teacher"].iloc[0]
    assert teacher["job"] == "synthetic_fold1_t" and teacher["repeats"] == 2
    assert (teacher["s"], teacher["max_rss"], teacher["cpu_time"]) == (150.0, 1200.0, 100.0)
    assert jobs.loc[jobs["stage"] == "table3", "job"].tolist() == [""]
    table = stage_times.stage_times(jobs)
    assert list(table.columns) == stage_times.STAGE_COLUMNS
    assert table["stage"].tolist() == [
        "train_teacher",
        "train_student",
        "table3",
        "my_extra",
        "total",
    ]
    st = table.set_index("stage")
    assert st.loc["train_student", ["jobs", "total_s", "mean_s", "max_s", "cpu_s", "max_rss_mb"]].tolist() == [
        2, 160.0, 80.0, 100.0, 80.0, 1100.0
    ]  # fmt: skip
    assert st.loc["train_student", "cpu_pct"] == pytest.approx(50.0)
    total = st.loc["total"]
    assert total["jobs"] == 5 and total["total_s"] == 150.0 + 160.0 + 4.0 + 1.0
    assert total["max_s"] == 150.0 and total["max_rss_mb"] == 1200.0
    assert total["cpu_s"] == 100.0 + 80.0 + 2.0 + 1.0
    assert total["cpu_pct"] == pytest.approx(100 * 183.0 / 315.0)


def test_write(folder, tmp_path):
    table = stage_times.write(folder, tmp_path / "st.csv", tmp_path / "st.md")
    back = pd.read_csv(tmp_path / "st.csv")
    assert back["stage"].tolist() == table["stage"].tolist()
    md = (tmp_path / "st.md").read_text()
    assert "| train_student | 2 | 160.0 | 80.0 | 100.0 | 80.0 | 50 | 1100 |" in md
    assert "| **total** | 5 | 315.0 |" in md


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no benchmark folder"):
        stage_times.read_benchmarks(tmp_path / "nowhere")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.tsv").write_text("hello\tworld\n")
    with pytest.raises(ValueError, match=r"x\.tsv: not a Snakemake benchmark file"):
        stage_times.read_benchmarks(tmp_path / "b")
    (tmp_path / "empty").mkdir()
    empty = stage_times.stage_times(stage_times.read_benchmarks(tmp_path / "empty"))
    assert empty.empty and list(empty.columns) == stage_times.STAGE_COLUMNS
