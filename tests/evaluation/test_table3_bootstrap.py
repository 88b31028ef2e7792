"""Table III's paired bootstrap intervals over test videos, on hand-built per-video
correctness whose answers are computed here independently (docs/method.md, section 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from condi.tables import table3

BOOT = table3.Bootstrap(resamples=2000, level=0.95, seed=0)


# -- the paired bootstrap --------------------------------------------------------------------


def differ_on(k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two methods on n videos: a is right everywhere, b wrong on exactly k of them."""
    a = np.ones(n)
    b = np.ones(n)
    b[np.linspace(0, n - 1, k).astype(int)] = 0
    return a, b


def test_a_known_difference_its_interval_and_its_shrinking_with_n():
    widths = []
    for n in (20, 200, 2000):
        k = n // 4
        a, b = differ_on(k, n)
        diff, lo, hi = table3.paired_bootstrap(a, b, BOOT)
        assert diff == pytest.approx(100 * k / n)  # 25 percentage points
        assert lo <= diff <= hi
        # the bootstrap mean of the differences is Binomial(n, k/n) / n: its exact quantiles
        exact = binom.ppf([0.025, 0.975], n, k / n) / n * 100
        assert lo == pytest.approx(exact[0], abs=max(0.3, 100 / n))
        assert hi == pytest.approx(exact[1], abs=max(0.3, 100 / n))
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    # ~ 2 * 1.96 * sqrt(p (1 - p) / n) at n = 2000
    assert widths[2] == pytest.approx(2 * 1.96 * np.sqrt(0.25 * 0.75 / 2000) * 100, rel=0.1)


def test_determinism_under_the_seed():
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    assert table3.paired_bootstrap(a, b, BOOT) == table3.paired_bootstrap(a, b, BOOT)
    other = table3.Bootstrap(resamples=2000, level=0.95, seed=1)
    assert table3.paired_bootstrap(a, b, BOOT)[1:] != table3.paired_bootstrap(a, b, other)[1:]
    assert table3.paired_bootstrap(a, b, BOOT)[0] == table3.paired_bootstrap(a, b, other)[0]


def test_pairing_identical_methods_and_nearly_identical_ones():
    rng = np.random.default_rng(0)
    a = (rng.random(200) < 0.7).astype(float)
    assert table3.paired_bootstrap(a, a.copy(), BOOT) == (0.0, 0.0, 0.0)
    b = a.copy()
    b[np.flatnonzero(a)[0]] = 0  # one video of 200 differs: 0.5 points
    diff, lo, hi = table3.paired_bootstrap(a, b, BOOT)
    assert diff == pytest.approx(0.5) and lo == 0.0 and hi <= 1.5
    # unpaired (each method's videos resampled on their own), it would be about +-6 points
    ma = table3.bootstrap_means(a, 2000, np.random.default_rng(1))[:, 0]
    mb = table3.bootstrap_means(b, 2000, np.random.default_rng(2))[:, 0]
    ulo, uhi = table3.interval((ma - mb) * 100, 0.95)
    assert uhi - ulo > 8 * (hi - lo)


def test_bootstrap_means_resample_the_videos():
    x = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    reps = table3.bootstrap_means(x, 500, np.random.default_rng(0))
    assert reps.shape == (500, 2)
    assert np.all(reps[:, 1] == 1.0)
    assert set(np.round(reps[:, 0] * 4).astype(int)) <= set(range(13))  # sums of 4 draws
    assert reps[:, 0].mean() == pytest.approx(1.5, abs=0.1)


# -- Table III's columns and Markdown --------------------------------------------------------


def hand_built(fold: int = 1, n: int = 40, shift: int = 0):
    """A fold's long rows and per-video rows: dense, random (2 seeds), equidistant and condi_sr
    at K = 1, and the condi_sr_split at K = 1, Ks = 0 (the same videos as condi_sr)."""
    v = np.arange(n)
    correct = {
        ("dense", "-", "dense", None): (v % 10 != 0),  # 90%
        ("equidistant", "-", "1", None): (v % 2 == 0),  # 50%
        ("condi_sr", "s", "1", None): (v % 4 != (shift % 4)),  # 75%
        ("condi_sr_split", "s", "1", 0): (v % 4 != (shift % 4)),
    }
    seeds = {0: (v % 5 == 0), 1: (v % 5 <= 1)}  # random: 20% and 40% -> 30%
    pv, long = [], []
    for (m, s, k, ks), c in correct.items():
        pv.append(pd.DataFrame({"method": m, "student": s, "K": k, "Ks": ks, "random_seed": None,
                                "video_id": v, "correct": c.astype(np.int8)}))  # fmt: skip
        long.append({"method": m, "student": s, "K": k, "Ks": ks, "top1": c.mean() * 100})
    for seed, c in seeds.items():
        pv.append(pd.DataFrame({"method": "random", "student": "-", "K": "1", "Ks": None,
                                "random_seed": seed, "video_id": v,
                                "correct": c.astype(np.int8)}))  # fmt: skip
    long.append({"method": "random", "student": "-", "K": "1", "Ks": None, "top1": 30.0})
    pv = pd.concat(pv, ignore_index=True).assign(dataset="d", fold=fold, teacher="t")
    long = pd.DataFrame(long).assign(dataset="d", fold=fold, teacher="t", n_videos=n)
    pv["Ks"], long["Ks"] = pv["Ks"].astype("Int64"), long["Ks"].astype("Int64")
    pv["random_seed"] = pv["random_seed"].astype("Int64")
    return long.reindex(columns=table3.LONG_COLUMNS), pv


