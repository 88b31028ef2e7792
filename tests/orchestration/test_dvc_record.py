"""Recording a Snakemake run's results as docs/cluster.md says (issue 15.6): the documented
block (``dvc push``, then the metrics, plots, locks and DVC's ignore lists to git) run after two
runs whose Table III differs in one number; ``dvc metrics diff HEAD~1`` then shows exactly that
number's change, and ``dvc push`` left nothing for the remote to lack."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.orchestration.conftest import copy_repo, git, read_table3, run, untracked

MARKER = "<!-- dvc-record:"


def documented_block() -> str:
    text = (REPO / "docs" / "cluster.md").read_text()
    after = text[text.index(MARKER) :]
    return re.search(r"```bash\n(.*?)```", after, flags=re.S).group(1)


@pytest.mark.slow
@pytest.mark.cost(28)
def test_committed_metrics_make_dvc_metrics_diff_work(pristine_pipelines, tmp_path):
    repo = copy_repo(pristine_pipelines.smk, tmp_path / "smk")
    block = documented_block()
    run(["bash", "-euo", "pipefail", "-c", block], repo, timeout=600)
    assert git(repo, "status", "--porcelain", "--untracked-files=no").stdout == ""
    tracked = set(git(repo, "ls-files").stdout.split())
    assert {"dvc.lock", "results/metrics.json", "results/plots/accuracy_vs_k.csv"} <= tracked

    # a second run whose Table III differs in one number: condi_sr at K = 1, one point more
    table = repo / "results" / "table3.csv"
    long = read_table3(table)
    row = long.index[(long["method"] == "condi_sr") & (long["K"] == "1")][0]
    before = float(long.loc[row, "top1"])
    long.loc[row, "top1"] = before + 1.0
    table.unlink()  # a DVC link or a copy: a new file either way
    long.to_csv(table, index=False)
    out = run(["snakemake", "--cores", "1", "results/metrics.json"], repo, untracked(), 600)
    assert "pipeline metrics" in out.stdout + out.stderr
    run(["bash", "-euo", "pipefail", "-c", block], repo, timeout=600)

    diff = json.loads(run(["dvc", "metrics", "diff", "HEAD~1", "--json"], repo).stdout)
    changed = diff["results/metrics.json"]
    dataset = long.loc[row, "dataset"]
    assert list(changed) == [f"{dataset}.condi_sr.1"], changed
    (entry,) = changed.values()
    assert entry["old"] == pytest.approx(before) and entry["new"] == pytest.approx(before + 1)
    assert entry["diff"] == pytest.approx(1.0)
    # the plots are committed too: their diff names both revisions
    plots = run(["dvc", "plots", "diff", "HEAD~1", "--json"], repo).stdout
    assert "results/plots/accuracy_vs_k.csv" in plots
    assert pd.read_csv(repo / "results/plots/accuracy_vs_k.csv").shape[0] > 0
    # everything recorded was pushed
    status = run(["dvc", "status", "--cloud", "--json"], repo).stdout
    assert json.loads(status or "{}") == {}, status
