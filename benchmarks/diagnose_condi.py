"""Why does ConDi-SR rank clips as it does? Retrain students one change at a time from the same
data, teacher and Eq. 1 labels, and measure each (docs/method.md, section 9.3).

    PYTHONPATH=src python benchmarks/diagnose_condi.py [--project DIR] [--quick]
        [--variants NAME ... | all] [--variants-file FILE] [--epochs N] [--json OUT]

It reuses one pipeline run's outputs in the project folder ``DIR`` (default: here): the clip
index and cache, the teacher checkpoint and its Eq. 1 pseudo-labels (``data/``, ``models/``;
it says which file is missing and the ``snakemake`` command that makes it). Each variant is a
student objective with ``params.yaml`` overrides (:data:`VARIANTS`; ``--variants-file`` adds
or replaces variants from a YAML/JSON mapping of the same shape), trained with the library's
own student training (``condi.training.student.train_student``, the diagnostic hook of
``condi.training.diagnostics`` on every batch) and scored with the library's evaluation
(``condi.evaluation.run``; ``condi.tables.table3.paired_bootstrap``). It prints per variant:

* ``H/logC``: the classifier's entropy as a fraction of its maximum ``log C``, mean over the test
  clips, and over the training batches (augmented, as trained) of every epoch;
* ``z~|z=1``, ``z~|z=0``: the trained student's mean z~ on its training clips (center crop) with
  Eq. 1's z = 1 and z = 0, and ``AUC(z)`` its ranking score's AUROC for z on those clips (the
  separation of its own labels); ``AUC wv``: the within-video AUROC of its ranking score for
  "teacher correct" on the test clips (``condi.tables.ambiguity.within_video_auroc``);
* ``opp z=0``, ``opp z=1``: the share of z = 0 and of z = 1 training clips on which the
  gradient of the distillation term on the clip's confidence logit opposes the BCE term's
  (per-clip gradients by ``torch.autograd``; how: ``condi.training.diagnostics``), for the
  trained student on its training clips, and per epoch on the training batches (ConDi-SR only;
  0 with z~ detached in the target, where the distillation term sends no gradient there);
* top-1 video accuracy (%) of the teacher on the K clips each variant ranks first (the grid of
  ``condi evaluate grid``), and the paired bootstrap difference to the baseline variant (the
  first one listed) with its 95% interval, test videos resampled.

Variants whose resolved params, objective and initialisation are identical are trained once
(e.g. ``condi_sr_class_mean`` when params.yaml already says ``class_mean``). Checkpoints go to
``models/<dataset>/fold<fold>/diagnose/`` with a ``.key`` file beside each: a rerun with the
same inputs and settings reuses them (``--retrain`` trains again). ``--quick``: 2 epochs.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

# name -> {method, params (dotted params.yaml keys -> values), init (a variant whose trained
# weights initialise this student's backbone and classifier), optional (only with `all` or by
# name), note}. Users add their own with --variants-file.
VARIANTS: dict[str, dict[str, Any]] = {
    "condi_sr": {"method": "condi_sr", "note": "ConDi-SR as params.yaml says (the baseline)"},
    "condi_sr_detach": {
        "method": "condi_sr",
        "params": {"condi.detach_confidence_in_target": True},
        "note": "z~ detached in Eq. 5's target",
    },
    "condi_sr_batchmean": {
        "method": "condi_sr",
        "params": {"condi.kd_reduction": "batchmean"},
        "note": "KD summed over classes (Eq. 8)",
    },
    "condi_sr_class_mean": {
        "method": "condi_sr",
        "params": {"condi.kd_reduction": "class_mean"},
        "note": "KD with 1/C (Eq. 7 as written)",
    },
    "st_ent": {"method": "st_ent", "note": "reference: KD + CE, ranks by -entropy"},
    "bce_conf": {"method": "bce_conf", "note": "reference: CE + BCE on z, no KD"},
    "ce": {"method": "maxprob", "optional": True, "note": "plain CE student (init of the next)"},
    "condi_sr_from_ce": {
        "method": "condi_sr",
        "init": "ce",
        "params": {"training.student.lr": 0.01},
        "optional": True,
        "note": "ConDi-SR fine-tuned (alpha 0.01) from the CE student",
    },
}
SPEC_KEYS = {"method", "params", "init", "optional", "note"}
QUICK_EPOCHS = 2


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--project", type=Path, default=Path("."), help="a pipeline run's folder")
    p.add_argument("--params", type=Path, default=None, help="default: PROJECT/params.yaml")
    p.add_argument("--dataset", default=None, help="default: the params' first dataset")
    p.add_argument("--fold", type=int, default=None, help="default: the dataset's first fold")
    p.add_argument("--teacher", default=None, help="default: the params' first teacher")
    p.add_argument("--student", default=None, help="default: the params' first student")
    p.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="variant names, or `all` (default: every non-optional variant)",
    )
    p.add_argument("--baseline", default=None, help="default: the first variant asked for")
    p.add_argument("--variants-file", type=Path, default=None, help="YAML/JSON: name -> spec")
    p.add_argument("--list", action="store_true", help="list the variants and exit")
    p.add_argument("--epochs", type=int, default=None, help="student epochs (default: params)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5], help="K of the top-1 table")
    p.add_argument("--threads", type=int, default=None, help="default: params threads")
    p.add_argument("--work", type=Path, default=None, help="checkpoints (default: see above)")
    p.add_argument("--retrain", action="store_true", help="never reuse a checkpoint")
    p.add_argument("--json", type=Path, default=None, help="write every number as JSON")
    return p.parse_args(argv)


# -- variants --------------------------------------------------------------------------------


def load_variants(path: Path | None) -> dict[str, dict[str, Any]]:
    """The built-in variants, with those of ``path`` (a mapping name -> spec) added or
    replacing them; every spec checked."""
    from condi.methods import get_method

    variants = copy.deepcopy(VARIANTS)
    if path is not None:
        if not path.is_file():
            raise SystemExit(f"{path}: variants file not found")
        extra = yaml.safe_load(path.read_text())
        if not isinstance(extra, dict):
            raise SystemExit(f"{path}: expected a mapping of variant name -> spec")
        variants.update(extra)
    for name, spec in variants.items():
        where = f"variant {name!r}" + (f" ({path})" if path and name in extra else "")
        if not isinstance(spec, dict) or "method" not in spec:
            raise SystemExit(f"{where}: a mapping with at least `method`")
        unknown = set(spec) - SPEC_KEYS
        if unknown:
            raise SystemExit(
                f"{where}: unknown keys {sorted(unknown)} (known: {sorted(SPEC_KEYS)})"
            )
        try:
            get_method(spec["method"])
        except ValueError as exc:
            raise SystemExit(f"{where}: {exc}") from None
        if not isinstance(spec.get("params", {}), dict):
            raise SystemExit(f"{where}: `params` maps dotted params.yaml keys to values")
        if spec.get("init") is not None and spec["init"] not in variants:
            raise SystemExit(f"{where}: init {spec['init']!r} is not a variant")
    return variants


def selection(variants: dict[str, dict], names: list[str] | None) -> tuple[list[str], list[str]]:
    """``(the variants to run in order, each after the variant its weights start from; the
    variants asked for)``."""
    if not names:
        names = [n for n, s in variants.items() if not s.get("optional")]
    elif names == ["all"]:
        names = list(variants)
    for n in names:
        if n not in variants:
            raise SystemExit(f"unknown variant {n!r}; known: {', '.join(variants)}")
    order: list[str] = []

    def visit(n: str, path: tuple[str, ...]) -> None:
        if n in path:
            raise SystemExit(f"variants: init cycle {' -> '.join((*path, n))}")
        init = variants[n].get("init")
        if init:
            visit(init, (*path, n))
        if n not in order:
            order.append(n)

    for n in names:
        visit(n, ())
    return order, names


def variant_params(base: dict, spec: dict, name: str) -> dict:
    from condi.config import ConfigError, apply_overrides, validate

    p = copy.deepcopy(base)
    items = [f"{k}={json.dumps(v)}" for k, v in (spec.get("params") or {}).items()]
    try:
        apply_overrides(p, items, f"variant {name}")
        return validate(p, source=f"variant {name}")
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


# -- inputs ----------------------------------------------------------------------------------


def inputs(project: Path, d: str, f: int, t: str) -> dict[str, Path]:
    """The pipeline outputs a diagnosis starts from; each missing one is named with the
    command that makes it."""
    from condi import pipeline as pl

    w = {"dataset": d, "fold": f, "teacher": t}
    paths = {
        "index": pl.INDEX.format(**w),
        "cache": pl.CACHE.format(**w),
        "teacher": pl.TEACHER.format(**w),
        "labels": pl.LABELS.format(**w),
    }
    missing = [p for p in paths.values() if not (project / p).is_file()]
    if missing:
        lines = [f"{project / p}: not found" for p in missing]
        target = paths["labels"]
        lines.append(
            f"make the pipeline's student-training inputs first: cd {project} && "
            f"snakemake --cores all {target}"
        )
        raise SystemExit("\n".join(lines))
    return {k: project / p for k, p in paths.items()}


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def teacher_test_scores(project: Path, params, paths, data, d, f, t) -> dict[str, np.ndarray]:
    """The teacher's per-clip test logits: the pipeline's stored scores when they cover the
    test clips of this index, else computed (``condi.evaluation.run.clip_scores``)."""
    from condi import pipeline as pl
    from condi.evaluation.run import clip_scores, load_scores

    stored = project / pl.TEACHER_SCORES.format(dataset=d, fold=f, teacher=t)
    if stored.is_file():
        s = load_scores(stored)
        if np.array_equal(s["rows"], data.rows("test")):
            return s
    return clip_scores(params, paths["teacher"], data)


# -- one variant -----------------------------------------------------------------------------


def train_variant(
    name, spec, params, student, data, pl_labels, out: Path, key: str, retrain: bool
) -> tuple[float, bool]:
    """Train (or reuse) the variant's student; ``(seconds, reused)``."""
    from condi.training import diagnostics
    from condi.training.student import train_student

    key_file = out.with_suffix(".key")
    if not retrain and out.is_file() and key_file.is_file() and key_file.read_text() == key:
        return 0.0, True
    hook = diagnostics.batch_metrics(spec["method"], params["condi"])
    t0 = time.perf_counter()
    train_student(params, student, spec["method"], data, pl_labels, out, batch_metrics=hook)
    key_file.write_text(key)
    return time.perf_counter() - t0, False


