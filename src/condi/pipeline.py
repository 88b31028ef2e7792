"""The pipeline's stages as data: one command template per stage, shared by the Snakemake rules
(``workflow/rules/*.smk``) and the generated ``dvc.yaml`` so the two DAGs cannot drift apart.

Templates use Snakemake's placeholders (``{input.x}``, ``{output.x}``, ``{params.x}``,
``{wildcards.x}``). :func:`jobs` fills them per job (what Snakemake runs); :func:`dvc_yaml`
fills them with DVC's ``${item.x}`` and groups the jobs of a stage into one ``matrix:`` stage
(when they are the full product of their wildcards and need nothing but the wildcards),
else one ``foreach:`` stage, else one stage per job.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from types import SimpleNamespace
from typing import Any

P = "--params params.yaml"

COMMANDS: dict[str, str] = {
    "synth": (
        "condi data synth --out {params.root} --preset {params.preset} --seed {params.seed}"
        "{params.overrides}"
    ),
    "index": (
        "condi data index --kind {params.kind} --root {params.root} --fold {wildcards.fold} "
        "--clip-len {params.clip_len} --val-fraction {params.val_fraction} --seed {params.seed} "
        "--out {output.index}"
    ),
    "cache": (
        "condi data cache --index {input.index} --root {params.root} --short-side {params.short_side} "
        "--out {output.cache}"
    ),
    "train_teacher": (
        f"condi train teacher {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --index {input.index} --cache {input.cache} --out {output.model}"
    ),
    "pseudo_labels": (
        f"condi train pseudo-labels {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --index {input.index} --cache {input.cache} "
        "--checkpoint {input.teacher} --out {output.labels}"
    ),
    "train_student": (
        f"condi train student {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --student {wildcards.student} --method {wildcards.method} "
        "--index {input.index} --cache {input.cache} --pseudo-labels {input.labels} --out {output.model}"
    ),
    "teacher_scores": (
        f"condi evaluate scores {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--index {input.index} --cache {input.cache} --checkpoint {input.model} --out {output.scores}"
    ),
    "student_scores": (
        f"condi evaluate scores {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--index {input.index} --cache {input.cache} --checkpoint {input.model} --out {output.scores}"
    ),
    "evaluate_baselines": (
        f"condi evaluate grid {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --index {input.index} --root {params.root} "
        "--teacher-scores {input.teacher} --out {output.table}"
    ),
    "evaluate_students": (
        f"condi evaluate grid {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --student {wildcards.student} --index {input.index} "
        "--root {params.root} --teacher-scores {input.teacher} --student-scores {params.students} "
        "--out {output.table}"
    ),
    "table3": f"condi tables table3 {P} --eval {{input}} --out-csv {{output.csv}} --out-md {{output.md}}",
    "metrics": (
        "condi pipeline metrics --table3 {input.table3} --out {output.metrics} "
        "--plots {output.plots} --figure {output.figure}"
    ),
}

# params.yaml keys each stage reads: DVC's ``params:`` and the Snakemake rules' ``params.config``
# (so that both re-run a stage exactly when one of these values changes). ``threads`` is left
# out on purpose: it is a scheduling choice (Snakemake's ``threads:``), not a result parameter.
PARAM_KEYS: dict[str, list[str]] = {
    "synth": ["datasets.{dataset}.synth"],
    "index": [
        "datasets.{dataset}.kind",
        "datasets.{dataset}.root",
        "data.clip_len",
        "data.val_fraction",
        "seed",
    ],
    "cache": ["data.short_side"],
    "train_teacher": [
        "teachers.{teacher}",
        "training.teacher",
        "data",
        "evaluation.batch_size",
        "seed",
        "device",
    ],
    "pseudo_labels": [
        "pseudo_labels",
        "teachers.{teacher}",
        "training.teacher",
        "data",
        "evaluation.batch_size",
        "seed",
        "device",
    ],
    "train_student": [
        "students.{student}",
        "training.student",
        "condi",
        "st_conf",
        "data",
        "evaluation.batch_size",
        "seed",
        "device",
    ],
    "teacher_scores": ["data", "evaluation.batch_size", "seed", "device"],
    "student_scores": ["data", "evaluation.batch_size", "seed", "device"],
    "evaluate_baselines": ["evaluation", "pseudo_labels", "condi.detach_confidence_in_target"],
    "evaluate_students": ["evaluation", "pseudo_labels", "condi.detach_confidence_in_target"],
    "table3": ["tables"],
    "metrics": [],
}


# Paths (Snakemake patterns); wildcards: dataset, fold, teacher, student, method.
INDEX = "data/index/{dataset}_fold{fold}.parquet"
CACHE = "data/cache/{dataset}_fold{fold}.npy"
TEACHER = "models/{dataset}/fold{fold}/teacher_{teacher}.pt"
LABELS = "data/pseudo_labels/{dataset}/fold{fold}/{teacher}.npz"
STUDENT = "models/{dataset}/fold{fold}/student_{teacher}_{student}_{method}.pt"
TEACHER_SCORES = "results/scores/{dataset}/fold{fold}/teacher_{teacher}.npz"
STUDENT_SCORES = "results/scores/{dataset}/fold{fold}/student_{teacher}_{student}_{method}.npz"
EVAL_BASELINES = "results/eval/{dataset}/fold{fold}/baselines_{teacher}.csv"
EVAL_STUDENTS = "results/eval/{dataset}/fold{fold}/students_{teacher}_{student}.csv"
TABLE3_CSV = "results/table3.csv"
TABLE3_MD = "results/table3.md"
TABLE3_PAPER_CSV = "results/table3_paper.csv"  # written beside TABLE3_CSV by `condi tables table3`
# Companions of table3 for DVC (`dvc metrics show`, `dvc plots show`) and the Snakemake report.
METRICS_JSON = "results/metrics.json"
PLOT_CSV = "results/plots/accuracy_vs_k.csv"
PLOT_PNG = "results/plots/accuracy_vs_k.png"
# The DVC plot template (in .dvc/plots/): one line per method, one panel per dataset.
PLOT_TEMPLATE = "accuracy_vs_k"

# Wildcards of each stage, in the order that names its jobs (``train_student@synthetic-1-...``).
WILDCARDS: dict[str, tuple[str, ...]] = {
    "synth": ("dataset",),
    "index": ("dataset", "fold"),
    "cache": ("dataset", "fold"),
    "train_teacher": ("dataset", "fold", "teacher"),
    "pseudo_labels": ("dataset", "fold", "teacher"),
    "teacher_scores": ("dataset", "fold", "teacher"),
    "evaluate_baselines": ("dataset", "fold", "teacher"),
    "train_student": ("dataset", "fold", "teacher", "student", "method"),
    "student_scores": ("dataset", "fold", "teacher", "student", "method"),
    "evaluate_students": ("dataset", "fold", "teacher", "student"),
    "table3": (),
    "metrics": (),
}


def synth_marker(root: str) -> str:
    return f"{root}/manifest.parquet"


def synth_overrides(synth: dict[str, Any]) -> str:
    """``condi data synth --set KEY=VALUE`` arguments for ``datasets.<d>.synth.overrides``."""
    items = sorted((synth or {}).get("overrides", {}).items())
    return "".join(f" --set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in items)


def student_scores_arg(
    dataset: str, fold: Any, teacher: str, student: str, methods: list[str]
) -> str:
    return " ".join(
        f"{m}={STUDENT_SCORES.format(dataset=dataset, fold=fold, teacher=teacher, student=student, method=m)}"
        for m in methods
    )


def eval_csvs(config: dict[str, Any]) -> list[str]:
    """Every evaluation CSV table3 assembles, in a stable order."""
    out = []
    for d, ds in config["datasets"].items():
        for f in ds.get("folds", [1]):
            for t in config["teachers"]:
                out.append(EVAL_BASELINES.format(dataset=d, fold=f, teacher=t))
                out += [
                    EVAL_STUDENTS.format(dataset=d, fold=f, teacher=t, student=s)
                    for s in config["students"]
                ]
    return out


@dataclass
class Stage:
    """One job: the command Snakemake runs for it and DVC's view of it (deps, outs, params)."""

    name: str
    cmd: str
    deps: list[str]
    outs: list[str]
    params: list[str] = field(default_factory=list)
    wildcards: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)  # outs that are DVC metrics (not cached)
    plots: list[str] = field(default_factory=list)  # outs that are DVC plots (not cached)


