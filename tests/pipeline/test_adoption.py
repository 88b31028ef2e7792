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
