"""Mutation testing of the science core with mutmut (issue 16.3): how many planted bugs do the
tests catch?

    python benchmarks/mutation.py                 # full run, prints the score
    python benchmarks/mutation.py --max-children 2 --json mutation.json
    python benchmarks/mutation.py --show-survivors   # with each surviving mutant's diff
    python benchmarks/mutation.py --mutants 'condi.losses.x_st_conf_loss__mutmut_*'  # a few

What it mutates (:data:`SCOPE`): the losses, the samplers, the evaluation grid and its scores,
Eq. 1 and cross-fitting, the group-aware splits, clip cutting, decoding and the clip cache, the
flips, the training dataset, the atomic writer, the student step and the ConDi inference.
Other functions of those files (I/O glue, training orchestration) are marked ``# pragma: no
mutate block`` in a scratch copy of the repository, which is where mutmut runs (``mutants/``
under ``--workdir``); the working tree is never touched. Error messages, log lines and progress
bars are not mutated (:data:`NOT_MUTATED`).

Which tests judge them (:data:`TESTS`): the fast unit tests of those modules, no pipeline run
and no training (a mutant is judged by the selected tests that execute its function, so one
slow test would be run for every mutant it reaches). Not in CI: docs/mutation.md gives the
last full run's time and the machine's load.

The score is ``killed / (all mutants - equivalent ones)``; ``docs/mutation.md`` lists the
equivalent survivors (a mutant no test can kill because the program behaves the same) and why.
A mutant listed there that is killed after all, or a survivor not listed, is reported.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# file -> the functions (or classes) to mutate; None: every function of the file
SCOPE: dict[str, set[str] | None] = {
    "src/condi/losses.py": None,
    "src/condi/evaluation/samplers.py": None,
    "src/condi/evaluation/grid.py": None,
    "src/condi/scores.py": None,
    "src/condi/metrics.py": None,
    "src/condi/evaluation/predict.py": {"predict_clips", "_batched"},
    "src/condi/training/pseudo_labels.py": {
        "crossfit_folds",
        "crossfit_judge",
        "summary",
    },
    "src/condi/training/student.py": {"make_step", "_lookup"},
    "src/condi/data/records.py": {"unit_key", "holdout_by_unit"},
    "src/condi/data/index.py": {"assign_val_split", "clip_rows"},
    "src/condi/data/video.py": {
        "clip_frame_indices",
        "split_clips",
        "resized_size",
        "read_video_frames",
    },
    "src/condi/data/clips.py": None,
    "src/condi/data/flips.py": None,
    "src/condi/data/dataset.py": {"ClipDataset._window", "ClipDataset.__getitem__"},
    "src/condi/io.py": {"atomic_path", "_atomic_steps", "_fsync_dir"},
}

_ATOMIC = "tests/reliability/test_atomic_writes.py::"
TESTS = [
    "tests/training/test_losses.py",
    "tests/training/test_student_step.py",
    "tests/training/test_pseudo_labels.py",
    "tests/evaluation/test_samplers.py",
    "tests/evaluation/test_predict_clips.py",
    "tests/data/test_groups.py",
    "tests/data/test_flips.py",
    "tests/data/test_clips.py",
    "tests/data/test_decode_window.py",
    "tests/data/test_index.py",
    "tests/evaluation/test_grid_by_hand.py",
    "tests/evaluation/test_metrics_scores.py",
    *(
        _ATOMIC + name
        for name in (
            "test_csv_crash_keeps_the_old_file",
            "test_parquet_and_json_crash_keep_the_old_file",
            "test_checkpoint_crash_keeps_the_old_checkpoint",
            "test_outputs_get_the_usual_permissions",
            "test_index_crash_keeps_the_old_index",
            "test_scores_crash_keeps_the_old_scores",
            "test_clip_cache_crash_leaves_no_cache",
            "test_atomic_write_fsyncs_the_file_before_the_rename_and_the_folder_after",
            "test_the_temporary_file_is_hidden_beside_the_target",
        )
    ),
]
# tests of the selected files that run a `condi` command line (argument parsing is not the
# science core, and the command line is being reworked elsewhere)
DESELECT = [
    "tests/data/test_clips.py::test_cli_cache",
    "tests/data/test_index.py::test_bad_videos_are_skipped_with_reasons",
]
# Lines not mutated: error messages and log lines (their wording is not the science; the
# conditions that raise are on other lines and are mutated), progress bars.
NOT_MUTATED = [r"^\s*raise \w+\(", r"^\s*log\.\w+\(", r"tqdm\("]
EQUIVALENT_DOC = REPO / "docs" / "mutation.md"


def repo_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    keep = ("src/", "tests/", "workflow/", "params.yaml", "pyproject.toml")
    return [f for f in out if f.startswith(keep) and (REPO / f).is_file()]


def _no_mutate(stmt):
    import libcst as cst

    block = stmt.body
    if not isinstance(block, cst.IndentedBlock):
        return stmt
    header = block.header.with_changes(
        comment=cst.Comment("# pragma: no mutate block"), whitespace=cst.SimpleWhitespace("  ")
    )
    return stmt.with_changes(body=block.with_changes(header=header))


def mark_out_of_scope(path: Path, keep: set[str]) -> None:
    """Add ``# pragma: no mutate block`` to every top-level function and class of ``path`` not
    in ``keep``; ``Class.method`` entries keep a class but only those of its methods."""
    import libcst as cst

    module = cst.parse_module(path.read_text())
    methods: dict[str, set[str]] = {}
    for name in keep:
        cls, _, method = name.partition(".")
        if method:
            methods.setdefault(cls, set()).add(method)
    body = []
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            name = stmt.name.value
            if name in methods and isinstance(stmt, cst.ClassDef):
                inner = [
                    _no_mutate(s)
                    if isinstance(s, cst.FunctionDef) and s.name.value not in methods[name]
                    else s
                    for s in stmt.body.body
                ]
                stmt = stmt.with_changes(body=stmt.body.with_changes(body=inner))
            elif name not in keep:
                stmt = _no_mutate(stmt)
        body.append(stmt)
    path.write_text(module.with_changes(body=body).code)


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def prepare(workdir: Path) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    for rel in repo_files():
        dest = workdir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    for rel, keep in SCOPE.items():
        if keep is not None:
            mark_out_of_scope(workdir / rel, keep)
    pyproject = workdir / "pyproject.toml"
    # "-n 0": in process, not in pytest-xdist workers (the project's addopts), where mutmut
    # could not see which tests reach which mutant
    args = ["-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-x", "-n", "0"]
    args += [f"--deselect={d}" for d in DESELECT]
    pyproject.write_text(
        pyproject.read_text()
        + "\n[tool.mutmut]\n"
        + f"source_paths = {toml_list(['src/'])}\n"
        + f"only_mutate = {toml_list(list(SCOPE))}\n"
        + f"also_copy = {toml_list(['params.yaml', 'workflow/'])}\n"
        + f"pytest_add_cli_args = {toml_list(args)}\n"
        + f"pytest_add_cli_args_test_selection = {toml_list(TESTS)}\n"
        + f"do_not_mutate_patterns = {toml_list(NOT_MUTATED)}\n"
        + "use_git_change_detection = false\n"
        # torch is not fork-safe once its thread pools exist: fork workers from a clean server
        + 'process_isolation = "forkserver"\n'
        # a busy machine must not turn slow tests into "timeouts" (counted as detected)
        + "timeout_constant = 20.0\n"
    )


# Per-process cap on private writable memory (RLIMIT_DATA) for mutmut and its workers: a mutant
# that makes a buffer grow without bound (read_video_frames' doubling turned into "grow at
# every frame") must fail with MemoryError in its own process, not drive a shared machine into
# the OOM killer. The unmutated tests use well under 1 GiB.
MEMORY_LIMIT = 4 << 30


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_mutmut(workdir: Path, max_children: int, names: list[str] | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MPLBACKEND"] = "Agg"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"  # one thread per worker: --max-children workers share the cores
    # generated test videos (no mutated code writes them) are built once, not per mutant
    env["CONDI_TEST_INPUT_CACHE"] = str(workdir.resolve() / ".input-cache")
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    subprocess.run(cmd + (names or []), cwd=workdir, env=env, check=True, preexec_fn=_limit_memory)


def results(workdir: Path) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    status = {}
    for line in out.splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and name:
            status[name] = state
    return status


def show(workdir: Path, name: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name],
        cwd=workdir,
        capture_output=True,
        text=True,
    ).stdout


def documented_equivalent() -> set[str]:
    """Mutant names listed in docs/mutation.md's equivalent table (first column, in backticks)."""
    if not EQUIVALENT_DOC.is_file():
        return set()
    names = set()
    for line in EQUIVALENT_DOC.read_text().splitlines():
        m = re.match(r"\|\s*`([^`]+__mutmut_\d+)`", line)
        if m:
            names.add(m.group(1))
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "condi-mutation")
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json", type=Path, help="write the statuses and the score here")
    ap.add_argument("--show-survivors", action="store_true", help="print each survivor's diff")
    ap.add_argument(
        "--reuse", action="store_true", help="report on the last run in --workdir, run nothing"
    )
    ap.add_argument(
        "--mutants",
        nargs="+",
        metavar="GLOB",
        help="run and report only these mutants (fnmatch patterns, e.g. "
        "'condi.losses.x_st_conf_loss__mutmut_*'): a quick check after editing a test or a "
        "function; the score of record is a full run",
    )
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    if not args.reuse:
        prepare(args.workdir)
        run_mutmut(args.workdir, args.max_children, args.mutants)
    minutes = (time.perf_counter() - t0) / 60
    status = results(args.workdir)
    equivalent = documented_equivalent()
    if args.mutants:

        def selected(name: str) -> bool:
            return any(fnmatch.fnmatchcase(name, pat) for pat in args.mutants)

        status = {n: s for n, s in status.items() if selected(n)}
        equivalent = {n for n in equivalent if selected(n)}
    counts: dict[str, int] = {}
    for s in status.values():
        counts[s] = counts.get(s, 0) + 1
    # a mutant that makes the tests time out or crash is detected as well
    detected = ("killed", "timeout", "segfault")
    killed = sum(counts.get(s, 0) for s in detected)
    survivors = sorted(n for n, s in status.items() if s not in detected)
    equiv = [n for n in survivors if n in equivalent]
    unexplained = [n for n in survivors if n not in equivalent]
    stale = sorted(equivalent - set(survivors))
    scored = len(status) - len(equiv)
    score = 100.0 * killed / scored if scored else float("nan")

    print(f"\nmutants: {len(status)} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})")
    print(f"equivalent (docs/mutation.md): {len(equiv)}")
    print(f"survivors not explained: {len(unexplained)}")
    for name in unexplained:
        print(f"  {name}: {status[name]}")
        if args.show_survivors:
            print(show(args.workdir, name))
    if stale:
        print(f"listed as equivalent but not surviving (update docs/mutation.md): {stale}")
    if not args.reuse:
        print(f"runtime: {minutes:.1f} min with {args.max_children} workers")
    print(f"mutation score: {score:.1f}% ({killed} killed of {scored} non-equivalent mutants)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "score": score,
                    "killed": killed,
                    "scored": scored,
                    "counts": counts,
                    "equivalent": equiv,
                    "unexplained": unexplained,
                    "minutes": None if args.reuse else minutes,
                    "status": status,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
