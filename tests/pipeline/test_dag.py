"""Snakemake and DVC run the same pipeline: same commands, inputs and outputs (issues 2, 7, 17).

DVC's own parser expands the generated dvc.yaml (foreach stages, params references) here, so
these tests compare what DVC would run with what Snakemake would run, not two renderings of
one template.
"""

import copy
import re
import subprocess

import yaml

from condi.cli.pipeline import render
from condi.config import validate
from condi.pipeline import (
    ABLATION_DVC,
    SPEED_DVC,
    STAGES,
    dvc_target,
    jobs,
    split_stages,
    stage_params,
)
from tests.conftest import REPO, load_yaml, workflow_copy


def snakemake_jobs(workdir, target="results/table3.csv"):
    """{normalised command: (rule, outputs)} of a Snakemake dry run."""
    out = subprocess.run(
        ["snakemake", "--dry-run", "--printshellcmds", "--cores", "1", target],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    jobs_ = {}
    for block in re.split(r"\n(?=\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]\n)", out.stdout):
        rule = re.search(r"^(?:local)?rule (\w+):", block, flags=re.M)
        cmd = re.search(
            r"^(?:Shell command: )?\s*\(export CONDI_PROGRESS_FD=3 CONDI_LOG='?logs/\S+; "
            r"(condi .*?)\) 3>&2 > '?logs/\S+ 2>&1\s*$",
            block,
            flags=re.M,
        )
        outs = re.search(r"^\s+output: (.*)$", block, flags=re.M)
        if rule and cmd:
            jobs_[" ".join(cmd.group(1).split())] = (
                rule.group(1),
                sorted(outs.group(1).split(", ")),
            )
    assert jobs_, out.stdout
    return jobs_


def dvc_stages(workdir):
    """{normalised command: (stage name, outs, deps, upstream commands, dvc file)} of dvc.yaml
    and ablation/dvc.yaml as DVC itself expands them."""
    import networkx as nx
    from dvc.repo import Repo

    subprocess.run(["dvc", "init", "--no-scm", "-q", "-f"], cwd=workdir, check=True, timeout=120)

    def norm(cmd):
        return " ".join(cmd.split())

    with Repo(str(workdir)) as repo:
        graph = repo.index.graph  # edges from a stage to the stages it depends on
        return {
            norm(st.cmd): (
                st.name,
                sorted(str(o.def_path) for o in st.outs),
                [str(d.def_path) for d in st.deps if str(d.def_path) != "params.yaml"],
                {norm(up.cmd) for up in nx.descendants(graph, st)},
                st.path_in_repo,
            )
            for st in repo.index.stages
        }


def write_dvc_yaml(workdir):
    (workdir / "dvc.yaml").write_text(render(workdir / "params.yaml"))
    (workdir / ABLATION_DVC).parent.mkdir(exist_ok=True)
    (workdir / ABLATION_DVC).write_text(render(workdir / "params.yaml", "ablation"))


def check_same_dag(workdir):
    """Snakemake's `all` is dvc.yaml; its `ablation` target is ablation/dvc.yaml with what that
    needs of dvc.yaml: the same commands, outputs and inputs."""
    write_dvc_yaml(workdir)
    smk = snakemake_jobs(workdir, target="all")
    ablation = snakemake_jobs(workdir, target="ablation")
    dvc = dvc_stages(workdir)
    main = {c for c, v in dvc.items() if v[4] == "dvc.yaml"}
    abl = {c for c, v in dvc.items() if v[4] == ABLATION_DVC}
    assert abl and len(main) + len(abl) == len(dvc)
    assert sorted(smk) == sorted(main)
    assert sorted(ablation) == sorted(abl | {up for c in abl for up in dvc[c][3]})
    assert not abl & set(smk)  # the default run leaves the ablation out
    outs = {o for v in dvc.values() for o in v[1]}
    params = load_yaml(workdir / "params.yaml")
    roots = {d["root"] for d in params["datasets"].values()}
    roots |= {m["checkpoint"] for m in params["teachers"].values() if m.get("checkpoint")}
    for cmd, (rule, smk_outs) in {**smk, **ablation}.items():
        name, dvc_outs, deps, _, _ = dvc[cmd]
        assert name.split("@")[0].split("--")[0] == rule
        # Snakemake's synth output is the manifest inside the root DVC tracks as a directory
        assert dvc_outs == smk_outs or (rule == "synth" and smk_outs[0].startswith(dvc_outs[0]))
        for d in deps:  # produced by a stage (or inside a produced directory), or raw data
            assert d in outs or any(d.startswith(o + "/") for o in outs) or d in roots, d
    return dvc


def test_dvc_yaml_expands_to_the_snakemake_jobs(tmp_path):
    workdir = workflow_copy(tmp_path)
    dvc = check_same_dag(workdir)
    # every job's DVC target (what the adoption commits) is a stage DVC knows
    config = validate(load_yaml(workdir / "params.yaml"))
    split = split_stages(config)
    targets = {
        dvc_target(j.stage, j.wildcards, split).split(":")[-1]
        for j in jobs(config)
        if j.stage.part in ("main", "ablation")  # the speed report's dvc.yaml: its own test
    }
    assert targets == {v[0] for v in dvc.values()}
    # under protocol transfer the ablation's scratch variants lack the pre-trained input: those
    # stages are one DVC stage per job ("--"); a name is a job name either way
    names = {v[0].replace("--", "@") for v in dvc.values()}
    student = next(iter(load_yaml(workdir / "params.yaml")["students"]))
    assert f"train_student@synthetic-1-resnext14-{student}-condi_sr" in names
    finals = {"table1", "table2", "table3", "table4", "table5", "ambiguity_table", "figures"}
    assert finals | {"metrics", "ablation_table"} <= names
    for stage in ("timing", "ambiguity", "timeline"):
        assert f"{stage}@synthetic-1-resnext14-{student}" in names
    for variant in (
        "condi_sr-transfer-crossfit-true-class_mean-2",
        "condi_sr-scratch-train-false-class_mean-1",
        "maxprob-scratch-train-false-class_mean-0",
        "st_ent-transfer-train-false-batchmean-0",
    ):
        assert f"ablation_train_student@synthetic-1-resnext14-{student}-{variant}" in names
    n_variants = sum(1 for n in names if n.startswith("ablation_train_student@"))
    # one factor at a time: condi_sr at the base and 4 single changes, 3 methods x 2 protocols,
    # 5 extra cells; 3 seeds each
    assert n_variants == (1 + 4 + 3 * 2 + 5) * 3
    scratch_cell = "condi_sr-scratch-crossfit-true-class_mean-0"
    assert f"ablation_train_student@synthetic-1-resnext14-{student}-{scratch_cell}" in names
    assert "ablation_pseudo_labels@synthetic-1-resnext14-scratch-crossfit" in names
    for name in (
        "ablation_train_teacher",
        "ablation_teacher_scores",
        "ablation_evaluate_baselines",
    ):
        assert {n for n in names if n.startswith(name + "@")} == {
            f"{name}@synthetic-1-resnext14-transfer", f"{name}@synthetic-1-resnext14-scratch"
        }  # fmt: skip
    # every stage with wildcards is one foreach stage whose jobs carry Snakemake's names
    stages = yaml.safe_load(render(workdir / "params.yaml"))["stages"]
    grouped = {k for k, v in stages.items() if "foreach" in v}
    assert grouped == {k for k in stages if STAGES[k].wildcards}
    # the dataset root is a reference to params.yaml, never a literal
    assert stages["index"]["foreach"]["synthetic-1"]["root"] == "${datasets.synthetic.root}"
    assert stages["index"]["do"]["deps"] == ["${item.root}"]
    # the ablation's stages: foreach too; paths from the root, params.yaml one up
    abl_yaml = yaml.safe_load(render(workdir / "params.yaml", "ablation"))
    assert abl_yaml["vars"] == ["../params.yaml"]
    abl = abl_yaml["stages"]
    assert split == {
        "ablation_train_teacher", "ablation_pseudo_labels", "ablation_train_student"
    }  # fmt: skip
    for name in ("ablation_teacher_scores", "ablation_student_scores", "ablation_evaluate"):
        assert "foreach" in abl[name] and abl[name]["do"]["wdir"] == ".."
    one = "ablation_train_teacher--synthetic-1-resnext14-scratch"
    assert abl[one]["wdir"] == ".." and "--pretrained" not in abl[one]["cmd"]
    assert abl["ablation_table"]["wdir"] == ".."


def test_the_speed_report_is_its_own_part(tmp_path):
    """`snakemake results/speed.csv` runs what speed/dvc.yaml holds: the one speed job, which
    neither `all` nor dvc.yaml contains."""
    workdir = workflow_copy(tmp_path)
    write_dvc_yaml(workdir)
    (workdir / SPEED_DVC).parent.mkdir(exist_ok=True)
    (workdir / SPEED_DVC).write_text(render(workdir / "params.yaml", "speed"))
    smk = snakemake_jobs(workdir, target="results/speed.csv")
    dvc = dvc_stages(workdir)
    speed = {c: v for c, v in dvc.items() if v[4] == SPEED_DVC}
    assert list(smk) == list(speed)
    ((rule, outs),) = smk.values()
    ((name, dvc_outs, deps, upstream, _),) = speed.values()
    assert rule == name == "speed" and outs == dvc_outs == ["results/speed.csv", "results/speed.md"]
    assert deps == [] and upstream == set()
    assert not set(speed) & set(snakemake_jobs(workdir, target="all"))


def test_the_ablation_variants_carry_their_switches():
    """Each ablation job carries its variant as wildcards and reads the variant's switches as
    params; a variant's teacher, labels and baselines are those of its protocol; transfer
    variants start from the pre-trained models, scratch ones from nothing."""
    p = load_yaml(REPO / "params.yaml")
    p["ablation"] = {
        "sources": ["crossfit"], "detach": [True], "kd_reductions": ["batchmean"],
        "protocols": ["scratch"], "methods": ["st_ent"], "seeds": [4], "cells": [],
    }  # fmt: skip
    p = validate(p)
    js = {j.name: j for j in jobs(p)}
    s = next(iter(p["students"]))
    base = f"ablation_train_student@synthetic-1-resnext14-{s}-condi_sr-transfer-train-false-class_mean-4"
    assert base in js
    crossfit = js[
        f"ablation_train_student@synthetic-1-resnext14-{s}-condi_sr-transfer-crossfit-false-class_mean-4"
    ]
    assert crossfit.inputs["pseudo_labels"] == [
        "data/pseudo_labels/synthetic/fold1/ablation/resnext14_transfer_crossfit.npz"
    ]
    assert crossfit.inputs["pretrained"] == [
        f"models/synthetic_source/fold1/pretrained_student_{s}.pt"
    ]
    narrowed, values = stage_params(p, crossfit.stage, crossfit.wildcards)
    assert narrowed["pseudo_labels"]["source"] == "crossfit"
    assert narrowed["condi"]["detach_confidence_in_target"] is False
    assert narrowed["condi"]["kd_reduction"] == "class_mean" and narrowed["protocol"] == "transfer"
    assert narrowed["seed"] == 4 and values["seed"] == 4
    kd = js[
        f"ablation_train_student@synthetic-1-resnext14-{s}-condi_sr-transfer-train-false-batchmean-4"
    ]
    assert stage_params(p, kd.stage, kd.wildcards)[0]["condi"]["kd_reduction"] == "batchmean"
    scratch = js[
        f"ablation_train_student@synthetic-1-resnext14-{s}-condi_sr-scratch-train-false-class_mean-4"
    ]
    assert scratch.inputs["pretrained"] == []  # from nothing
    assert scratch.inputs["pseudo_labels"] == [
        "data/pseudo_labels/synthetic/fold1/ablation/resnext14_scratch_train.npz"
    ]
    assert stage_params(p, scratch.stage, scratch.wildcards)[0]["protocol"] == "scratch"
    teacher = js["ablation_train_teacher@synthetic-1-resnext14-scratch"]
    assert teacher.inputs["pretrained"] == [] and teacher.outputs["out"] == [
        "models/synthetic/fold1/ablation/teacher_resnext14_scratch.pt"
    ]
    assert js["ablation_train_teacher@synthetic-1-resnext14-transfer"].inputs["pretrained"] == [
        "models/synthetic_source/fold1/pretrained_teacher_resnext14.pt"
    ]
    rival = js[
        f"ablation_evaluate@synthetic-1-resnext14-{s}-st_ent-scratch-train-false-class_mean-4"
    ]
    assert rival.inputs["teacher_scores"] == [
        "results/scores/synthetic/fold1/ablation/teacher_resnext14_scratch.npz"
    ]
    assert rival.inputs["student_scores"][0].startswith("results/scores/synthetic/fold1/ablation/")
    labels = {n for n in js if n.startswith("ablation_pseudo_labels@")}
    assert labels == {
        "ablation_pseudo_labels@synthetic-1-resnext14-transfer-train",
        "ablation_pseudo_labels@synthetic-1-resnext14-transfer-crossfit",
        "ablation_pseudo_labels@synthetic-1-resnext14-scratch-train",
    }
    # condi_sr at the base and at each of 4 single changes; st_ent under both protocols
    assert len([n for n in js if n.startswith("ablation_train_student@")]) == 5 + 2
    narrowed, _ = stage_params(p, js["ablation_table"].stage, {})
    assert narrowed["ablation"] == {"K": [1, 3, 5]}
    # under protocol scratch the transfer variants are left out (no pre-trained models)
    p["protocol"] = "scratch"
    left = [j.name for j in jobs(validate(p), ablation=True)]
    assert left and not [n for n in left if "transfer" in n]


def test_grid_and_cells_designs():
    from condi.pipeline import ablation_variants

    p = validate(load_yaml(REPO / "params.yaml"))
    p["ablation"] = {**p["ablation"], "design": "grid", "methods": [], "cells": [], "seeds": [0]}
    assert len(ablation_variants(p)) == 2 * 2 * 2 * 2
    p["ablation"] = {**p["ablation"], "design": "one_at_a_time",
                     "cells": [{"method": "st_ent", "kd_reduction": "batchmean"}]}  # fmt: skip
    cells = ablation_variants(p)
    assert len(cells) == 1 + 4 + 1
    assert cells[-1] == {"method": "st_ent", "protocol": "transfer", "source": "train",
                         "detach": "false", "kd": "batchmean", "seed": "0"}  # fmt: skip


def several_params() -> dict:
    """The repository's params with a real dataset of three folds (root ``ucf``) beside the
    synthetic one, two teachers, two students and two methods."""
    p = load_yaml(REPO / "params.yaml")
    p["datasets"]["ucf"] = {"kind": "ucf101", "root": "ucf", "folds": [1, 2, 3]}
    p["teachers"]["r2plus1d"] = {"arch": "r2plus1d_34", "kwargs": {}}
    p["students"]["mobilenet"] = {"arch": "mobilenetv2", "kwargs": {}}
    p["methods"] = ["condi_sr", "st_ent"]
    p["tables"] = {}
    return p


def test_several_datasets_folds_and_models(tmp_path):
    """A real dataset with three folds beside the synthetic one, two teachers and two students:
    the jobs are no longer one product per stage, and DVC still runs what Snakemake runs."""
    p = several_params()
    (tmp_path / "ucf").mkdir()
    workdir = workflow_copy(tmp_path, p)
    dvc = check_same_dag(workdir)
    stages = yaml.safe_load(render(workdir / "params.yaml"))["stages"]
    # protocol transfer (the default): the source is indexed too, but is no target
    assert set(stages["index"]["foreach"]) == {
        "synthetic-1", "synthetic_source-1", "ucf-1", "ucf-2", "ucf-3"
    }  # fmt: skip
    assert stages["index"]["foreach"]["ucf-2"]["root"] == "${datasets.ucf.root}"
    assert "foreach" in stages["train_student"]
    n_train = sum(1 for v in dvc.values() if v[0].startswith("train_student@"))
    assert n_train == 4 * 2 * 2 * 2  # (dataset, fold) pairs x teachers x students x methods
    assert sum(1 for v in dvc.values() if v[0].startswith("timing@")) == 4 * 2 * 2
    table1 = next(c for c in dvc if c.startswith("condi data table1"))
    indexes = " ".join(
        f"data/index/{d}.parquet"
        for d in ("synthetic_fold1", "synthetic_source_fold1", "ucf_fold1")
    )
    assert f"--index {indexes} data/index/ucf_fold2.parquet data/index/ucf_fold3.parquet" in table1
    # the Table IV students among the trained ones: condi_sr and st_ent here
    timing = next(c for c in dvc if c.startswith("condi report timing"))
    assert re.search(r"--student-ckpt \S+_condi_sr\.pt \S+_st_ent\.pt --student-scores", timing)


def test_a_resized_dataset_reads_its_store_instead_of_a_cache(tmp_path):
    """storage: resized (issue 19) beside the synthetic dataset's cache: one resize job (every
    fold's index in, one folder out) and no cache job for it; every stage that reads clips
    gets the folder, the other dataset keeps its cache; DVC runs what Snakemake runs."""
    p = load_yaml(REPO / "params.yaml")
    (tmp_path / "k400").mkdir()
    p["datasets"]["k400"] = {"kind": "folder", "root": "k400", "folds": [1, 2],
                             "storage": "resized"}  # fmt: skip
    workdir = workflow_copy(tmp_path, p)
    dvc = check_same_dag(workdir)
    names = {v[0] for v in dvc.values()}
    assert {"cache@synthetic-1", "resize@k400"} <= names
    assert not [n for n in names if n.startswith("cache@k400") or n.startswith("resize@synth")]
    resize = next(c for c, v in dvc.items() if v[0] == "resize@k400")
    assert resize.endswith(
        "--index data/index/k400_fold1.parquet data/index/k400_fold2.parquet "
        "--out data/resized/k400"
    )
    assert dvc[resize][1] == ["data/resized/k400"]
    readers = {"train_teacher", "pseudo_labels", "train_student", "teacher_scores",
               "student_scores", "timing", "ablation_pseudo_labels",
               "ablation_train_student", "ablation_student_scores"}  # fmt: skip
    for cmd, (name, _, deps, _, _) in dvc.items():
        stage, _, job = name.replace("--", "@").partition("@")
        if stage not in readers:
            continue
        if job.startswith("k400"):
            assert "--cache data/resized/k400 " in cmd and "data/resized/k400" in deps
            assert not any(d.startswith("data/cache/") for d in deps), name
        else:
            assert "--cache data/cache/synthetic_fold1.npy " in cmd, name
    stages = yaml.safe_load(render(workdir / "params.yaml"))["stages"]
    assert stages["resize"]["do"]["params"] == [
        "datasets.${item.dataset}.root",
        "data.short_side",
        "resize",
    ]


def test_without_condi_sr_there_is_no_table5_nor_timeline(tmp_path):
    p = load_yaml(REPO / "params.yaml")
    p["methods"] = ["maxprob"]
    workdir = workflow_copy(tmp_path, p)
    dvc = check_same_dag(workdir)
    names = {v[0].split("@")[0] for v in dvc.values()}
    assert {"table4", "timing", "figures"} <= names
    assert not {"table5", "timeline"} & names
    timing = next(c for c in dvc if c.startswith("condi report timing"))
    assert "--student-ckpt" not in timing


def test_an_adopted_teacher_checkpoint_is_an_input(tmp_path):
    p = load_yaml(REPO / "params.yaml")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "mine.pt").write_bytes(b"")
    p["teachers"]["mine"] = {"arch": "resnext101", "kwargs": {}, "checkpoint": "ckpt/mine.pt"}
    workdir = workflow_copy(tmp_path, p)
    dvc = check_same_dag(workdir)
    deps = {v[0]: v[2] for v in dvc.values()}
    assert "ckpt/mine.pt" in deps["train_teacher--synthetic-1-mine"]
    assert "ckpt/mine.pt" not in deps["train_teacher--synthetic-1-resnext14"]


