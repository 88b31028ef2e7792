"""The ablation table (issue 9, docs/method.md, section 9): ``condi_sr`` under each switch beyond the paper
(``pseudo_labels.source`` train | crossfit, ``detach_confidence_in_target``) beside ``st_ent``,
``bce_conf``, ``maxprob`` and the teacher-only samplers, at small K, as mean and standard
deviation over student seeds, so differences are read against run-to-run noise; plus each
ranking score's AUROC for "teacher correct" on test clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from condi.io import write_csv, write_text

GROUP = ["dataset", "teacher", "student", "method", "pseudo_labels", "detach_confidence", "K"]
BASELINES = ("equidistant", "random", "dense", "oracle")


def assemble(
    student_csvs: list[str | Path], baseline_csvs: list[str | Path], ks: list[int]
) -> pd.DataFrame:
    """Mean/std over seeds (students) and the teacher-only rows, at the K of ``ks``."""
    frames = [pd.read_csv(p, dtype={"K": str}) for p in student_csvs]
    students = pd.concat(frames, ignore_index=True)
    for col in ("unambiguous_share", "auroc_teacher_correct", "top1_std"):
        if col not in students:
            students[col] = np.nan
    students = students[students["method"] != "condi_sr_split"]
    keep = {str(k) for k in ks}
    students = students[students["K"].isin(keep)]
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
    base = pd.concat([pd.read_csv(p, dtype={"K": str}) for p in baseline_csvs], ignore_index=True)
    base = base[base["method"].isin(BASELINES) & (base["K"].isin(keep) | (base["K"] == "dense"))]
    base = base.assign(
        student="-",
        pseudo_labels="-",
        detach_confidence="-",
        n_seeds=np.where(base["method"] == "random", base.get("n_seeds", 1), 1),
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
    out["variant"] = np.where(
        out["method"] == "condi_sr",
        "condi_sr["
        + out["pseudo_labels"].astype(str)
        + ", detach="
        + out["detach_confidence"].astype(str)
        + "]",
        out["method"],
    )
    order = {
        m: i
        for i, m in enumerate(
            [
                "oracle",
                "dense",
                "random",
                "equidistant",
                "maxprob",
                "bce_conf",
                "st_ent",
                "condi_sr",
            ]
        )
    }
    out["_o"] = out["method"].map(order).fillna(99)
    out["_k"] = pd.to_numeric(out["K"], errors="coerce").fillna(np.inf)
    return (
        out.sort_values(["dataset", "teacher", "_o", "variant", "_k"])
        .drop(columns=["_o", "_k"])
        .reset_index(drop=True)
    )


def paper_shape(long: pd.DataFrame) -> pd.DataFrame:
    """Rows: method / variant; columns: K with "mean ± std", and the AUROC."""
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


def write(long: pd.DataFrame, out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    write_csv(long, out_csv)
    table = paper_shape(long)
    title = (
        "Ablation: top-1 video accuracy (%), mean ± std over student seeds (random: over sampling "
        "seeds). condi_sr[pseudo-label source, detach z~ in Eq. 5's target]; `crossfit` and "
        '`detach=True` are beyond the paper. AUROC of each ranking score for "teacher correct" '
        "on test clips.\n\n"
    )
    write_text(
        out_md, title + table.reset_index().to_markdown(index=False, disable_numparse=True) + "\n"
    )
    return table