def test_table3_difference_columns():
    long, pv = hand_built()
    out, rivals = table3.add_differences(long, pv, BOOT)
    by = out.set_index(["method", "K"])
    cs = (np.arange(40) % 4 != 0).astype(float)
    # each row against condi_sr, by hand, with the same resamples the function draws
    for method, k, other in [
        ("equidistant", "1", (np.arange(40) % 2 == 0).astype(float)),
        ("random", "1", ((np.arange(40) % 5 == 0) * 1.0 + (np.arange(40) % 5 <= 1)) / 2),
    ]:
        row = by.loc[(method, k)]
        diff, lo, hi = table3.paired_bootstrap(other, cs, BOOT, BOOT.rng("d", 1))
        assert row["diff_vs_condi_sr"] == pytest.approx(diff)
        assert row["diff_vs_condi_sr"] == pytest.approx(row["top1"] - 75.0)
        assert (row["diff_vs_condi_sr_lo"], row["diff_vs_condi_sr_hi"]) == pytest.approx((lo, hi))
        assert row["diff_vs_dense"] == pytest.approx(row["top1"] - 90.0)
        assert row["diff_vs_dense_lo"] <= row["diff_vs_dense"] <= row["diff_vs_dense_hi"]
    assert by.loc[("random", "1"), "diff_vs_condi_sr"] == pytest.approx(-45.0)
    # a method against itself: zero, zero width; the split at Ks = 0 is condi_sr here
    zero = [0.0, 0.0, 0.0]
    assert list(by.loc[("condi_sr", "1"), table3.DIFF_COLUMNS[:3]]) == zero
    assert list(by.loc[("dense", "dense"), table3.DIFF_COLUMNS[3:]]) == zero
    assert list(by.loc[("condi_sr_split", "1"), table3.DIFF_COLUMNS[:3]]) == zero
    assert by.loc[("dense", "dense"), table3.DIFF_COLUMNS[:3]].isna().all()  # no condi_sr at dense
    # condi_sr minus each rival: the negated row difference, its interval mirrored
    r = rivals.set_index("rival")
    assert set(r.index) == {"dense", "equidistant", "random"}
    eq = by.loc[("equidistant", "1")]
    assert r.loc["equidistant", "diff"] == pytest.approx(25.0)
    assert r.loc["equidistant", "lo"] == pytest.approx(-eq["diff_vs_condi_sr_hi"])
    assert r.loc["equidistant", "hi"] == pytest.approx(-eq["diff_vs_condi_sr_lo"])
    assert r.loc["dense", "diff"] == pytest.approx(-15.0)
    assert (r["n_folds"] == 1).all() and (r["n_videos"] == 40).all()


def test_every_student_against_the_teacher_only_rows():
    long, pv = hand_built()
    long2 = long[long.student == "s"].assign(student="s2")
    pv2 = pv[pv.student == "s"].assign(student="s2")
    out, rivals = table3.add_differences(
        pd.concat([long, long2], ignore_index=True), pd.concat([pv, pv2], ignore_index=True), BOOT
    )
    # two students: a teacher-only row has no single condi_sr (NaN); the Markdown has both
    assert out.loc[out.method == "equidistant", "diff_vs_condi_sr"].isna().all()
    assert out.loc[out.method == "equidistant", "diff_vs_dense"].notna().all()
    assert set(rivals.loc[rivals.rival == "equidistant", "student"]) == {"s", "s2"}


def test_folds_are_averaged_with_their_intervals():
    a, pa = hand_built(fold=1)
    b, pb = hand_built(fold=2, shift=1, n=60)
    long = pd.concat([a, b], ignore_index=True)
    out, rivals = table3.add_differences(long, pd.concat([pa, pb], ignore_index=True), BOOT)
    per_fold = out[out.method == "equidistant"]["diff_vs_condi_sr"]
    eq = rivals.set_index("rival").loc["equidistant"]
    assert eq["n_folds"] == 2 and eq["n_videos"] == 100
    assert eq["diff"] == pytest.approx(-per_fold.mean())
    assert eq["lo"] < eq["diff"] < eq["hi"]
    # independent folds: the mean's spread is sqrt(s1^2 + s2^2) / 2 (near-normal here)
    rows = out[out.method == "equidistant"]
    w1, w2 = rows["diff_vs_condi_sr_hi"] - rows["diff_vs_condi_sr_lo"]
    assert eq["hi"] - eq["lo"] == pytest.approx(np.hypot(w1, w2) / 2, rel=0.15)