def test_committed_dvc_yaml_is_up_to_date():
    assert (REPO / "dvc.yaml").read_text() == render(REPO / "params.yaml"), (
        "run `condi pipeline dvc`"
    )
    assert (REPO / ABLATION_DVC).read_text() == render(REPO / "params.yaml", "ablation"), (
        "run `condi pipeline dvc`"
    )
    assert (REPO / SPEED_DVC).read_text() == render(REPO / "params.yaml", "speed"), (
        "run `condi pipeline dvc`"
    )


def test_dvc_yaml_text_is_what_safe_dump_writes():
    """libyaml's emitter (condi.config.dump_yaml) writes dvc.yaml byte for byte as PyYAML's
    ``safe_dump`` does, for every part, with the default params and with several datasets,
    folds and models (the ablation's file is then 1.9 MB)."""
    from condi.config import dump_yaml
    from condi.pipeline import PART_DVC, dvc_yaml

    for params in (load_yaml(REPO / "params.yaml"), several_params()):
        for part in PART_DVC:
            data = dvc_yaml(params, part)
            text = dump_yaml(data, sort_keys=False, width=1000)
            assert text == yaml.safe_dump(data, sort_keys=False, width=1000), part


def test_params_are_narrowed_per_stage():
    """Editing the K list touches only evaluation and timing (and what follows: table3,
    metrics, Tables IV/V, figures); the ambiguity table has its own K."""
    stages = bodies(render(REPO / "params.yaml"))
    readers = {
        name
        for name, s in stages.items()
        if any(p in ("evaluation", "evaluation.K") for p in s.get("params", []))
    }
    assert readers == {"evaluate_baselines", "evaluate_students", "timing"}
    abl = bodies(render(REPO / "params.yaml", "ablation"))
    assert "evaluation" in abl["ablation_evaluate"]["params"]
    assert "ablation.K" in abl["ablation_table"]["params"]
    # a variant's switches are its wildcards, not params.yaml's values
    student = next(v for k, v in abl.items() if k.startswith("ablation_train_student"))
    for key in ("seed", "protocol", "condi", "condi.kd_reduction", "pseudo_labels.source"):
        assert key not in student["params"], key
    assert "condi.tau" in student["params"]
    assert "teachers.${item.teacher}" in stages["train_teacher"]["params"]
    assert "students.${item.student}" in stages["train_student"]["params"]
    # threads is a scheduling choice, except for the time per video
    assert {k for k, s in stages.items() if "threads" in s.get("params", [])} == {"timing"}


