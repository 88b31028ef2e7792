"""After a Snakemake run the Snakefile commits what it made to DVC (condi.adoption.commit).
DVC moves each output into its cache and copies it back with a new modification time, in its
own order: without care a job's output then looks older than its input and the next Snakemake
invocation (``snakemake ablation`` after ``snakemake``, say) re-runs the job."""

from __future__ import annotations

import os
import subprocess

from condi.adoption import dvc_commit

OLD = 1_577_836_800_000_000_000  # 2020-01-01, in ns


def run(cmd, cwd):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_dvc_commit_records_the_outputs_and_keeps_their_mtimes(tmp_path):
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    (tmp_path / "in.txt").write_text("a\n")
    (tmp_path / "out.txt").write_text("a\n")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "part.txt").write_text("x\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n"
        "    outs: [out.txt, outdir]\n"
    )
    outputs = [tmp_path / "out.txt", tmp_path / "outdir"]
    paths = [*outputs, tmp_path / "outdir" / "part.txt"]
    for i, path in enumerate(paths):
        os.utime(path, ns=(OLD + i, OLD + i))

    assert dvc_commit(tmp_path, ["make"], outputs)

    assert "up to date" in run(["dvc", "status"], tmp_path)  # recorded in dvc.lock
    assert (tmp_path / "dvc.lock").is_file()
    assert [p.stat().st_mtime_ns for p in paths] == [OLD, OLD + 1, OLD + 2]


def test_a_failing_dvc_commit_says_so_and_keeps_the_mtimes(tmp_path):
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages:\n  make:\n    cmd: true\n    outs: [out.txt]\n")
    out = tmp_path / "other.txt"
    out.write_text("a\n")
    os.utime(out, ns=(OLD, OLD))
    assert not dvc_commit(tmp_path, ["no_such_stage"], [out])
    assert out.stat().st_mtime_ns == OLD


def test_what_a_run_made_is_committed_in_as_few_targets_as_name_it():
    """`dvc commit` parses and rewrites dvc.lock once per target: a part all of whose jobs a
    run made (a whole `snakemake`) goes as its dvc.yaml, a stage all of whose jobs it made as
    its foreach group's name, the rest job by job; the same stages either way."""
    from condi import pipeline as pl
    from condi.adoption import commit_targets
    from condi.config import load_params
    from tests.conftest import REPO

    config = load_params(REPO / "params.yaml")
    split = pl.split_stages(config)
    targets = {
        part: [pl.dvc_target(j.stage, j.wildcards, split) for j in pl.jobs(config, part=part)]
        for part in ("main", "ablation")
    }
    assert len(targets["main"]) > 20 and len(targets["ablation"]) > 20
    assert commit_targets(config, targets["main"]) == ["dvc.yaml"]
    both = commit_targets(config, [*targets["ablation"], *targets["main"]])
    assert both == ["dvc.yaml", pl.ABLATION_DVC]
    # main without its first synth job: synth job by job, every other stage by name
    synth = [t for t in targets["main"] if t.startswith("synth@")]
    assert len(synth) == 2 and targets["main"][0] == synth[0]
    got = commit_targets(config, targets["main"][1:])
    assert got[0] == synth[1] and "train_student" in got and "dvc.yaml" not in got
    assert len(got) < len(targets["main"]) - 10
    per_stage = {}
    for t in targets["main"]:
        per_stage[t.split("@")[0]] = per_stage.get(t.split("@")[0], 0) + 1
    # job by job: synth, and the stages with one job (the same one target either way)
    assert all(per_stage[t.split("@")[0]] == 1 for t in got if "@" in t and t != synth[1])
    # a few ablation jobs: split stages (one DVC stage per job) stay job by job
    some = targets["ablation"][:3]
    assert commit_targets(config, [*targets["main"], *some])[0] == "dvc.yaml"
    assert set(commit_targets(config, some)) <= set(some) | {
        f"{pl.ABLATION_DVC}:{name}" for name in pl.STAGES
    }