def test_stale_per_video_files_are_refused():
    long, pv = hand_built()
    long.loc[long.method == "equidistant", "top1"] = 55.0
    with pytest.raises(ValueError, match="equidistant K=1.*stale"):
        table3.add_differences(long, pv, BOOT)
    long, pv = hand_built()
    with pytest.raises(ValueError, match="different test videos"):
        table3.add_differences(long, pv[~((pv.method == "dense") & (pv.video_id == 3))], BOOT)


def test_markdown_and_csv(tmp_path):
    long, pv = hand_built()
    path = tmp_path / "videos.parquet"
    pv.to_parquet(path)
    out, rivals = table3.add_differences(long, table3.load_videos([path]), BOOT)
    table3.write(out, tmp_path / "t3.csv", tmp_path / "t3.md", {"d": ["1", "dense"]}, rivals, BOOT)
    md = (tmp_path / "t3.md").read_text()
    assert "| d K=1 " in md  # the paper-shaped table is kept
    assert "condi_sr minus each rival at each K" in md and "[95% CI]" in md
    assert "d: 40 test videos (fold 1)" in md and "2000 resamples" in md
    eq = rivals.set_index("rival").loc["equidistant"]
    cell = f"+25.00 [{eq['lo']:+.2f}, {eq['hi']:+.2f}]"
    assert any(line.startswith("| d ") and "| equidistant |" in line and cell in line
               for line in md.splitlines())  # fmt: skip
    csv = pd.read_csv(tmp_path / "t3.csv", dtype={"K": str})
    assert list(csv.columns[-6:]) == table3.DIFF_COLUMNS
    # the third table: each method minus dense, its cells from the CSV's diff_vs_dense columns
    assert "Each method minus dense averaging" in md
    below = md[md.index("Each method minus dense averaging") :].splitlines()
    row = csv[(csv["method"] == "equidistant") & (csv["K"] == "1")].iloc[0]
    cell = f"{row['diff_vs_dense']:+.2f} [{row['diff_vs_dense_lo']:+.2f}, {row['diff_vs_dense_hi']:+.2f}]"
    assert any("| equidistant |" in line and cell in line for line in below)
    assert not any("| dense " in line for line in below)  # dense minus itself is not a row


def markdown_of(long, tmp_path, columns=None):
    table3.write(long, tmp_path / "t3.csv", tmp_path / "t3.md", columns)
    return (tmp_path / "t3.md").read_text()


def cells(md, method):
    (line,) = [ln for ln in md.splitlines() if ln.startswith(f"| {method} ")]
    return [c.strip() for c in line.split("|")[3:-1]]


def test_random_shows_its_std_and_one_fold_is_not_called_averaged(tmp_path):
    long, _ = hand_built()
    long.loc[long.method == "random", "top1_std"] = 14.142
    long["n_dense"] = np.where(long["K"] == "1", 3, np.nan)
    md = markdown_of(long, tmp_path, {"d": ["1", "dense"]})
    assert cells(md, "random") == ["30.00 ± 14.14", ""]
    assert cells(md, "equidistant") == ["50.00", ""]  # no std: the mean alone
    assert "Folds averaged" not in md
    assert "mean ± std over its seeds" in md
    assert "Dense by definition (videos with N <= K clips" in md
    assert "d: 3 at K=1 of 40 test videos." in md


def test_several_folds_are_averaged_and_their_dense_videos_summed(tmp_path):
    a, _ = hand_built(fold=1)
    b, _ = hand_built(fold=2, n=60)
    a.loc[a.method == "random", "top1_std"] = 10.0
    b.loc[b.method == "random", "top1_std"] = 20.0
    b.loc[b.method == "random", "top1"] = 40.0
    a["n_dense"], b["n_dense"] = 3, 5
    md = markdown_of(pd.concat([a, b], ignore_index=True), tmp_path, {"d": ["1"]})
    assert "Folds averaged." in md
    assert cells(md, "random") == ["35.00 ± 15.00"]  # the folds' means of top-1 and std
    assert "d: 8 at K=1 of 100 test videos." in md


def test_no_dense_note_without_the_counts(tmp_path):
    long, _ = hand_built()  # evaluation CSVs written before n_dense existed
    assert "Dense by definition" not in markdown_of(long, tmp_path)