def bodies(text: str) -> dict:
    """Each DVC stage's definition (a foreach stage's ``do``)."""
    return {k: v.get("do", v) for k, v in yaml.safe_load(text)["stages"].items()}


def test_metrics_and_plots_are_declared_uncached():
    stages = yaml.safe_load(render(REPO / "params.yaml"))["stages"]
    m = stages["metrics"]
    assert m["metrics"] == [{"results/metrics.json": {"cache": False}}]
    csv = next(p for p in m["plots"] if "results/plots/accuracy_vs_k.csv" in p)
    assert csv["results/plots/accuracy_vs_k.csv"]["x"] == "K"
    assert csv["results/plots/accuracy_vs_k.csv"]["y"] == "top1"
    assert (REPO / ".dvc" / "plots" / "accuracy_vs_k.json").is_file()


def test_commands_carry_only_paths_wildcards_params_and_stage():
    """No params value on any command line (issue 17): each option is --params, --stage, a
    wildcard (DVC's ${item.x}) or an input/output path of the DAG."""
    import shlex

    for part in ("main", "ablation"):
        doc = yaml.safe_load(render(REPO / "params.yaml", part))
        for name, st in doc["stages"].items():
            body = st.get("do", st)
            tokens = shlex.split(body["cmd"])
            files = {*body.get("deps", []), *body.get("outs", [])}
            files |= {next(iter(m)) for m in body.get("metrics", []) + body.get("plots", [])}
            stage = STAGES[name.split("--")[0]]
            assert tokens[:2] == ["condi", *stage.command.split()[:1]], tokens
            opt = None
            for tok in tokens[1 + len(stage.command.split()) :]:
                if tok.startswith("--"):
                    opt = tok[2:].replace("-", "_")
                    continue
                if opt == "params":
                    assert tok == "params.yaml"
                elif opt == "stage":
                    assert tok == stage.name
                elif opt in stage.wildcards:  # a job of its own ("--") names its values
                    single = "--" in name and tok in name.split("--", 1)[1].split("-")
                    assert tok == f"${{item.{opt}}}" or single, (name, opt, tok)
                else:
                    assert tok in files or opt == "out_dir", (name, opt, tok)


