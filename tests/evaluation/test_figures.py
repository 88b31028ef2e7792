"""Figures: files written (PNG and SVG), one per (dataset, teacher, student), and what they plot:
the lines' data are read back from the figure objects and compared with values worked out from
the input tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from condi.evaluation import figures
from tests.conftest import REPO


@pytest.fixture
def drawn(monkeypatch):
    """The figures passed to ``figures.save`` (still written to disk), in order."""
    figs = []
    real = figures.save

    def save(fig, out_dir, stem):
        figs.append(fig)
        return real(fig, out_dir, stem)

    monkeypatch.setattr(figures, "save", save)
    return figs


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def _table3() -> pd.DataFrame:
    rows = []
    for fold in (1, 2):
        for k in ("1", "3", "5"):
            # fold 2 is 2 points better than fold 1: the figure shows their mean (+1)
            off = 2 * (fold - 1)
            for m, base in [("random", 60), ("equidistant", 62), ("oracle", 90)]:
                rows.append(("syn", fold, "tch", "-", m, k, None, base + int(k) + off, 1.5 + off))
            for m, base in [("condi_sr", 70), ("st_ent", 65)]:
                rows.append(("syn", fold, "tch", "stu", m, k, None, base + int(k) + off, None))
            rows.append(("syn", fold, "tch", "stu", "condi_sr_split", "5", 1, 71, None))
        rows.append(("syn", fold, "tch", "-", "dense", "dense", None, 66 + 2 * (fold - 1), None))
    cols = ["dataset", "fold", "teacher", "student", "method", "K", "Ks", "top1", "top1_std"]
    df = pd.DataFrame(rows, columns=cols)
    df["Ks"] = df["Ks"].astype("Int64")
    return df


def _nonempty(paths, n):
    assert len(paths) == n
    for p in paths:
        assert p.stat().st_size > 1000, p
    assert {p.suffix for p in paths} == {".png", ".svg"}


def test_accuracy_vs_k(tmp_path, drawn):
    paths = figures.accuracy_vs_k(_table3(), tmp_path)
    _nonempty(paths, 2)
    assert paths[0].name == "accuracy_vs_k_syn_tch_stu.png"
    assert "<svg" in paths[1].read_text()[:500]
    (fig,) = drawn
    (ax,) = fig.axes
    lines = lines_by_label(ax)
    ks = [1, 3, 5]
    # drawn side by side around each K, in legend order: offsets 0.6 (0.3 of the K gap of 2)
    # shared out over the five methods, centred on K
    order = ["Oracle", "Random (mean, ±1 std)", "Equidistant", "ST-Ent", "ConDi-SR"]
    offsets = dict(zip(order, [-0.3, -0.15, 0.0, 0.15, 0.3], strict=True))
    for label, base in [
        ("ConDi-SR", 70),
        ("ST-Ent", 65),
        ("Equidistant", 62),
        ("Oracle", 90),
        ("Random (mean, ±1 std)", 60),
    ]:
        xs = [k + offsets[label] for k in ks]
        assert list(lines[label].get_xdata()) == pytest.approx(xs), label
        assert list(lines[label].get_ydata()) == [base + k + 1 for k in ks], label
        assert lines[label].get_marker() not in ("", "None", None), label  # every point shown
    assert "ConDi-SR split" not in lines  # the Ks rows are not a K curve
    dense = lines["Dense (67.0)"]
    assert list(dense.get_ydata()) == [67, 67]
    # the random band: mean +- the folds' mean std (1.5 and 3.5 -> 2.5)
    (band,) = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(61 + 1 - 2.5) and ys.max() == pytest.approx(65 + 1 + 2.5)
    assert ax.get_title() == "syn: accuracy vs K (tch + stu; folds averaged)"
    # the legend lies outside the axes: it hides no point
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1


def test_equal_methods_stay_visible_and_one_fold_is_not_averaged(tmp_path, drawn):
    df = _table3()
    df = df[df["fold"] == 1].copy()
    df.loc[df["method"].isin(["condi_sr", "st_ent", "oracle"]), "top1"] = 80.0  # a three-way tie
    figures.accuracy_vs_k(df, tmp_path)
    (fig,) = drawn
    (ax,) = fig.axes
    fig.canvas.draw()
    points = set()
    for line in ax.get_lines():
        if line.get_label().startswith("Dense"):
            continue
        xy = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
        points |= {(round(x), round(y)) for x, y in xy}
    assert len(points) == 5 * 3  # five methods at three K: no point on top of another
    assert ax.get_title() == "syn: accuracy vs K (tch + stu)"


def test_accuracy_vs_cost(tmp_path, drawn):
    rows = [("dense", "All", None, 66.0, 10.0, 1.0)]
    rows += [("condi_sr", str(k), None, 70.0 + k, 2.0 + k, 0.2 + 0.1 * k) for k in (1, 3, 5)]
    rows += [("equidistant", str(k), None, 60.0 + k, 1.0 * k, 0.1 * k) for k in (1, 3, 5)]
    rows += [("condi_sr_split", "5", ks, 75.0 - ks, 7 - ks, 0.7 - 0.1 * ks) for ks in (0, 1, 3)]
    df = pd.DataFrame(rows, columns=["method", "K", "Ks", "top1", "gmacs_per_video", "time_s"])
    df["Ks"] = df["Ks"].astype("Int64")
    df["dataset"], df["fold"], df["teacher"], df["student"] = "syn", 1, "tch", "stu"
    df["device"], df["threads"] = "cpu", 2
    _nonempty(figures.accuracy_vs_cost(df, tmp_path), 2)
    (fig,) = drawn
    gmacs, seconds = fig.axes[:2]
    for ax, x in ((gmacs, "gmacs_per_video"), (seconds, "time_s")):
        lines = lines_by_label(ax)
        for label, method in [("ConDi-SR", "condi_sr"), ("Equidistant", "equidistant")]:
            want = df[df["method"] == method].sort_values("K")
            assert list(lines[label].get_xdata()) == pytest.approx(want[x].tolist())
            assert list(lines[label].get_ydata()) == pytest.approx(want["top1"].tolist())
        split = df[df["method"] == "condi_sr_split"].sort_values("Ks", ascending=False)
        assert list(lines["ConDi-SR split"].get_xdata()) == pytest.approx(split[x].tolist())
        assert list(lines["Dense (all clips)"].get_ydata()) == [66.0]
    tags = [t.get_text() for t in gmacs.texts]
    assert tags == ["K=1", "K=3", "K=5", "K=1", "K=3", "K=5", "Ks=3", "Ks=1", "Ks=0"]
    assert "cpu, 2 thread(s)" in fig._suptitle.get_text()


def test_ztilde_timeline(tmp_path, drawn):
    n_short, n_long = 3, 9
    index = pd.DataFrame(
        {
            "video": ["a/v_short.avi"] * n_short + ["a/v_long.avi"] * n_long,
            "label": [0] * n_short + [1] * n_long,
            "label_name": ["A"] * n_short + ["B"] * n_long,
            "clip_index": list(range(n_short)) + list(range(n_long)),
        }
    )
    n = len(index)
    rng = np.random.default_rng(0)
    teacher = {"rows": np.arange(n), "logits": rng.normal(size=(n, 3)).astype(np.float32)}
    student = {
        "rows": np.arange(n),
        "logits": rng.normal(size=(n, 3)),
        "confidence_logit": rng.normal(size=n),
    }
    kinds = ["clean", "distractor", "clean", "static", "blur", "clean", "clean", "occlusion"]
    manifest = pd.DataFrame(
        {
            "video": ["a/v_long.avi"] * len(kinds),
            "clip_index": range(len(kinds)),
            "ambiguous": [k != "clean" for k in kinds],
            "kind": kinds,
        }
    )
    paths = figures.ztilde_timeline(index, teacher, student, tmp_path, manifest=manifest)
    _nonempty(paths, 2)
    assert paths[0].name == "ztilde_timeline_v_long.png"  # the longest by default
    (ax,) = drawn[0].axes
    lines = lines_by_label(ax)
    long = slice(n_short, n)
    z = 1 / (1 + np.exp(-student["confidence_logit"][long]))
    assert list(lines["student z~"].get_ydata()) == pytest.approx(z.tolist())
    t = np.exp(teacher["logits"][long].astype(np.float64))
    p_true = t[:, 1] / t.sum(1)  # the long video's label is 1
    assert list(lines["teacher p(true class)"].get_ydata()) == pytest.approx(p_true.tolist())
    # the ranks 1..5 sit on the 5 clips of highest z~, in that order
    ranks = {int(a.get_text()): a.xy[0] for a in ax.texts}
    assert [ranks[r] for r in range(1, 6)] == np.argsort(-z, kind="stable")[:5].tolist()
    # one shaded span per ambiguous clip of the manifest (clips 1, 3, 4, 7)
    spans = sorted(int(round(p.get_x() + 0.5)) for p in ax.patches if p.get_width() == 1.0)
    assert spans == [1, 3, 4, 7]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"ambiguous: distractor", "ambiguous: static", "ambiguous: blur"} <= set(legend)
    assert "ambiguous: occlusion" in legend
    paths = figures.ztilde_timeline(index, teacher, student, tmp_path, video="v_short")
    assert paths[0].name == "ztilde_timeline_v_short.png"
    with pytest.raises(ValueError, match="not a test video"):
        figures.ztilde_timeline(index, teacher, student, tmp_path, video="nope")
    with pytest.raises(ValueError, match="confidence head"):
        figures.ztilde_timeline(index, teacher, {"logits": student["logits"]}, tmp_path)


def test_cli_figures_needs_an_input(tmp_path):
    from condi.cli import main

    base = ["report", "figures", "--params", str(REPO / "params.yaml"), "--out-dir"]
    assert main([*base, str(tmp_path)]) == 2
    t3 = tmp_path / "table3.csv"
    _table3().to_csv(t3, index=False)
    assert main([*base, str(tmp_path / "f"), "--table3", str(t3)]) == 0
    assert (tmp_path / "f" / "accuracy_vs_k_syn_tch_stu.svg").stat().st_size > 1000