def _fill(template: str, **ns: Any) -> str:
    return template.format(
        **{k: SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in ns.items()}
    )


def teacher_checkpoint(config: dict[str, Any], teacher: str) -> list[str]:
    """``[teachers.<t>.checkpoint]`` when that teacher is adopted rather than trained, else []:
    the checkpoint file is then an input of train_teacher."""
    ckpt = config["teachers"][teacher].get("checkpoint")
    return [str(ckpt)] if ckpt else []


def _job_values(config: dict[str, Any], w: dict[str, Any]) -> dict[str, Any]:
    """Values of a job that come from ``datasets.<d>`` and ``teachers.<t>`` (not expressible by
    the wildcards)."""
    out = _dataset_values(config, w["dataset"]) if "dataset" in w else {}
    if "teacher" in w:
        out["teacher_checkpoint"] = " ".join(teacher_checkpoint(config, w["teacher"]))
    return out


def _dataset_values(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    ds = config["datasets"][dataset]
    sy = ds.get("synth")
    return {
        "root": ds["root"],
        "kind": ds["kind"],
        "preset": (sy or {}).get("preset", "default"),
        "synth_seed": (sy or {}).get("seed", 0),
        "overrides": synth_overrides(sy or {}),
        "synthetic": sy is not None,
    }


def _wildcard_sets(config: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    if name == "synth":
        yield from ({"dataset": d} for d, ds in config["datasets"].items() if "synth" in ds)
        return
    if not WILDCARDS[name]:
        yield {}
        return
    for d, ds in config["datasets"].items():
        for f in ds.get("folds", [1]):
            if name in ("index", "cache"):
                yield {"dataset": d, "fold": f}
                continue
            for t in config["teachers"]:
                w = {"dataset": d, "fold": f, "teacher": t}
                if len(WILDCARDS[name]) == 3:
                    yield w
                    continue
                for s in config["students"]:
                    if name == "evaluate_students":
                        yield {**w, "student": s}
                        continue
                    for m in config["methods"]:
                        yield {**w, "student": s, "method": m}


def _render(name: str, config: dict[str, Any], w: dict[str, Any], v: dict[str, Any]) -> Stage:
    """The job of stage ``name`` for wildcards ``w`` and dataset values ``v``. Both may hold
    placeholders (DVC's ``${item.x}``) instead of values; the result is then a template."""
    data = config["data"]
    root = v.get("root")
    wn = SimpleNamespace(**w)
    idx = INDEX.format(**w) if "fold" in w else None
    cache = CACHE.format(**w) if "fold" in w else None
    manifest = [synth_marker(root)] if v.get("synthetic") else []
    keys = [k.format(**w) for k in PARAM_KEYS[name]]

    def stage(cmd_ns: dict[str, Any], deps: list[str], outs: list[str], **kw: Any) -> Stage:
        return Stage(name, _fill(COMMANDS[name], wildcards=w, **cmd_ns), deps, outs, keys, w, **kw)

    if name == "synth":
        p = {
            "root": root,
            "preset": v["preset"],
            "seed": v["synth_seed"],
            "overrides": v["overrides"],
        }
        return stage({"params": p}, [], [root])
    if name == "index":
        p = {
            "kind": v["kind"],
            "root": root,
            "clip_len": data["clip_len"],
            "val_fraction": data.get("val_fraction", 0.1),
            "seed": config.get("seed", 0),
        }
        return stage({"params": p, "output": {"index": idx}}, [root], [idx])
    if name == "cache":
        p = {"root": root, "short_side": data["short_side"]}
        io = {"params": p, "input": {"index": idx}, "output": {"cache": cache}}
        return stage(io, [idx, root], [cache])
    if name in ("train_teacher", "pseudo_labels", "teacher_scores", "evaluate_baselines"):
        teacher, tscores = TEACHER.format(**w), TEACHER_SCORES.format(**w)
        io = {"index": idx, "cache": cache}
        if name == "train_teacher":
            ckpt = [v["teacher_checkpoint"]] if v.get("teacher_checkpoint") else []
            ns = {"input": io, "output": {"model": teacher}}
            return stage(ns, [idx, cache, *ckpt], [teacher])
        if name == "pseudo_labels":
            labels = LABELS.format(**w)
            ns = {"input": {**io, "teacher": teacher}, "output": {"labels": labels}}
            return stage(ns, [idx, cache, teacher], [labels])
        if name == "teacher_scores":
            ns = {"input": {**io, "model": teacher}, "output": {"scores": tscores}}
            return stage(ns, [idx, cache, teacher], [tscores])
        base = EVAL_BASELINES.format(**w)
        ns = {
            "params": {"root": root},
            "input": {"index": idx, "teacher": tscores},
            "output": {"table": base},
        }
        return stage(ns, [idx, tscores, *manifest], [base])
    if name in ("train_student", "student_scores"):
        model = STUDENT.format(**w)
        io = {"index": idx, "cache": cache}
        if name == "train_student":
            labels = LABELS.format(**w)
            ns = {"input": {**io, "labels": labels}, "output": {"model": model}}
            return stage(ns, [idx, cache, labels], [model])
        sc = STUDENT_SCORES.format(**w)
        ns = {"input": {**io, "model": model}, "output": {"scores": sc}}
        return stage(ns, [idx, cache, model], [sc])
    if name == "evaluate_students":
        tscores, ev = TEACHER_SCORES.format(**w), EVAL_STUDENTS.format(**w)
        methods = config["methods"]
        sscores = [STUDENT_SCORES.format(**w, method=m) for m in methods]
        p = {
            "root": root,
            "students": student_scores_arg(wn.dataset, wn.fold, wn.teacher, wn.student, methods),
        }
        ns = {"params": p, "input": {"index": idx, "teacher": tscores}, "output": {"table": ev}}
        return stage(ns, [idx, tscores, *sscores, *manifest], [ev])
    if name == "table3":
        evals = eval_csvs(config)
        ns = {"input": " ".join(evals), "output": {"csv": TABLE3_CSV, "md": TABLE3_MD}}
        return stage(ns, evals, [TABLE3_CSV, TABLE3_MD, TABLE3_PAPER_CSV])
    if name == "metrics":
        ns = {
            "input": {"table3": TABLE3_CSV},
            "output": {"metrics": METRICS_JSON, "plots": PLOT_CSV, "figure": PLOT_PNG},
        }
        return stage(
            ns,
            [TABLE3_CSV],
            [],
            metrics=[METRICS_JSON],
            plots=[PLOT_CSV, PLOT_PNG],
        )
    raise KeyError(name)


def job_name(stage: str, w: dict[str, Any]) -> str:
    """``train_student@synthetic-1-resnext-resnext8-condi_sr``: DVC's name for the job."""
    return f"{stage}@{'-'.join(str(x) for x in w.values())}" if w else stage


def jobs(config: dict[str, Any]) -> list[Stage]:
    """Every job of the pipeline for ``config``, in topological order (as Snakemake runs them)."""
    out = []
    for name in COMMANDS:
        for w in _wildcard_sets(config, name):
            st = _render(name, config, w, _job_values(config, w))
            st.name = job_name(name, w)
            out.append(st)
    return out


def _dvc_entry(st: Stage) -> dict[str, Any]:
    entry: dict[str, Any] = {"cmd": st.cmd}
    if st.deps:
        entry["deps"] = list(dict.fromkeys(st.deps))
    if st.params:
        entry["params"] = list(st.params)
    if st.outs:
        entry["outs"] = list(st.outs)
    if st.metrics:
        entry["metrics"] = [{m: {"cache": False}} for m in st.metrics]
    if st.plots:
        plots = []
        for p in st.plots:
            if p.endswith(".csv"):
                opts = {"cache": False, "template": PLOT_TEMPLATE, "x": "K", "y": "top1"}
                plots.append({p: opts})
            else:
                plots.append({p: {"cache": False}})
        entry["plots"] = plots
    return entry


def _is_product(items: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, list] | None:
    """The matrix whose product is ``items`` (same order), or None."""
    axes = {k: list(dict.fromkeys(it[k] for it in items)) for k in keys}
    expanded = [dict(zip(keys, combo, strict=True)) for combo in product(*axes.values())]
    return axes if expanded == [{k: it[k] for k in keys} for it in items] else None


def dvc_yaml(config: dict[str, Any]) -> dict[str, Any]:
    """``dvc.yaml`` for ``config``: every Snakemake job as a DVC stage with the same command,
    inputs, outputs and (narrowed) params, grouped per rule into ``matrix:`` or ``foreach:``
    stages where DVC can express the group. Written by ``condi pipeline dvc``."""
    out: dict[str, Any] = {}
    for name in COMMANDS:
        ws = list(_wildcard_sets(config, name))
        keys = WILDCARDS[name]
        if not keys:
            if ws:
                out[name] = _dvc_entry(_render(name, config, {}, {}))
            continue
        if not ws:
            continue
        vals = [_job_values(config, w) for w in ws]
        item_w = {k: f"${{item.{k}}}" for k in keys}
        # dataset and teacher values the stage uses and that differ between jobs become item
        # fields (an empty one changes the stage's shape); the rest stay literal
        probe = {k: f"${{item.{k}}}" for k in vals[0] if k != "synthetic"}
        used = str(_dvc_entry(_render(name, config, item_w, {**vals[0], **probe})))
        varying = [k for k in probe if probe[k] in used and len({str(v[k]) for v in vals}) > 1]
        templates = []
        for v in vals:
            tv = {**v, **{k: f"${{item.{k}}}" for k in varying if v[k]}}
            templates.append(_dvc_entry(_render(name, config, item_w, tv)))
        if any(t != templates[0] for t in templates):
            # the jobs differ in shape (e.g. a synthetic and a real dataset): one stage per job
            for w, v in zip(ws, vals, strict=True):
                out[job_name(name, w).replace("@", "--")] = _dvc_entry(_render(name, config, w, v))
            continue
        axes = None if varying else _is_product(ws, keys)
        if axes is not None:
            out[name] = {"matrix": axes, **templates[0]}
        else:
            items = {
                job_name(name, w).split("@", 1)[1]: {**w, **{k: v[k] for k in varying}}
                for w, v in zip(ws, vals, strict=True)
            }
            out[name] = {"foreach": items, "do": templates[0]}
    return {"stages": out}


# -- Snakemake after `dvc pull` ------------------------------------------------------------------


class DvcRecords:
    """``dvc.lock`` as Snakemake needs it after ``dvc pull`` / ``dvc checkout``.

    DVC restores files without their modification times, and Snakemake (9.27) re-runs a job
    whose input is newer than its output unless the input's checksum equals the one recorded
    in ``.snakemake/metadata`` when the job ran, which a fresh clone does not have. So for a job
    whose outputs Snakemake has no record of, the rules ask :meth:`up_to_date`: when
    ``dvc.lock`` records the job's stage with exactly the current outputs, inputs and params
    (what ``dvc status`` checks), the inputs' mtimes carry no information and the rules mark
    them ``ancient()``. md5s come from DVC's state database (filled by ``dvc pull``), else are
    computed.
    """

    def __init__(self, root: str | Path = ".", params_file: str = "params.yaml") -> None:
        import yaml

        self.root = Path(root)
        self.params_file = params_file
        lock = self.root / "dvc.lock"
        self.stages: dict[str, Any] = {}
        if lock.is_file():
            with open(lock) as f:
                self.stages = (yaml.safe_load(f) or {}).get("stages") or {}
        self._outs = {
            o["path"]: name for name, st in self.stages.items() for o in st.get("outs") or []
        }
        self._memo: dict[tuple, str | None] = {}
        self._repo: Any = None
        self._md5: dict[str, str | None] = {}
        self._params: dict[str, Any] | None = None
        self._dirs: dict[str, dict[str, str]] = {}

    def __bool__(self) -> bool:
        return bool(self.stages)

    def _dvc(self) -> Any:
        if self._repo is None:
            from dvc.repo import Repo

            self._repo = Repo(str(self.root))
        return self._repo

    def md5(self, path: str) -> str | None:
        """DVC's md5 of the file ``path`` (None if missing)."""
        if path not in self._md5:
            p = self.root / path
            value = None
            if p.is_file():
                try:
                    repo = self._dvc()
                    _, info = repo.state.get(str(p.resolve()), repo.fs)
                    value = info.value if info is not None else None
                except Exception:
                    value = None
                if value is None:
                    import hashlib

                    h = hashlib.md5()
                    with open(p, "rb") as f:
                        while block := f.read(1 << 22):
                            h.update(block)
                    value = h.hexdigest()
            self._md5[path] = value
        return self._md5[path]

    def _dir_listing(self, md5: str) -> dict[str, str]:
        """``{relpath: md5}`` of a directory DVC recorded as ``md5`` (from its cache)."""
        if md5 not in self._dirs:
            import json

            listing: dict[str, str] = {}
            try:
                path = self._dvc().cache.local.oid_to_path(md5)
                with open(path) as f:
                    listing = {e["relpath"]: e["md5"] for e in json.load(f)}
            except Exception:
                pass
            self._dirs[md5] = listing
        return self._dirs[md5]

    def _recorded(self, entries: list[dict[str, Any]], path: str) -> str | None:
        for e in entries:
            if e.get("path") == path:
                return e.get("md5")
            prefix = e.get("path", "").rstrip("/") + "/"
            if path.startswith(prefix) and str(e.get("md5", "")).endswith(".dir"):
                return self._dir_listing(e["md5"]).get(path[len(prefix) :])
        return None

    def _current_params(self) -> dict[str, Any]:
        if self._params is None:
            import yaml

            try:
                with open(self.root / self.params_file) as f:
                    self._params = yaml.safe_load(f) or {}
            except OSError:
                self._params = {}
        return self._params

    def _producer(self, path: str) -> str | None:
        """The stage whose output is ``path`` (or a directory holding it)."""
        if path in self._outs:
            return self._outs[path]
        return next(
            (s for o, s in self._outs.items() if path.startswith(o.rstrip("/") + "/")), None
        )

    def stale_reason(self, stage: str, inputs: list[str] | None = None) -> str | None:
        """Why ``dvc.lock`` does not describe ``stage`` as it is now (None: it does): an output,
        a dep (or one of ``inputs``, files inside a directory dep), a param, or, transitively,
        a stage upstream differs. Directory deps and outputs (datasets) are not hashed."""
        key = (stage, tuple(inputs or ()))
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = reason = self._stale_reason(stage, inputs or [])
        return reason

    def _stale_reason(self, stage: str, inputs: list[str]) -> str | None:
        entry = self.stages.get(stage)
        if not entry:
            return f"{stage}: not in dvc.lock"
        for o in entry.get("outs") or []:
            if str(o.get("md5", "")).endswith(".dir"):
                continue
            if o.get("md5") is None or self.md5(o["path"]) != o["md5"]:
                return f"{stage}: output {o['path']} differs from dvc.lock"
        deps = entry.get("deps") or []
        files = [d["path"] for d in deps if not str(d.get("md5", "")).endswith(".dir")]
        for p in dict.fromkeys([*files, *inputs]):
            rec = self._recorded(deps, p)
            if rec is None or self.md5(p) != rec:
                return f"{stage}: input {p} differs from dvc.lock"
        current = self._current_params()
        for key, value in ((entry.get("params") or {}).get(self.params_file) or {}).items():
            node: Any = current
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node != value:
                return f"{stage}: {self.params_file} {key} differs from dvc.lock"
        for d in deps:
            up = self._producer(d["path"])
            if up is not None and up != stage and (why := self.stale_reason(up)):
                return why
        return None

    def up_to_date(self, stage: str, inputs: list[str]) -> bool:
        """True when ``dvc.lock`` records ``stage`` and every stage upstream of it exactly as
        the workspace is now (outputs, deps, ``inputs``, params): what ``dvc status`` checks."""
        return self.stale_reason(stage, inputs) is None
