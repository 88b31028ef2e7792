"""The ablation table (docs/method.md, section 9.2): every student variant of the ablation
(``condi.pipeline.ablation_variants``: ``condi_sr`` under the switches ``protocol``,
``pseudo_labels.source``, ``detach_confidence_in_target`` and ``kd_reduction``, and the rival
methods under each protocol) beside the teacher-only samplers of its protocol, at small K.

Two readings of every cell:

* the mean and standard deviation of top-1 over student seeds (run-to-run noise), with each
  ranking score's AUROC for "teacher correct" on test clips;
* paired differences with 95% intervals over test videos (docs/method.md, section 5): each
  variant's per-video correctness, averaged over its seeds, minus that of ``st_ent`` (of the same
  protocol and KD reduction where it was trained, else of the same protocol), ``equidistant``
  and ``dense`` (the teacher of the same protocol), the test videos resampled with replacement
  and the same resamples for every comparison of a (dataset, fold) (:mod:`condi.tables.table3`);
  given the base switches (the params' own), also minus each cell of the same method one switch
  closer to the base: a one-switch cell minus the base is that switch's effect, and a two-switch
  cell such as ``[crossfit, detached]`` minus each of its two neighbours is the other switch's
  effect where the first is already on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from condi.io import write_csv, write_text
from condi.tables.table3 import Bootstrap, bootstrap_means, interval

SWITCH_COLUMNS = ["protocol", "pseudo_labels", "detach_confidence", "kd_reduction"]
VARIANT = ["method", *SWITCH_COLUMNS]
GROUP = ["dataset", "teacher", "student", *VARIANT, "K"]
BASELINES = ("equidistant", "random", "dense", "oracle")
REFERENCES = ("st_ent", "equidistant", "dense")
METHOD_ORDER = ["oracle", "dense", "random", "equidistant", "maxprob", "bce_conf", "st_ent"]


def variant_label(row: pd.Series) -> str:
    """``condi_sr [transfer, train, attached, class_mean]``; a teacher-only sampler
    ``dense [transfer]``."""
    if row["student"] == "-":
        return f"{row['method']} [{row['protocol']}]"
    detach = "detached" if str(row["detach_confidence"]).lower() == "true" else "attached"
    return (
        f"{row['method']} [{row['protocol']}, {row['pseudo_labels']}, {detach}, "
        f"{row['kd_reduction']}]"
    )


def _label(variant: tuple) -> str:
    """:func:`variant_label` of a student cell given as (method, *switch values)."""
    return variant_label(pd.Series({"student": "s", **dict(zip(VARIANT, variant, strict=True))}))


def _read(paths: list[str | Path]) -> pd.DataFrame:
    df = pd.concat([pd.read_csv(p, dtype={"K": str}) for p in paths], ignore_index=True)
    for col in (*SWITCH_COLUMNS, "unambiguous_share", "auroc_teacher_correct", "top1_std"):
        if col not in df:
            df[col] = np.nan
    df["detach_confidence"] = df["detach_confidence"].map(
        lambda v: v if pd.isna(v) else str(v).lower()
    )
    return df


def assemble(
    student_csvs: list[str | Path], baseline_csvs: list[str | Path], ks: list[int]
) -> pd.DataFrame:
    """Mean/std over seeds (students) and the teacher-only rows of each protocol, at the K of
    ``ks`` (and dense)."""
    keep = {str(k) for k in ks}
    students = _read(student_csvs)
    students = students[(students["method"] != "condi_sr_split") & students["K"].isin(keep)]
    agg = (
        students.groupby(GROUP, dropna=False, sort=False)
        .agg(
            top1=("top1", "mean"),
            top1_std=("top1", "std"),
            n_seeds=("seed", "nunique"),
            auroc_teacher_correct=("auroc_teacher_correct", "mean"),
            auroc_std=("auroc_teacher_correct", "std"),
            unambiguous_share=("unambiguous_share", "mean"),
        )
        .reset_index()
    )
    base = _read(baseline_csvs)
    base = base[base["method"].isin(BASELINES) & (base["K"].isin(keep) | (base["K"] == "dense"))]
    n_seeds = base.get("n_seeds", 1)
    base = base.assign(
        student="-",
        pseudo_labels="-",
        detach_confidence="-",
        kd_reduction="-",
        n_seeds=np.where(base["method"] == "random", n_seeds, 1),
    )
    base = base.drop_duplicates(subset=GROUP)
    cols = GROUP + [
        "top1",
        "top1_std",
        "n_seeds",
        "auroc_teacher_correct",
        "auroc_std",
        "unambiguous_share",
    ]
    out = pd.concat([agg, base.reindex(columns=cols)], ignore_index=True)[cols]
    out["variant"] = [variant_label(r) for _, r in out.iterrows()]
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    out["_o"] = out["method"].map(order).fillna(len(order))
    out["_k"] = pd.to_numeric(out["K"], errors="coerce").fillna(np.inf)
    return (
        out.sort_values(["dataset", "teacher", "protocol", "_o", "variant", "_k"], kind="stable")
        .drop(columns=["_o", "_k"])
        .reset_index(drop=True)
    )


def load_videos(paths: list[str | Path]) -> pd.DataFrame:
    """The per-video files of the ablation's evaluations (students and baselines)."""
    frames = [pd.read_parquet(p) for p in paths]
    pv = pd.concat(frames, ignore_index=True)
    pv["student"] = pv["student"].fillna("-")
    pv["K"] = pv["K"].astype(str)
    for col in SWITCH_COLUMNS:
        if col not in pv:
            pv[col] = None
    pv["detach_confidence"] = pv["detach_confidence"].map(
        lambda v: v if v is None or pd.isna(v) else str(v).lower()
    )
    single = pv["Ks"].isna() if "Ks" in pv else pd.Series(True, index=pv.index)
    pv = pv[single & (pv["method"] != "condi_sr_split")]
    teacher_only = pv["student"] == "-"
    pv.loc[teacher_only, ["pseudo_labels", "detach_confidence", "kd_reduction"]] = "-"
    return pv


