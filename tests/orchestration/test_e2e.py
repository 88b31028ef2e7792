"""End to end on the tiny preset: Snakemake's table3, the Snakemake report, a no-op re-run, and
DVC: same numbers as Snakemake, metrics and plots, push/pull into a fresh clone that Snakemake
finds up to date, and a K edit that re-runs only evaluation and tables (issues 2 and 7)."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.orchestration.conftest import git, read_table3, run

pytestmark = pytest.mark.slow

BASELINES = ["random", "equidistant", "dense", "oracle"]
COLUMNS = [
    "dataset",
    "fold",
    "teacher",
    "student",
    "method",
    "K",
    "Ks",
    "top1",
    "top1_std",
    "n_videos",
]


def test_table3_rows_columns_and_ranges(pipelines):
    t3 = read_table3(pipelines.smk / "results" / "table3.csv")
    p = pipelines.params
    assert set(COLUMNS) <= set(t3.columns)
    methods = set(t3["method"])
    assert set(p["methods"]) | set(BASELINES) <= methods
    ks = {str(k) for k in p["evaluation"]["K"]}
    for method in [*p["methods"], "random", "equidistant", "oracle"]:
        rows = t3[(t3["method"] == method) & t3["Ks"].isna()]
        assert ks <= set(rows["K"]), (method, sorted(rows["K"]))
    assert list(t3.loc[t3["method"] == "dense", "K"]) == ["dense"]
    split = t3[t3["method"] == "condi_sr_split"]
    assert set(split["Ks"].astype(int)) == set(p["evaluation"]["Ks"])
    assert t3["top1"].between(0, 100).all()
    assert (t3["n_videos"] > 0).all()
    assert set(t3["dataset"]) == set(p["datasets"])
    assert set(t3.loc[t3["student"] != "-", "student"]) == set(p["students"])
    std = t3.loc[t3["method"] == "random", "top1_std"]
    assert std.notna().all() and (std >= 0).all()
    for name in ("table3.md", "table3_paper.csv", "metrics.json", "plots/accuracy_vs_k.csv"):
        assert (pipelines.smk / "results" / name).stat().st_size > 0, name


def test_noop_rerun_is_fast(pipelines):
    """A second `snakemake` finds nothing to do, in seconds (the time is printed)."""
    t0 = time.monotonic()
    out = run(["snakemake", "--cores", "2"], pipelines.smk, timeout=120)
    elapsed = time.monotonic() - t0
    print(f"\nno-op snakemake re-run: {elapsed:.1f} s")
    assert "Nothing to be done" in out.stdout + out.stderr
    assert elapsed < 60


def test_snakemake_report_has_the_tables_and_figures(pipelines):
    out = run(["snakemake", "--report", "report.html"], pipelines.smk, timeout=300)
    html = (pipelines.smk / "report.html").read_text(errors="replace")
    for name in ("table3.csv", "table3.md", "metrics.json", "accuracy_vs_k.png"):
        assert name in html, (name, out.stderr[-2000:])


def test_dvc_repro_gives_the_same_table3_as_snakemake(pipelines):
    """Training is deterministic on CPU with a fixed seed and one thread per job: the same
    videos, clips and models give the same accuracies whichever tool runs the commands."""
    a = read_table3(pipelines.smk / "results" / "table3.csv")
    b = read_table3(pipelines.dvc / "results" / "table3.csv")
    key = ["dataset", "fold", "teacher", "student", "method", "K", "Ks"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert a[key].astype(str).equals(b[key].astype(str))
    assert a["top1"].tolist() == b["top1"].tolist()
    assert (pipelines.smk / "results/metrics.json").read_text() == (
        pipelines.dvc / "results/metrics.json"
    ).read_text()


def test_dvc_status_metrics_and_plots(pipelines):
    status = run(["dvc", "status"], pipelines.dvc).stdout
    assert "up to date" in status, status
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], pipelines.dvc).stdout)
    values = json.dumps(metrics)
    for method in pipelines.params["methods"]:
        assert f'"{method}"' in values
    shown = run(["dvc", "metrics", "show"], pipelines.dvc).stdout
    assert "synthetic.condi_sr.1" in shown, shown
    plots = run(["dvc", "plots", "show", "--json"], pipelines.dvc).stdout
    spec = json.loads(plots)
    assert "results/plots/accuracy_vs_k.csv" in json.dumps(spec)
    assert '"method"' in plots and '"top1"' in plots
    html = run(["dvc", "plots", "show", "-o", "plots_html"], pipelines.dvc)
    assert (pipelines.dvc / "plots_html" / "index.html").is_file(), html.stdout


def test_push_then_pull_in_a_fresh_clone_leaves_snakemake_nothing_to_do(pipelines):
    clone = pipelines.root / "clone"
    run(["git", "clone", "-q", str(pipelines.dvc), str(clone)], pipelines.root)
    pull = run(["dvc", "pull"], clone, timeout=300)
    assert (clone / "models").is_dir(), pull.stdout
    for stage in ("train_teacher", "train_student"):
        assert stage in json.dumps(__import__("yaml").safe_load((clone / "dvc.lock").read_text()))
    assert "up to date" in run(["dvc", "status"], clone).stdout
    out = run(["snakemake", "-n", "results/table3.csv"], clone, timeout=120)
    assert "Nothing to be done" in out.stdout + out.stderr, out.stdout[-3000:]
    # ... and Snakemake still sees a real change: a different teacher re-runs what follows it
    teacher = next((clone / "models").rglob("teacher_*.pt"))
    teacher.write_bytes(teacher.read_bytes() + b"\0")
    out = run(["snakemake", "-n", "results/table3.csv"], clone, timeout=120)
    text = out.stdout + out.stderr
    for rule in ("pseudo_labels", "train_student", "evaluate_students", "table3"):
        assert re.search(rf"^rule {rule}:", text, flags=re.M), (rule, text[-3000:])


def test_editing_k_reruns_only_evaluation_and_tables(pipelines):
    """`dvc exp run -S evaluation.K=...` re-runs evaluate_*, table3 and metrics, nothing else."""
    dvc = pipelines.dvc
    models = {p: p.stat().st_mtime_ns for p in (dvc / "models").rglob("*.pt")}
    new_k = [1, 2]
    dry = run(["dvc", "status"], dvc, env=None)
    assert "up to date" in dry.stdout
    out = run(["dvc", "exp", "run", "-S", f"evaluation.K={json.dumps(new_k)}"], dvc, timeout=600)
    text = out.stdout + out.stderr
    ran = sorted(set(re.findall(r"Running stage '([^'@]+)", text)))
    assert ran == ["evaluate_baselines", "evaluate_students", "metrics", "table3"], text[-3000:]
    assert {p: p.stat().st_mtime_ns for p in models} == models
    t3 = read_table3(dvc / "results" / "table3.csv")
    assert set(t3.loc[t3["method"] == "condi_sr", "K"]) == {"1", "2"}
    git(dvc, "status", "--short")