def test_a_values_edit_leaves_dvc_yaml_unchanged_and_a_shape_edit_does_not():
    p = load_yaml(REPO / "params.yaml")
    base = render_for(p)
    for key, value in [
        ("data.clip_len", 8),
        ("data.short_side", 40),
        ("datasets.synthetic.root", "data/my videos"),
        ("seed", 3),
        ("evaluation.K", [1, 2]),
        ("timing.repeats", 3),
        ("training.teacher.epochs", 2),
        ("teachers.resnext14.kwargs", {"layers": [1, 1, 1, 1]}),
    ]:
        q = copy.deepcopy(p)
        node = q
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
        assert render_for(q) == base, key
    q = copy.deepcopy(p)
    q["methods"] = ["condi_sr", "st_ent"]
    assert render_for(q) != base


def render_for(params: dict) -> tuple[str, str]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "params.yaml"
        path.write_text(yaml.safe_dump(params))
        return render(path), render(path, "ablation")


def test_the_protocol_switch_changes_the_dag(tmp_path):
    """protocol transfer (the default): the source dataset is made and indexed, teacher and
    student are pre-trained on it, and the target's teacher, pseudo-labels and every student
    start from those checkpoints; scratch: none of it, in Snakemake and DVC alike."""
    p = load_yaml(REPO / "params.yaml")
    assert p["protocol"] == "transfer" and p["pretrain"]["dataset"] == "synthetic_source"
    s = next(iter(p["students"]))
    transfer = {j.name: j for j in jobs(validate(copy.deepcopy(p)))}
    pre_t = "models/synthetic_source/fold1/pretrained_teacher_resnext14.pt"
    pre_s = f"models/synthetic_source/fold1/pretrained_student_{s}.pt"
    assert transfer["pretrain_teacher@synthetic_source-1-resnext14"].outputs["out"] == [pre_t]
    assert transfer[f"pretrain_student@synthetic_source-1-{s}"].outputs["out"] == [pre_s]
    for name in ("synth@synthetic_source", "index@synthetic_source-1", "cache@synthetic_source-1"):
        assert name in transfer
    assert transfer["train_teacher@synthetic-1-resnext14"].inputs["pretrained"] == [pre_t]
    assert transfer["pseudo_labels@synthetic-1-resnext14"].inputs["pretrained"] == [pre_t]
    students = [j for n, j in transfer.items() if n.startswith("train_student@")]
    assert len(students) == len(p["methods"])
    assert all(j.inputs["pretrained"] == [pre_s] for j in students)  # one start for all
    # the source only pre-trains: no target stage runs on it; Table I lists it
    assert not [n for n in transfer if "synthetic_source" in n and not n.startswith(
        ("synth@", "index@", "cache@", "pretrain_"))]  # fmt: skip
    assert "data/index/synthetic_source_fold1.parquet" in transfer["table1"].inputs["index"]

    q = copy.deepcopy(p)
    q["protocol"] = "scratch"
    workdir = workflow_copy(tmp_path, q)
    dvc = check_same_dag(workdir)
    names = {v[0] for v in dvc.values()}
    assert not [n for n in names if n.startswith("pretrain_") or "synthetic_source" in n]
    assert not [c for c in dvc if "--pretrained" in c or "synthetic_source" in c]
    assert "train_teacher@synthetic-1-resnext14" in names
    assert render(workdir / "params.yaml") != render(REPO / "params.yaml")
