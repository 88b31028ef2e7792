"""Figures (matplotlib, Agg backend; PNG and SVG) from the result files:

* :func:`accuracy_vs_k`: the paper's curves: top-1 video accuracy against K per method (from
  ``results/table3.csv``; folds averaged; ``random`` with a band of +-1 std over its seeds;
  dense as a horizontal line), one figure per (dataset, teacher, student). Methods are drawn
  side by side around each K (:func:`dodge`), so that methods with equal accuracy do not hide
  each other's points, and the legend sits outside the axes;
* :func:`accuracy_vs_cost`: accuracy against multiply-adds per video and against mean time per
  video (from the timing CSVs of ``condi report timing``), one figure per (dataset, teacher,
  student);
* :func:`ztilde_timeline`: the per-clip z~ of one test video (the longest by default) with the
  clips ConDi-SR sends to the teacher at K = 1..5 numbered, the teacher's probability of the
  true class, and the manifest's ambiguous clips shaded by kind (synthetic data).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from condi.evaluation.samplers import ranked  # noqa: E402
from condi.methods import METHOD_REGISTRY  # noqa: E402
from condi.metrics import softmax_np  # noqa: E402
from condi.scores import sigmoid  # noqa: E402

FORMATS = ("png", "svg")
# line styles in legend order; a student method's label is its registry label (condi.methods)
STYLE = {
    "oracle": dict(color="0.45", ls="--", marker="X", label="Oracle"),
    "random": dict(color="tab:gray", ls="-", marker="o", label="Random (mean, ±1 std)"),
    "equidistant": dict(color="tab:brown", ls="-", marker="s", label="Equidistant"),
    "bce_conf": dict(color="tab:orange", ls="-", marker="^"),
    "st_ent": dict(color="tab:green", ls="-", marker="v"),
    "st_conf": dict(color="tab:purple", ls="-", marker="D"),
    "maxprob": dict(color="tab:pink", ls="-", marker="P"),
    "condi_sr": dict(color="tab:red", ls="-", marker="o", lw=2.4),
    "condi_sr_split": dict(color="tab:blue", ls=":", marker="x", label="ConDi-SR split"),
    "dense": dict(color="black", ls="-.", marker="*", label="Dense (all clips)"),
}
_PLAIN = FuncFormatter(lambda v, _: f"{v:.3g}")
KIND_COLOURS = {
    "distractor": "#f4a582",
    "occlusion": "#92c5de",
    "blur": "#c2a5cf",
    "static": "#d9d9d9",
}


def _slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", "_".join(str(p) for p in parts)).strip("-")


def save(fig: plt.Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.svg`` into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        tmp = path.with_name(f".{path.stem}.tmp.{fmt}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format=fmt)
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def _style(method: str) -> dict:
    style = dict(STYLE.get(method, dict(ls="-", marker=".")))
    reg = METHOD_REGISTRY.get(method)
    style.setdefault("label", reg.label if reg else method)
    return style


def accuracy_vs_k(table3: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One figure per (dataset, teacher, student) of the long Table III (module docstring)."""
    df = table3.copy()
    df["K"] = df["K"].astype(str)
    df = df[df["Ks"].isna()] if "Ks" in df.columns else df
    df["student"] = df["student"].fillna("-")
    paths: list[Path] = []
    for (dataset, teacher), block in df.groupby(["dataset", "teacher"], sort=True):
        students = sorted(s for s in block["student"].unique() if s != "-") or ["-"]
        base = block[block["student"] == "-"]
        for student in students:
            rows = pd.concat([base, block[block["student"] == student]]) if student != "-" else base
            paths += _accuracy_vs_k_one(rows, dataset, teacher, student, out_dir)
    return paths


def dodge(methods: list[str], ks: list[int], spread: float = 0.3) -> dict[str, float]:
    """Each method's horizontal offset from K, centred on 0: ``spread`` of the smallest gap
    between two K values shared out evenly, so that methods with equal accuracy at a K are
    drawn side by side instead of on top of each other."""
    if len(methods) < 2:
        return dict.fromkeys(methods, 0.0)
    gaps = np.diff(sorted(set(ks)))
    width = spread * (float(gaps.min()) if len(gaps) else 1.0)
    step = width / (len(methods) - 1)
    return {m: (i - (len(methods) - 1) / 2) * step for i, m in enumerate(methods)}


