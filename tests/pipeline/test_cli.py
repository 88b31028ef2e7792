"""The command line explains itself (issue 14): every command and option has help, ``condi
--version`` works, an option has one spelling and one kind of value across commands, and ``--``
ends the options."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import yaml

import condi
from condi.cli import build_parser, main, parse
from tests.conftest import REPO


def commands(parser: argparse.ArgumentParser, path=("condi",)):
    """``(path, parser, help)`` of every command, depth first (the root's help is None)."""
    yield path, parser, None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                for p, s, h in commands(sub, (*path, name)):
                    yield p, s, h if p != (*path, name) else helps.get(name)


def options(parser: argparse.ArgumentParser):
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)
        and a.help != argparse.SUPPRESS
    ]


ALL = list(commands(build_parser()))


def test_the_tree_is_walked():
    names = {" ".join(p) for p, _, _ in ALL}
    assert {"condi predict", "condi models table2", "condi report stage-times"} <= names
    assert len(names) > 30


@pytest.mark.parametrize("path,parser,helptext", ALL, ids=[" ".join(p) for p, _, _ in ALL])
def test_every_command_and_option_has_help(path, parser, helptext):
    if len(path) > 1:
        assert helptext and helptext.strip(), f"{' '.join(path)}: no one-line help"
    assert parser.description and parser.description.strip(), f"{' '.join(path)}: no description"
    for action in options(parser):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{' '.join(path)} {name}: no help"
    # and the help renders
    assert parser.format_help()


def kind(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "flag"
    return getattr(action.type, "__name__", "str") if action.type is not None else "str"


def test_one_spelling_and_one_kind_of_value_per_option():
    seen: dict[str, dict[str, list[str]]] = {}
    for path, parser, _ in ALL:
        for action in options(parser):
            for opt in action.option_strings:
                seen.setdefault(opt, {}).setdefault(kind(action), []).append(" ".join(path))
    mixed = {opt: kinds for opt, kinds in seen.items() if len(kinds) > 1}
    assert not mixed, mixed
    # K is --k everywhere (its other spelling, --K, is a hidden alias)
    by_lower: dict[str, set[str]] = {}
    for opt in seen:
        by_lower.setdefault(opt.lower(), set()).add(opt)
    assert all(len(v) == 1 for v in by_lower.values()), by_lower
    assert "--k" in seen and "--K" not in seen


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"condi {condi.__version__}\n"
    out = subprocess.run(
        [sys.executable, "-m", "condi", "--version"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == f"condi {condi.__version__}"


def test_double_dash_ends_the_options():
    parser = build_parser()
    args = parse(parser, ["predict", "--k", "3", "a.mp4", "--", "-abc.mp4", "--k"])
    assert [str(v) for v in args.videos] == ["a.mp4", "-abc.mp4", "--k"] and args.k == 3


def test_a_command_without_files_refuses_files_after_double_dash(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(build_parser(), ["pipeline", "dvc", "--", "x"])
    assert exc.value.code == 2
    assert "condi pipeline: takes no file names after '--'" in capsys.readouterr().err


# What the stages that never run a model import: numpy, pandas, PyAV, never torch (1.5 s per
# job, 3 s with the torch._dynamo an optimizer pulls in). Each module is a stage command's
# whole import chain (`condi evaluate grid`, the tables, the reports from stored scores).
TORCH_FREE = [
    "condi.cli",
    "condi.cli.evaluate",
    "condi.cli.report",
    "condi.cli.tables",
    "condi.cli.data",
    "condi.evaluation.run",
    "condi.evaluation.figures",
    "condi.tables.table3",
    "condi.tables.table4",
    "condi.tables.table5",
    "condi.tables.ambiguity",
    "condi.tables.ablation",
    "condi.tables.stage_times",
    "condi.data.index",
    "condi.tracking",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_stages_without_a_model_start_without_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# The stages that run a model, each with params that fail validation: the error (exit 2, the
# file and the key named) comes before torch is imported, as for every stage.
TEACHER = ["--dataset", "synthetic", "--fold", "1", "--teacher", "resnext14"]
CLIPS = ["--index", "i.parquet", "--cache", "c.npy"]
MODEL_STAGES = [
    ["train", "teacher", "--stage", "train_teacher", *TEACHER, *CLIPS, "--out", "t.pt"],
    ["train", "pretrain", "--stage", "pretrain_teacher", *TEACHER, *CLIPS, "--out", "t.pt"],
    ["train", "pseudo-labels", "--stage", "pseudo_labels", *TEACHER, *CLIPS]
    + ["--checkpoint", "t.pt", "--out", "p.npz"],
    ["train", "student", "--stage", "train_student", *TEACHER, "--student", "resnext14half"]
    + ["--method", "condi_sr", *CLIPS, "--pseudo-labels", "p.npz", "--out", "s.pt"],
    ["evaluate", "scores", "--stage", "teacher_scores", *TEACHER, *CLIPS]
    + ["--checkpoint", "t.pt", "--out", "s.npz"],
    ["report", "timing", "--stage", "timing", *TEACHER, "--student", "resnext14half", *CLIPS]
    + ["--teacher-ckpt", "t.pt", "--teacher-scores", "t.npz", "--out", "timing.csv"],
    ["models", "table2", "--stage", "table2", "--out-csv", "t2.csv", "--out-md", "t2.md"],
]


@pytest.mark.parametrize("argv", MODEL_STAGES, ids=lambda a: " ".join(a[:2]))
def test_a_params_error_stops_a_model_stage_before_torch_is_imported(argv, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["training"]["teacher"]["epochs"] = "three"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = (
        "import sys\nfrom condi.cli import main\nrc = main(sys.argv[1:])\n"
        "print(sorted(m for m in sys.modules if m.startswith('torch')))\nsys.exit(rc)"
    )
    cmd = [sys.executable, "-c", code, *argv, "--params", "params.yaml"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "params.yaml: training.teacher.epochs: 'three' is not of type 'integer'" in out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
