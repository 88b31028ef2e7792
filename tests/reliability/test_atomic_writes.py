"""Issue 8.3: every output is written atomically (a temporary file beside it, then a rename), so
a crash mid-write never leaves a truncated CSV, index, scores file or checkpoint for a later
stage; and a truncated checkpoint given to ``condi`` is a clear error (exit 2, the file named),
not a traceback."""

from __future__ import annotations

import shutil
import stat
from io import BytesIO

import numpy as np
import pandas as pd
import pytest
import torch

from condi import io
from condi.training.loop import state_path_for
from tests.conftest import tiny_params
from tests.reliability.conftest import (
    CACHE,
    INDEX,
    STUDENT_OUT,
    TEACHER_OUT,
    condi,
)


class Crash(Exception):
    pass


def crashing(real_write, after_bytes: int = 64):
    """A writer that writes ``after_bytes`` of the real output to its target, then raises, as
    a crash mid-write (disk full, killed) would leave it."""

    def write(obj, target, *args, **kwargs):
        buf = BytesIO()
        real_write(obj, buf, *args, **kwargs)
        with open(target, "wb") as f:
            f.write(buf.getvalue()[:after_bytes])
        raise Crash(f"crashed after {after_bytes} bytes")

    return write


def only_the_target_remains(path):
    """Nothing but ``path`` in its folder: no partial file, no temporary."""
    return sorted(p.name for p in path.parent.iterdir()) == [path.name]


def old_frame():
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


def new_frame():
    return pd.DataFrame({"a": np.arange(1000), "b": ["new"] * 1000})


def test_csv_crash_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "eval.csv"
    io.write_csv(old_frame(), path)
    before = path.read_bytes()
    real = pd.DataFrame.to_csv

    def to_csv(self, target, *args, **kwargs):
        with open(target, "w") as f:
            f.write(real(self, None, *args, **kwargs)[:50])
        raise Crash

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
    with pytest.raises(Crash):
        io.write_csv(new_frame(), path)
    assert path.read_bytes() == before
    assert only_the_target_remains(path)


def test_parquet_and_json_crash_keep_the_old_file(tmp_path, monkeypatch):
    pq_path, js_path = tmp_path / "t.parquet", tmp_path / "t.json"
    io.write_parquet(old_frame(), pq_path)
    io.write_json(js_path, {"a": 1})
    pq_before, js_before = pq_path.read_bytes(), js_path.read_bytes()

    def to_parquet(self, target, *args, **kwargs):
        with open(target, "wb") as f:
            f.write(b"PAR1 partial")
        raise Crash

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    with pytest.raises(Crash):
        io.write_parquet(new_frame(), pq_path)
    assert pq_path.read_bytes() == pq_before and pd.read_parquet(pq_path).equals(old_frame())

    def write_text(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[:3])
        raise Crash

    monkeypatch.setattr(type(js_path), "write_text", write_text)
    with pytest.raises(Crash):
        io.write_json(js_path, {"b": list(range(100))})
    monkeypatch.undo()
    assert js_path.read_bytes() == js_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.parquet"]


def test_checkpoint_crash_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "teacher.pt"
    old = {"model": {"w": torch.arange(4.0)}, "arch": "x"}
    io.save_torch(old, path)
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", crashing(torch.save, after_bytes=100))
    with pytest.raises(Crash):
        io.save_torch({"model": {"w": torch.zeros(10_000)}, "arch": "x"}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert torch.equal(io.load_torch(path)["model"]["w"], old["model"]["w"])
    assert only_the_target_remains(path)


def test_outputs_get_the_usual_permissions(tmp_path):
    """mkstemp creates 0600 files: an atomic write must still give 0666 minus the umask, as
    open() would (a shared results/ folder, a DVC cache, another user reading the models)."""
    io.write_csv(old_frame(), tmp_path / "a.csv")
    io.save_torch({"x": 1}, tmp_path / "a.pt")
    (tmp_path / "plain").write_text("x")
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    for name in ("a.csv", "a.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_index_crash_keeps_the_old_index(tiny_data, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from condi.data.index import SKIPPED_NAME, read_index, write_index

    _, src, _ = tiny_data
    df, meta = read_index(src)
    path = tmp_path / "index.parquet"
    write_index(df, path, meta, skipped=pd.DataFrame())
    before = path.read_bytes()
    real = pq.write_table

    def write_table(table, where, *args, **kwargs):
        real(table.slice(0, 3), where, *args, **kwargs)
        with open(where, "r+b") as f:
            f.truncate(100)
        raise Crash

    monkeypatch.setattr(pq, "write_table", write_table)
    with pytest.raises(Crash):
        write_index(df.iloc[:10], path, meta)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert read_index(path)[0].equals(df)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, SKIPPED_NAME])