def measure(name, spec, params, ckpt: Path, data, pl_labels, teacher_scores, manifest, ks):
    """Every number of one trained variant (module docstring)."""
    import torch

    from condi.evaluation.run import clip_scores, evaluate_grid
    from condi.inference import forward_rows
    from condi.metrics import auroc, eq1_labels, softmax_np
    from condi.models.checkpoint import load_model
    from condi.runtime import setup
    from condi.scores import entropy_np, ranking_score
    from condi.tables.ambiguity import within_video_auroc
    from condi.training import diagnostics
    from condi.training.student import _lookup

    method = spec["method"]
    log_c = math.log(data.num_classes)
    model, ck = load_model(ckpt, role="student")
    epochs = diagnostics.epoch_summary(ck.get("history", []))

    # test clips: the stored-scores path of the pipeline (condi evaluate scores)
    s = clip_scores(params, ckpt, data)
    test_entropy = float(entropy_np(softmax_np(s["logits"].astype(np.float64))).mean() / log_c)
    rows = s["rows"]
    z_test = eq1_labels(teacher_scores["logits"], data.labels(rows))
    score = ranking_score(method, s["logits"], s.get("confidence_logit"))
    wv, n_wv, _, _ = within_video_auroc(score, z_test, data.video_ids(rows))

    # training clips, center crop: separation of its own labels, gradient opposition
    device = setup(params["seed"], params["threads"], params["device"])
    train_rows = data.rows("train")
    out = forward_rows(
        model.to(device),
        data.cache_path,
        train_rows,
        data.labels(train_rows),
        params["data"],
        params["evaluation"]["batch_size"],
        device,
    )
    pos = _lookup(len(data.index), pl_labels)[train_rows]
    z = pl_labels["z"][pos].astype(bool)
    t_logits = pl_labels["logits"][pos].astype(np.float32)
    zt = 1.0 / (1.0 + np.exp(-out["confidence_logit"].astype(np.float64)))
    train_score = ranking_score(method, out["logits"], out["confidence_logit"])
    res: dict[str, Any] = {
        "variant": name,
        "method": method,
        "note": spec.get("note", ""),
        "test_entropy": test_entropy,
        "train_entropy": float(
            entropy_np(softmax_np(out["logits"].astype(np.float64))).mean() / log_c
        ),
        "epochs": epochs,
        "ztilde_z1": float(zt[z].mean()) if get_trains(method) else math.nan,
        "ztilde_z0": float(zt[~z].mean()) if get_trains(method) else math.nan,
        "train_auroc_z": auroc(train_score, z),
        "test_auroc": auroc(score, z_test),
        "test_auroc_within_video": wv,
        "within_video_videos": n_wv,
        "opposed_z0": math.nan,
        "opposed_z1": math.nan,
    }
    if method == "condi_sr":
        g_kd, g_conf = diagnostics.confidence_gradients(
            torch.from_numpy(out["logits"]),
            torch.from_numpy(out["confidence_logit"]),
            torch.from_numpy(t_logits),
            torch.from_numpy(z.astype(np.float32)),
            params["condi"],
        )
        opp = diagnostics.opposition(g_kd, g_conf).numpy()
        res["opposed_z0"] = float(opp[~z].mean())
        res["opposed_z1"] = float(opp[z].mean())

    ev = copy.deepcopy(params)
    ev["evaluation"]["K"] = list(ks)
    grid, per_video = evaluate_grid(ev, data.index, teacher_scores, {method: s}, manifest)
    single = grid[grid["method"] == method]
    if "Ks" in single:
        single = single[single["Ks"].isna()]
    res["student_dense_top1"] = float(grid["student_dense_top1"].iloc[0])
    res["top1"] = {str(k): float(single.set_index("K").loc[str(k), "top1"]) for k in ks}
    res["_correct"] = {str(k): correctness(per_video, method, k) for k in ks}
    return res