def _accuracy_vs_k_one(rows, dataset, teacher, student, out_dir) -> list[Path]:
    dense = rows[rows["K"] == "dense"]["top1"].mean()
    numeric = rows[rows["K"] != "dense"].copy()
    numeric["k"] = numeric["K"].astype(int)
    mean = (
        numeric.groupby(["method", "k"])[["top1", "top1_std"]].mean().reset_index().sort_values("k")
    )
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    drawn = [m for m in STYLE if (mean["method"] == m).any()]
    offset = dodge(drawn, mean["k"].tolist())
    for method in drawn:
        m = mean[mean["method"] == method]
        st = _style(method)
        x = m["k"] + offset[method]
        ax.plot(x, m["top1"], markersize=5, clip_on=False, zorder=3, **st)
        if method == "random" and m["top1_std"].notna().any():
            sd = m["top1_std"].fillna(0)
            ax.fill_between(x, m["top1"] - sd, m["top1"] + sd, color=st["color"], alpha=0.2)
    if dense == dense:
        st = _style("dense")
        ax.axhline(dense, color=st["color"], ls=st["ls"], lw=1.2, label=f"Dense ({dense:.1f})")
    ks = sorted(mean["k"].unique())
    ax.set_xticks(ks)
    ax.set_xlabel("K (clips the teacher classifies)")
    ax.set_ylabel("top-1 video accuracy (%)")
    model = teacher if student == "-" else f"{teacher} + {student}"
    folds = rows["fold"].nunique() if "fold" in rows.columns else 1
    ax.set_title(f"{dataset}: accuracy vs K ({model}" + ("; folds averaged)" if folds > 1 else ")"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return save(fig, out_dir, _slug("accuracy_vs_k", dataset, teacher, student))


def accuracy_vs_cost(timing: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One two-panel figure (GMACs, seconds per video) per (dataset, teacher, student)."""
    df = timing.copy()
    df["K"] = df["K"].astype(str)
    paths: list[Path] = []
    for (dataset, teacher, student), block in df.groupby(["dataset", "teacher", "student"]):
        mean = (
            block.groupby(["method", "K", "Ks"], dropna=False)[
                ["top1", "gmacs_per_video", "time_s"]
            ]
            .mean()
            .reset_index()
        )
        fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.4), sharey=True)
        for ax, x, xlabel in [
            (axes[0], "gmacs_per_video", "multiply-adds per video (G, log scale)"),
            (axes[1], "time_s", "mean time per video (s, log scale)"),
        ]:
            for method in STYLE:
                m = mean[mean["method"] == method]
                if method == "condi_sr_split":
                    m = m.sort_values("Ks", ascending=False)
                    tags = [f"Ks={int(v)}" for v in m["Ks"]]
                else:
                    m = m[m["Ks"].isna()]
                    m = m.assign(_k=pd.to_numeric(m["K"], errors="coerce")).sort_values("_k")
                    tags = [f"K={k}" for k in m["K"]]
                if m.empty:
                    continue
                st = {"markersize": 6, **_style(method)}
                if method == "dense":
                    st.update(ls="none", markersize=13)
                ax.plot(m[x], m["top1"], clip_on=False, zorder=3, **st)
                if x == "gmacs_per_video" and method in (
                    "condi_sr",
                    "equidistant",
                    "condi_sr_split",
                ):
                    below = method == "condi_sr_split"
                    for xv, yv, tag in zip(m[x], m["top1"], tags, strict=True):
                        ax.annotate(
                            tag,
                            (xv, yv),
                            textcoords="offset points",
                            xytext=(4, -10 if below else 4),
                            fontsize=7,
                            color=st["color"],
                        )
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0, 7.0)))
            ax.xaxis.set_major_formatter(_PLAIN)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3, which="both")
        axes[0].set_ylabel("top-1 video accuracy (%)")
        setup = ""
        if "device" in block.columns:
            r = block.iloc[0]
            setup = f"; {r['device']}, {int(r['threads'])} thread(s)"
        fig.suptitle(
            f"{dataset}: accuracy vs cost per video ({teacher} + {student}; decoding excluded{setup})"
        )
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.tight_layout()
        paths += save(fig, out_dir, _slug("accuracy_vs_cost", dataset, teacher, student))
    return paths


def pick_video(test: pd.DataFrame, video: str | None = None) -> str:
    """``video`` if given (its path relative to the root, or its file name or stem), else the
    test video with the most clips (ties: the first by path)."""
    names = test["video"].astype(str)
    if video is None:
        counts = test.groupby("video", sort=True).size()
        return str(counts.idxmax())
    for cand in names.unique():
        p = Path(cand)
        if video in (cand, p.name, p.stem):
            return cand
    raise ValueError(f"{video}: not a test video of this index")


def ztilde_timeline(
    index: pd.DataFrame,
    teacher_scores: dict[str, np.ndarray],
    student_scores: dict[str, np.ndarray],
    out_dir: str | Path,
    manifest: pd.DataFrame | None = None,
    video: str | None = None,
    max_k: int = 5,
    title: str = "",
    stem: str | None = None,
) -> list[Path]:
    """The per-clip z~ of one test video (module docstring); files ``<stem>.png/.svg``,
    by default ``ztilde_timeline_<video stem>``."""
    if "confidence_logit" not in student_scores:
        raise ValueError("the timeline needs a student with a confidence head (condi_sr scores)")
    rows = teacher_scores["rows"]
    test = index.iloc[rows].reset_index(drop=True)
    name = pick_video(test, video)
    sel = np.flatnonzero(test["video"].to_numpy() == name)
    sel = sel[np.argsort(test["clip_index"].to_numpy()[sel], kind="stable")]
    label = int(test["label"].iloc[sel[0]])
    label_name = str(test["label_name"].iloc[sel[0]]) if "label_name" in test.columns else label
    z = sigmoid(student_scores["confidence_logit"][sel])
    t_probs = softmax_np(teacher_scores["logits"][sel].astype(np.float64))
    p_true = t_probs[:, label]
    t_correct = t_probs.argmax(1) == label
    n = len(sel)
    x = np.arange(n)
    order = ranked(z)[:max_k]

    fig, ax = plt.subplots(figsize=(max(7.0, min(0.42 * n + 3, 16.0)), 4.4))
    kinds = None
    if manifest is not None:
        m = manifest.set_index(["video", "clip_index"])["kind"]
        keys = pd.MultiIndex.from_arrays([[name] * n, test["clip_index"].to_numpy()[sel]])
        kinds = m.reindex(keys).fillna("clean").to_numpy().astype(str)
        seen = set()
        for i, kind in enumerate(kinds):
            if kind == "clean":
                continue
            ax.axvspan(
                i - 0.5,
                i + 0.5,
                color=KIND_COLOURS.get(kind, "#eeeeee"),
                alpha=0.7,
                lw=0,
                label=f"ambiguous: {kind}" if kind not in seen else None,
                zorder=0,
            )
            seen.add(kind)
    ax.plot(x, z, "-o", color="tab:red", lw=2, markersize=5, label="student z~", zorder=3)
    ax.plot(x, p_true, "--", color="tab:blue", lw=1.3, label="teacher p(true class)", zorder=2)
    ax.scatter(
        x[~t_correct],
        p_true[~t_correct],
        marker="x",
        color="tab:blue",
        s=40,
        label="teacher wrong on the clip",
        zorder=4,
    )
    for rank, i in enumerate(order, start=1):
        ax.scatter([i], [z[i]], s=260, facecolors="none", edgecolors="black", lw=1.5, zorder=5)
        ax.annotate(
            str(rank),
            (i, z[i]),
            textcoords="offset points",
            xytext=(0, 11),
            ha="center",
            fontsize=9,
            fontweight="bold",
            zorder=6,
        )
    ax.scatter(
        [], [], s=120, facecolors="none", edgecolors="black", label=f"chosen at K=1..{max_k} (rank)"
    )
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(-0.03, 1.15)
    ax.set_xticks(x if n <= 40 else x[:: max(1, n // 20)])
    ax.set_xlabel("clip index (16-frame clips in temporal order)")
    ax.set_ylabel("probability")
    ax.set_title(title or f"{Path(name).name} (class {label_name}, {n} clips)")
    ax.grid(alpha=0.25, axis="y")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return save(fig, out_dir, stem or _slug("ztilde_timeline", Path(name).stem))