def test_scores_crash_keeps_the_old_scores(tmp_path, monkeypatch):
    from condi.evaluation.run import load_scores, save_scores

    path = tmp_path / "scores.npz"
    old = {"rows": np.arange(3), "logits": np.ones((3, 4))}
    save_scores(path, old)
    before = path.read_bytes()
    real = np.savez

    def savez(f, **arrays):
        real(buf := BytesIO(), **arrays)
        f.write(buf.getvalue()[:200])
        raise Crash

    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(Crash):
        save_scores(path, {"rows": np.arange(30), "logits": np.zeros((30, 4))})
    monkeypatch.undo()
    assert path.read_bytes() == before and np.array_equal(
        load_scores(path)["logits"], old["logits"]
    )
    assert only_the_target_remains(path)


def test_clip_cache_crash_leaves_no_cache(tiny_data, tmp_path, monkeypatch):
    from condi.data import clips
    from condi.data.index import read_index

    root, index, _ = tiny_data
    df, _ = read_index(index)
    real = clips._decoded

    def decoded(*args, **kwargs):
        for i, item in enumerate(real(*args, **kwargs)):
            if i == 2:
                raise Crash
            yield item

    monkeypatch.setattr(clips, "_decoded", decoded)
    out = tmp_path / "cache" / "clips.npy"
    with pytest.raises(Crash):
        clips.build_clip_cache(df, root, out, 16, 36, workers=1, progress=False)
    assert not out.exists() and not any(out.parent.iterdir())