def get_trains(method: str) -> bool:
    from condi.methods import get_method

    return get_method(method).trains_confidence


def correctness(per_video, method: str, k) -> np.ndarray:
    """Each test video's correctness (0/1, video_id order) of ``method`` at K = ``k``."""
    sel = per_video[
        (per_video["method"] == method) & (per_video["K"] == str(k)) & per_video["Ks"].isna()
    ]
    return sel.sort_values("video_id")["correct"].to_numpy(dtype=np.float64)


# -- output ----------------------------------------------------------------------------------


def fmt(x: float, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def series(values: list[float], spec: str = ".2f") -> str:
    return " ".join(fmt(v, spec) for v in values) if values else "-"


def report(results: list[dict], references: dict, baseline: str, ks, boot) -> list[str]:
    from condi.tables.table3 import paired_bootstrap

    base = next(r for r in results if r["variant"] == baseline)
    w = max(len(r["variant"]) for r in results) + 2
    lines = [
        "Classifier and confidence head (test: the test clips; train: the training clips, "
        "center crop, final weights)",
        f"{'variant':<{w}}{'method':<10}{'H/logC test':>12}{'train':>7}{'z~|z=1':>8}"
        f"{'z~|z=0':>8}{'AUC(z)':>8}{'AUC wv':>8}{'AUC':>7}{'opp z=0':>9}{'opp z=1':>9}"
        f"{'own dense':>10}",
    ]
    for r in results:
        lines.append(
            f"{r['variant']:<{w}}{r['method']:<10}{fmt(r['test_entropy']):>12}"
            f"{fmt(r['train_entropy']):>7}{fmt(r['ztilde_z1']):>8}{fmt(r['ztilde_z0']):>8}"
            f"{fmt(r['train_auroc_z']):>8}{fmt(r['test_auroc_within_video']):>8}"
            f"{fmt(r['test_auroc']):>7}{fmt(r['opposed_z0']):>9}{fmt(r['opposed_z1']):>9}"
            f"{fmt(r['student_dense_top1'], '.1f'):>10}"
        )
    lines.append(
        "(AUC(z): the ranking score's AUROC for Eq. 1's z on the training clips; AUC wv / AUC: "
        "within-video / pooled AUROC for 'teacher correct' on the test clips; own dense: the "
        "student's own dense top-1, %)"
    )
    lines += ["", "Per epoch, on the training batches (augmented, as trained)"]
    for r in results:
        e = r["epochs"]
        lines.append(f"{r['variant']:<{w}}H/logC  {series([x['entropy'] for x in e])}")
        if r["method"] == "condi_sr":
            lines.append(f"{'':<{w}}opp z=0 {series([x['opposed_z0'] for x in e])}")
            lines.append(f"{'':<{w}}opp z=1 {series([x['opposed_z1'] for x in e])}")
        if not math.isnan(r["ztilde_z1"]):
            lines.append(
                f"{'':<{w}}z~ z=1/0 "
                + " ".join(f"{fmt(x['ztilde_z1'], '.2f')}/{fmt(x['ztilde_z0'], '.2f')}" for x in e)
            )
    n_videos = len(next(iter(base["_correct"].values())))
    lines += [
        "",
        f"Top-1 video accuracy (%) on {n_videos} test videos, the teacher on the K clips each "
        f"variant ranks first; minus {baseline} [{boot.level:.0%} paired bootstrap, "
        f"{boot.resamples} resamples]",
        f"{'variant':<{w}}"
        + "".join(f"{'K=' + str(k):>8}" for k in ks)
        + "".join(f"{'diff K=' + str(k):>22}" for k in ks),
    ]
    for r in results:
        cells = "".join(f"{r['top1'][str(k)]:>8.2f}" for k in ks)
        diffs = ""
        r["diff_vs_baseline"] = {}
        for k in ks:
            if r is base:
                diffs += f"{'':>22}"
                continue
            d, lo, hi = paired_bootstrap(
                r["_correct"][str(k)],
                base["_correct"][str(k)],
                boot,
                boot.rng("diagnose", r["variant"], k),
            )
            r["diff_vs_baseline"][str(k)] = {"diff": d, "lo": lo, "hi": hi}
            diffs += f"{f'{d:+.1f} [{lo:+.1f}, {hi:+.1f}]':>22}"
        lines.append(f"{r['variant']:<{w}}{cells}{diffs}")
    refs = ", ".join(
        f"{m} " + "/".join(f"{references[m][str(k)]:.2f}" for k in ks)
        for m in ("random", "equidistant", "oracle")
    )
    lines.append(
        f"references at K={'/'.join(map(str, ks))}: {refs}; dense {references['dense']:.2f}"
    )
    return lines


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    variants = load_variants(args.variants_file)
    if args.list:
        for n, s in variants.items():
            extra = f" params {s['params']}" if s.get("params") else ""
            init = f" init {s['init']}" if s.get("init") else ""
            opt = " (optional)" if s.get("optional") else ""
            print(f"{n}: {s['method']}{extra}{init}{opt} - {s.get('note', '')}")
        return 0
    order, asked = selection(variants, args.variants)
    baseline = args.baseline or asked[0]
    if baseline not in order:
        raise SystemExit(f"--baseline {baseline!r} is not among the variants run: {order}")

    from condi.config import ConfigError, load_params
    from condi.data.indexed import load_data
    from condi.evaluation.run import evaluate_grid, load_manifest
    from condi.tables.table3 import Bootstrap
    from condi.training.loop import params_hash
    from condi.training.pseudo_labels import load_pseudo_labels

    project = args.project.resolve()
    try:
        params = load_params(args.params or project / "params.yaml")
    except ConfigError as exc:
        raise SystemExit(f"{exc} (--project names a pipeline run's folder)") from None
    d = args.dataset or next(iter(params["datasets"]))
    f = args.fold or params["datasets"][d]["folds"][0]
    t = args.teacher or next(iter(params["teachers"]))
    st = args.student or next(iter(params["students"]))
    paths = inputs(project, d, f, t)
    epochs = QUICK_EPOCHS if args.quick and args.epochs is None else args.epochs
    if epochs is not None:
        params["training"]["student"]["epochs"] = epochs
    if args.threads is not None:
        params["threads"] = args.threads
    work = args.work or project / "models" / d / f"fold{f}" / "diagnose"
    work.mkdir(parents=True, exist_ok=True)

    # every variant's params checked before any work
    checked = {name: variant_params(params, variants[name], name) for name in order}

    t_start = time.perf_counter()
    data = load_data(paths["index"], paths["cache"])
    pl_labels = load_pseudo_labels(paths["labels"])
    root = Path(params["datasets"][d]["root"])
    manifest = load_manifest(root if root.is_absolute() else project / root)
    teacher_scores = teacher_test_scores(project, params, paths, data, d, f, t)
    inputs_key = [file_sha(paths["labels"]), file_sha(paths["index"]), len(data.index)]

    train_rows = data.rows("train")
    z_train = pl_labels["z"][np.isin(pl_labels["rows"], train_rows)]
    print(
        f"project {project}: {d} fold {f}, teacher {t}, student {st}; {len(train_rows)} "
        f"training clips (z=1 share {z_train.mean():.3f}), {len(data.rows('test'))} test clips; "
        f"student epochs {params['training']['student']['epochs']}, {params['threads']} "
        f"thread(s), load average {os.getloadavg()[0]:.2f} at start"
    )

    resolved: dict[str, tuple[dict, Path, str]] = {}
    trained_by_key: dict[str, str] = {}
    results = []
    for name in order:
        spec = variants[name]
        p = checked[name]
        init = spec.get("init")
        if init:
            p["students"][st]["pretrained"] = str(resolved[init][1])
        key = params_hash(p, spec["method"], st, resolved[init][2] if init else None, *inputs_key)
        if key in trained_by_key:
            same = trained_by_key[key]
            resolved[name] = (p, resolved[same][1], key)
            print(f"{name}: the same training as {same}, not repeated")
        else:
            ckpt = work / f"{name}.pt"
            secs, reused = train_variant(
                name, spec, p, st, data, pl_labels, ckpt, key, args.retrain
            )
            trained_by_key[key] = name
            resolved[name] = (p, ckpt, key)
            how = f"reused {ckpt}" if reused else f"trained in {secs:.0f} s"
            print(f"{name}: {how} (load average {os.getloadavg()[0]:.2f})")
        results.append(
            measure(
                name,
                spec,
                p,
                resolved[name][1],
                data,
                pl_labels,
                teacher_scores,
                manifest,
                args.ks,
            )
        )

    ev = copy.deepcopy(params)
    ev["evaluation"]["K"] = list(args.ks)
    base_grid, _ = evaluate_grid(ev, data.index, teacher_scores, None, manifest)
    references = {
        m: dict(zip(g["K"].astype(str), g["top1"].astype(float), strict=True))
        for m, g in base_grid.groupby("method")
    }
    references["dense"] = references["dense"]["dense"]
    boot = Bootstrap.from_params(params)
    print()
    print("\n".join(report(results, references, baseline, args.ks, boot)))
    wall = time.perf_counter() - t_start
    print(f"\nwall time {wall:.0f} s, load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
        args.json.write_text(
            json.dumps({"variants": clean, "references": references, "wall_s": wall}, indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