def _reference(variant: tuple, reference: str, k: str, rows: dict[tuple, int]) -> int | None:
    """The row index of ``reference`` for ``variant`` (a key of :data:`VARIANT` values)."""
    method, protocol, _source, _detach, kd = variant
    if reference == "st_ent":
        if method == "st_ent":
            return None
        same_kd = [i for (m, p, _s, _d, r, kk), i in rows.items()
                   if m == "st_ent" and p == protocol and r == kd and kk == k]  # fmt: skip
        any_kd = [i for (m, p, _s, _d, _r, kk), i in rows.items()
                  if m == "st_ent" and p == protocol and kk == k]  # fmt: skip
        found = same_kd or any_kd
        return found[0] if found else None
    kk = "dense" if reference == "dense" else k
    return rows.get((reference, protocol, "-", "-", "-", kk))


def _closer_to_base(variant: tuple, k: str, rows: dict[tuple, int], base: tuple) -> list[tuple]:
    """The cells of ``variant``'s method, at ``k``, one switch away from it and one switch
    closer to ``base`` (switch values in :data:`SWITCH_COLUMNS` order)."""

    def apart(a: Sequence[str], b: Sequence[str]) -> int:
        return sum(x != y for x, y in zip(a, b, strict=True))

    method, *switches = variant
    return [
        (m, *other)
        for m, *other, kk in rows
        if m == method and kk == k and other[1] != "-"
        and apart(switches, other) == 1 and apart(other, base) == apart(switches, base) - 1
    ]  # fmt: skip


def differences(
    videos: pd.DataFrame, ks: list[int], boot: Bootstrap, base: dict[str, str] | None = None
) -> pd.DataFrame:
    """Each student variant minus each of :data:`REFERENCES` at each K of ``ks`` (module
    docstring): per video the correctness averaged over the variant's seeds (random's over its
    sampling seeds), a paired bootstrap over the videos of each (dataset, fold). With ``base``
    (``{switch column: value}``, ``detach_confidence`` as "true" | "false"), also minus each
    cell of the same method one switch closer to the base; its ``reference`` is that cell's
    label, e.g. ``condi_sr [transfer, train, attached, class_mean]``."""
    base_key = tuple(str(base[c]).lower() if c == "detach_confidence" else str(base[c])
                     for c in SWITCH_COLUMNS) if base else None  # fmt: skip
    keep = {str(k) for k in ks} | {"dense"}
    out = []
    for (dataset, fold, teacher), pv in videos.groupby(["dataset", "fold", "teacher"], sort=False):
        pv = pv[pv["K"].isin(keep)]
        key = [*VARIANT, "K"]
        per = (
            pv.assign(**{c: pv[c].astype(str) for c in SWITCH_COLUMNS})
            .groupby([*key, "video_id"], sort=False)["correct"]
            .mean()
            .unstack("video_id")
        )
        if per.isna().to_numpy().any():
            raise ValueError(f"{dataset} fold {fold}: the per-video files cover different videos")
        seeds = pv[pv["student"] != "-"].groupby(key, sort=False)["seed"].nunique()
        x = per.to_numpy(dtype=np.float64)
        rows = {tuple(str(v) for v in idx): i for i, idx in enumerate(per.index)}
        pairs, tags = [], []
        for idx, i in rows.items():
            *variant, k = idx
            if variant[2] == "-" or k == "dense":  # a teacher-only sampler, or dense itself
                continue
            for ref in REFERENCES:
                j = _reference(tuple(variant), ref, k, rows)
                if j is not None:
                    pairs.append((i, j))
                    tags.append((tuple(variant), k, ref))
            if base_key is None:
                continue
            for near in _closer_to_base(tuple(variant), k, rows, base_key):
                pairs.append((i, rows[(*near, k)]))
                tags.append((tuple(variant), k, _label(near)))
        if not pairs:
            continue
        a, b = (np.array(v) for v in zip(*pairs, strict=True))
        d = x[a] - x[b]
        reps = bootstrap_means(d, boot.resamples, boot.rng("ablation", dataset, fold)) * 100.0
        lo, hi = interval(reps, boot.level)
        for p, (variant, k, ref) in enumerate(tags):
            out.append(
                {"dataset": dataset, "fold": fold, "teacher": teacher,
                 **dict(zip(VARIANT, variant, strict=True)), "K": k, "reference": ref,
                 "diff": float(d[p].mean() * 100.0), "lo": float(lo[p]), "hi": float(hi[p]),
                 "n_videos": x.shape[1], "n_seeds": int(seeds.get((*variant, k), 1))}
            )  # fmt: skip
    return pd.DataFrame(out)