def test_training_crash_while_saving_its_state_keeps_the_last_epoch(
    tiny_data, tmp_path, monkeypatch
):
    """A crash while epoch 2's state is written leaves epoch 1's state whole; the re-run
    resumes from it, and removes the temporaries a SIGKILL mid-save would have left."""
    from condi.data.indexed import load_data
    from condi.training.teacher import train_teacher

    _, index, cache = tiny_data
    data = load_data(index, cache)
    params = tiny_params(**{"training.teacher.epochs": 2})
    out = tmp_path / "teacher.pt"
    state = state_path_for(out)
    real, calls = torch.save, []

    def save(obj, target, *args, **kwargs):
        calls.append(target)
        if len(calls) == 2:  # epoch 2's state
            return crashing(real, after_bytes=1000)(obj, target, *args, **kwargs)
        return real(obj, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(Crash):
        train_teacher(params, "resnext14", data, out)
    monkeypatch.undo()
    assert not out.exists()
    assert io.load_torch(state)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [state.name]
    # what a SIGKILL during torch.save leaves behind
    leftovers = [
        tmp_path / f".{state.name}.k1ll3d.pt.tmp",
        tmp_path / f".{out.name}.k1ll3d.pt.tmp",
    ]
    for p in leftovers:
        p.write_bytes(b"partial")
    summary = train_teacher(params, "resnext14", data, out)
    assert summary["resumed_from"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_truncated_training_state_is_not_resumed(tiny_data, tmp_path, caplog):
    """A state file damaged outside condi is reported and training starts over."""
    from condi.data.indexed import load_data
    from condi.training.teacher import train_teacher

    _, index, cache = tiny_data
    out = tmp_path / "teacher.pt"
    state_path_for(out).write_bytes(b"PK\x03\x04 truncated")
    with caplog.at_level("WARNING", logger="condi.training.loop"):
        summary = train_teacher(
            tiny_params(**{"training.teacher.epochs": 1}),
            "resnext14",
            load_data(index, cache),
            out,
        )
    assert summary["resumed_from"] == 0 and out.exists()
    assert any(
        str(state_path_for(out)) in r.message and "starting from scratch" in r.message
        for r in caplog.records
    )


# -- truncated inputs given to condi: exit 2, the file named, no traceback --------------------


def truncated_copy(src, dest, keep: float = 0.5):
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def assert_clear_error(out, path):
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert str(path) in out.stderr, out.stderr[-3000:]


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_evaluate_scores_with_a_truncated_checkpoint(reference_run, tmp_path, keep):
    ckpt = truncated_copy(reference_run / TEACHER_OUT, tmp_path / "truncated.pt", keep)
    out = condi(
        "evaluate",
        "scores",
        "--params",
        reference_run / "params.yaml",
        "--stage",
        "teacher_scores",
        "--dataset",
        "synthetic",
        "--teacher",
        "resnext14",
        "--index",
        reference_run / INDEX,
        "--cache",
        reference_run / CACHE,
        "--checkpoint",
        ckpt,
        "--out",
        tmp_path / "scores.npz",
        cwd=tmp_path,
    )
    assert_clear_error(out, ckpt)
    assert not (tmp_path / "scores.npz").exists()
    assert not (tmp_path / "mlflow.db").exists()  # named before the job's run was opened


def test_predict_with_a_truncated_teacher(reference_run, tmp_path):
    from tests.reliability.conftest import DATA_ROOT, SHORT_VIDEO

    ckpt = truncated_copy(reference_run / TEACHER_OUT, tmp_path / "truncated.pt")
    out = condi(
        "predict",
        reference_run / DATA_ROOT / "UCF-101" / SHORT_VIDEO,
        "--teacher-ckpt",
        ckpt,
        "--student-ckpt",
        reference_run / STUDENT_OUT,
        "--params",
        reference_run / "params.yaml",
        cwd=tmp_path,
    )
    assert_clear_error(out, ckpt)


def test_truncated_cache_is_named(reference_run, tmp_path):
    """A clip cache cut short (a copy interrupted outside condi) is named in the error."""
    cache = tmp_path / "clips.npy"
    shutil.copy(reference_run / CACHE, cache)
    with open(cache, "r+b") as f:
        f.truncate(cache.stat().st_size // 2)
    out = condi(
        "evaluate",
        "scores",
        "--params",
        reference_run / "params.yaml",
        "--stage",
        "teacher_scores",
        "--dataset",
        "synthetic",
        "--teacher",
        "resnext14",
        "--index",
        reference_run / INDEX,
        "--cache",
        cache,
        "--checkpoint",
        reference_run / TEACHER_OUT,
        "--out",
        tmp_path / "scores.npz",
        cwd=tmp_path,
    )
    assert_clear_error(out, cache)


def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """Durability: without the file's fsync before the rename, a power cut can leave the new
    name pointing at an empty or partial file (the rename reaches the disk first)."""
    import os

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "out.txt"
    io.write_text(target, "payload")
    monkeypatch.undo()
    (rename,) = [e for e in events if e[0] == "replace"]
    tmp = rename[1]
    assert rename[2] == str(target) and tmp != str(target)
    assert events.index(("fsync", tmp)) < events.index(rename)  # the data first
    assert events[-1] == ("fsync", str(tmp_path))  # then the rename itself
    assert target.read_text() == "payload"


def test_the_temporary_file_is_hidden_beside_the_target(tmp_path):
    target = tmp_path / "new" / "sub" / "t.parquet"  # folders that do not exist yet
    with io.atomic_path(target) as tmp:
        assert tmp.parent == target.parent  # same file system: the rename is atomic
        assert tmp.name.startswith(".t.parquet.") and tmp.name.endswith(".parquet.tmp")
        tmp.write_bytes(b"x")
    with io.atomic_path(target, suffix=".npy") as tmp:
        assert tmp.name.endswith(".npy.tmp")
        tmp.write_bytes(b"y")
    assert target.read_bytes() == b"y" and sorted(p.name for p in target.parent.iterdir()) == [
        "t.parquet"
    ]