def paper_shape(long: pd.DataFrame) -> pd.DataFrame:
    """Rows: variant; columns: K with "mean ± std", and the AUROC."""
    df = long.copy()
    df["cell"] = [
        f"{m:.2f}" + (f" ± {s:.2f}" if s == s else "")
        for m, s in zip(df["top1"], df["top1_std"], strict=True)
    ]
    table = df.pivot_table(
        index=["dataset", "variant"], columns="K", values="cell", aggfunc="first", sort=False
    )
    ks = sorted((c for c in table.columns if c != "dense"), key=int) + (
        ["dense"] if "dense" in table.columns else []
    )
    table = table[ks]
    table.columns = [f"K={k}" if k != "dense" else "Dense" for k in ks]
    auroc = df.groupby(["dataset", "variant"], sort=False).agg(
        a=("auroc_teacher_correct", "first"), s=("auroc_std", "first")
    )
    table["AUROC (teacher correct)"] = [
        "" if a != a else f"{a:.3f}" + (f" ± {s:.3f}" if s == s else "")
        for a, s in zip(auroc["a"], auroc["s"], strict=True)
    ]
    return table.fillna("")


def differences_table(diffs: pd.DataFrame) -> pd.DataFrame:
    """Rows (variant, reference), columns K: ``diff [lo, hi]`` (percentage points)."""
    if diffs.empty:
        return pd.DataFrame()
    df = diffs.copy()
    df["student"] = "x"
    df["variant"] = [variant_label(r) for _, r in df.iterrows()]
    df["cell"] = [
        f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        for d, lo, hi in zip(df["diff"], df["lo"], df["hi"], strict=True)
    ]
    table = df.pivot_table(
        index=["dataset", "variant", "reference"], columns="K", values="cell", aggfunc="first",
        sort=False,
    )  # fmt: skip
    ks = sorted(table.columns, key=int)
    table = table[ks]
    table.columns = [f"K={k}" for k in ks]
    return table.fillna("")


def write(
    long: pd.DataFrame,
    out_csv: str | Path,
    out_md: str | Path,
    diffs: pd.DataFrame | None = None,
    boot: Bootstrap | None = None,
) -> pd.DataFrame:
    """The long CSV (the differences in ``<out_csv stem>_differences.csv``) and the Markdown."""
    write_csv(long, out_csv)
    table = paper_shape(long)
    title = (
        "Ablation: top-1 video accuracy (%), mean ± std over student seeds (random: over "
        "sampling seeds). Students: method [protocol, pseudo-label source, z~ in Eq. 5's target "
        "attached or detached, KD reduction]; teacher-only samplers: method [protocol]. "
        "`crossfit` and `detached` are beyond the paper. AUROC of each ranking score for "
        '"teacher correct" on test clips.\n\n'
    )
    text = title + table.reset_index().to_markdown(index=False, disable_numparse=True) + "\n"
    if diffs is not None and not diffs.empty:
        boot = boot or Bootstrap()
        write_csv(diffs, Path(out_csv).with_name(Path(out_csv).stem + "_differences.csv"))
        n = int(diffs["n_videos"].max())
        text += (
            f"\nEach variant minus a reference at each K, top-1 percentage points "
            f"[{boot.level * 100:g}% CI]: per test video the correctness averaged over the "
            f"variant's seeds, paired bootstrap over the {n} test videos ({boot.resamples} "
            f"resamples, seed {boot.seed}; percentile interval). References of the variant's "
            "protocol: `st_ent` (same KD reduction where trained), `equidistant`, `dense` "
            "(all clips), and each cell of the same method one switch closer to the base (the "
            "params' own switches): that switch's effect. Positive: the variant is better.\n\n"
            + differences_table(diffs).reset_index().to_markdown(index=False, disable_numparse=True)
            + "\n"
        )
    write_text(out_md, text)
    return table
