"""Resumable downloads, parallel restartable downloads and extraction, against a local server."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tarfile
import threading
import zipfile
import zlib

import pytest

from condi.data import download, kinetics
from condi.data.download import (
    DownloadCancelled,
    DownloadError,
    DownloadJob,
    ExtractionError,
    SizeMismatchError,
    download_file,
    download_many,
    extract_archive,
    extracted_marker,
    part_path,
)
from tests.data_sources.conftest import etag_of

FAST = {"retries": 2, "backoff": 0.0, "timeout": 10.0}


def _payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(n))


def _part_meta(dest, url: str, data: bytes) -> None:
    """What a killed download leaves beside its ``.part``: the URL and the server's validators
    (without them a partial file is not resumed, see download.meta_path)."""
    download.meta_path(dest).write_text(
        json.dumps({"url": url, "etag": etag_of(data), "total": len(data)})
    )


def _serve(state, name: str, data: bytes) -> None:
    path = state.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_resume_from_partial_part_file(http_server, tmp_path):
    base, state = http_server
    data = _payload(300_000)
    _serve(state, "big.bin", data)
    dest = tmp_path / "out" / "big.bin"
    dest.parent.mkdir()
    part_path(dest).write_bytes(data[:100_000])  # left by a killed run
    _part_meta(dest, f"{base}/big.bin", data)
    assert download_file(f"{base}/big.bin", dest, len(data), **FAST) == dest
    assert dest.read_bytes() == data
    assert not part_path(dest).exists()
    assert state.requests == [("big.bin", "bytes=100000-")]
    # Done files are skipped without a request.
    download_file(f"{base}/big.bin", dest, len(data), **FAST)
    assert len(state.requests) == 1


def test_retry_resumes_after_dropped_connection(http_server, tmp_path):
    base, state = http_server
    data = _payload(200_000, seed=3)
    _serve(state, "f.bin", data)
    state.cut_after["f.bin"] = [50_000, 30_000]
    dest = download_file(f"{base}/f.bin", tmp_path / "f.bin", **FAST)
    assert dest.read_bytes() == data
    assert state.requests == [("f.bin", None), ("f.bin", "bytes=50000-"), ("f.bin", "bytes=80000-")]


def test_server_ignoring_range_restarts_cleanly(http_server, tmp_path):
    base, state = http_server
    data = _payload(64_000)
    _serve(state, "f.bin", data)
    state.ignore_range = True
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(b"garbage that must not stay" * 100)
    download_file(f"{base}/f.bin", dest, **FAST)
    assert dest.read_bytes() == data


def test_complete_part_file_is_finished_without_body(http_server, tmp_path):
    base, state = http_server
    data = _payload(10_000)
    _serve(state, "f.bin", data)
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(data)  # killed between the last byte and the rename
    _part_meta(dest, f"{base}/f.bin", data)
    download_file(f"{base}/f.bin", dest, len(data), **FAST)
    assert dest.read_bytes() == data
    assert state.requests == [("f.bin", "bytes=10000-")]


def test_size_mismatch_is_an_error(http_server, tmp_path):
    base, state = http_server
    _serve(state, "f.bin", _payload(1000))
    dest = tmp_path / "f.bin"
    with pytest.raises(SizeMismatchError, match="announces 1000 bytes, expected 999"):
        download_file(f"{base}/f.bin", dest, 999, **FAST)
    assert not dest.exists()
    # An existing final file of the wrong size is not silently accepted either.
    dest.write_bytes(b"x" * 10)
    with pytest.raises(SizeMismatchError, match="exists with 10 bytes"):
        download_file(f"{base}/f.bin", dest, 1000, **FAST)
    # A partial file larger than expected is discarded and the download starts over.
    dest.unlink()
    part_path(dest).write_bytes(b"y" * 2000)
    download_file(f"{base}/f.bin", dest, 1000, **FAST)
    assert dest.read_bytes() == _payload(1000)


def test_http_errors_and_cancel(http_server, tmp_path):
    base, state = http_server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{base}/absent.bin", tmp_path / "a.bin", **FAST)
    assert len(state.requests) == 1  # a 404 is not retried
    _serve(state, "f.bin", _payload(5000))
    stop = threading.Event()
    stop.set()
    with pytest.raises(DownloadCancelled):
        download_file(f"{base}/f.bin", tmp_path / "f.bin", stop=stop, **FAST)
    assert not (tmp_path / "f.bin").exists()
    with pytest.raises(DownloadError, match="gave up after 1 tries"):
        download_file("http://127.0.0.1:9/none", tmp_path / "n.bin", retries=0, timeout=2)


def test_parallel_downloads_restart_after_failure(http_server, tmp_path):
    base, state = http_server
    files = {f"f{i}.bin": _payload(40_000 + 1000 * i, seed=i) for i in range(5)}
    for name, data in files.items():
        _serve(state, name, data)
    state.cut_after["f3.bin"] = [12_345]
    jobs = [
        DownloadJob(f"{base}/{name}", tmp_path / "dl" / name, len(d)) for name, d in files.items()
    ]
    with pytest.raises(DownloadError, match="1 of 5 downloads failed") as info:
        download_many(jobs, workers=3, retries=0, backoff=0.0)
    assert "f3.bin" in str(info.value)
    done = sorted(p.name for p in (tmp_path / "dl").iterdir())
    assert done == ["f0.bin", "f1.bin", "f2.bin", "f3.bin.part", "f3.bin.part.meta", "f4.bin"]
    assert part_path(jobs[3].dest).stat().st_size == 12_345

    state.requests.clear()
    paths = download_many(jobs, workers=3, retries=0, backoff=0.0)
    assert paths == [job.dest for job in jobs]
    assert state.requests == [("f3.bin", "bytes=12345-")]  # finished files skipped
    for job, data in zip(jobs, files.values(), strict=True):
        assert job.dest.read_bytes() == data


def test_interrupt_stops_the_pool_and_a_rerun_finishes(http_server, tmp_path):
    base, state = http_server
    files = {f"g{i}.bin": _payload(20_000, seed=i) for i in range(4)}
    for name, data in files.items():
        _serve(state, name, data)
    jobs = [DownloadJob(f"{base}/{name}", tmp_path / name) for name in files]

    def interrupt(job: DownloadJob) -> None:
        raise KeyboardInterrupt  # as if Ctrl-C arrived after the first file

    with pytest.raises(KeyboardInterrupt):
        download_many(jobs, workers=1, after=interrupt, **FAST)
    assert len(state.requests) < 4  # the queued jobs were cancelled
    assert jobs[0].dest.exists() and not jobs[3].dest.exists()
    state.requests.clear()
    download_many(jobs, workers=2, **FAST)
    rerun = {name for name, _ in state.requests}
    assert "g0.bin" not in rerun and "g3.bin" in rerun
    assert all(job.dest.read_bytes() == files[job.dest.name] for job in jobs)


# ----------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------


def test_extract_zip_and_targz_with_marker(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ucfTrainTestlist/classInd.txt", "1 ApplyEyeMakeup\n")
    extract_archive(archive, tmp_path / "out")
    assert (
        tmp_path / "out" / "ucfTrainTestlist" / "classInd.txt"
    ).read_text() == "1 ApplyEyeMakeup\n"
    assert extracted_marker(archive).exists()
    (tmp_path / "out" / "ucfTrainTestlist" / "classInd.txt").unlink()
    extract_archive(archive, tmp_path / "out")  # skipped: marker
    assert not (tmp_path / "out" / "ucfTrainTestlist" / "classInd.txt").exists()
    extract_archive(archive, tmp_path / "out", force=True)
    assert (tmp_path / "out" / "ucfTrainTestlist" / "classInd.txt").exists()

    tgz = tmp_path / "part_0.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        info = tarfile.TarInfo("x_000001_000011.mp4")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    extract_archive(tgz, tmp_path / "train")
    assert (tmp_path / "train" / "x_000001_000011.mp4").read_bytes() == b"abc"


def test_extract_rejects_unsafe_paths_and_unknown_types(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(ExtractionError, match="unsafe path"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()
    (tmp_path / "damaged.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(ExtractionError, match="(?s)damaged.*delete it"):
        extract_archive(tmp_path / "damaged.tar.gz", tmp_path / "out")
    (tmp_path / "x.7z").write_bytes(b"")
    with pytest.raises(ExtractionError, match="unknown archive type"):
        extract_archive(tmp_path / "x.7z", tmp_path / "out")


def test_rar_without_tool_names_the_debian_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    (tmp_path / "UCF101.rar").write_bytes(b"Rar!\x1a\x07\x00")
    with pytest.raises(ExtractionError) as info:
        extract_archive(tmp_path / "UCF101.rar", tmp_path / "out")
    message = str(info.value)
    assert "`unar`" in message and "apt-get install unar" in message and "`7zip-rar`" in message


def write_stored_rar(path, files: dict[str, bytes]) -> None:
    """A real RAR 4 archive with uncompressed ("stored") members, written by hand: the free tools
    can read RAR but not write it. Names use RAR's backslash separators."""

    def block(head_type: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    out = bytearray(b"Rar!\x1a\x07\x00") + block(0x73, 0, struct.pack("<HI", 0, 0))
    dos_time = (45 << 25) | (1 << 21) | (1 << 16)  # 2025-01-01 00:00
    for name, data in files.items():
        raw = name.replace("/", "\\").encode()
        fields = (len(data), len(data), 3, zlib.crc32(data), dos_time, 20, 0x30, len(raw), 0o100644)
        out += block(0x74, 0x8000, struct.pack("<IIBIIBBHI", *fields) + raw) + data
    out += block(0x7B, 0x4000, b"")
    path.write_bytes(bytes(out))


@pytest.mark.skipif(
    not shutil.which("unar") and os.environ.get("CONDI_REQUIRE_UNAR") != "1",
    reason="unar not installed (apt-get install unar); .ci/run installs it and requires this test",
)
def test_real_rar_extraction_with_unar(http_server, tmp_path, video_writer):
    base, state = http_server
    video = video_writer(tmp_path / "v.avi", 3, 25, (32, 24)).read_bytes()
    write_stored_rar(
        state.root / "UCF101.rar",
        {
            "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": video,
            "UCF-101/HandstandPushups/v_HandStandPushups_g01_c01.avi": video[::-1],
        },
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("ucfTrainTestlist/classInd.txt", "1 ApplyEyeMakeup\n2 HandstandPushups\n")
    _serve(state, "splits.zip", buffer.getvalue())
    root = tmp_path / "ucf"
    download.download_ucf101(
        root, videos_url=f"{base}/UCF101.rar", splits_url=f"{base}/splits.zip", **FAST
    )
    assert (
        root / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi"
    ).read_bytes() == video
    hs = root / "UCF-101" / "HandstandPushups" / "v_HandStandPushups_g01_c01.avi"
    assert hs.read_bytes() == video[::-1]
    assert (root / "ucfTrainTestlist" / "classInd.txt").exists()
    assert extracted_marker(root / "downloads" / "UCF101.rar").exists()
    # A truncated archive is an ExtractionError carrying the tool's message.
    (tmp_path / "bad.rar").write_bytes((state.root / "UCF101.rar").read_bytes()[:200])
    with pytest.raises(ExtractionError, match="unar.*failed"):
        extract_archive(tmp_path / "bad.rar", tmp_path / "bad")
    assert not extracted_marker(tmp_path / "bad.rar").exists()


def test_ucf101_checks_the_rar_tool_before_downloading(http_server, tmp_path, monkeypatch):
    base, state = http_server
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ExtractionError, match="unar"):
        download.download_ucf101(
            tmp_path / "ucf", videos_url=f"{base}/UCF101.rar", splits_url=f"{base}/splits.zip"
        )
    assert state.requests == []


def test_ucf101_splits_zip_downloaded_and_extracted(http_server, tmp_path):
    base, state = http_server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("ucfTrainTestlist/classInd.txt", "1 ApplyEyeMakeup\n")
        zf.writestr("ucfTrainTestlist/trainlist01.txt", "ApplyEyeMakeup/v_a.avi 1\n")
    _serve(state, "UCF101TrainTestSplits-RecognitionTask.zip", buffer.getvalue())
    root = tmp_path / "ucf"
    # The .rar was extracted in an earlier run (its marker stays when the archive is removed).
    (root / "downloads").mkdir(parents=True)
    extracted_marker(root / "downloads" / "UCF101.rar").write_text("ok\n")
    download.download_ucf101(
        root,
        videos_url=f"{base}/UCF101.rar",
        splits_url=f"{base}/UCF101TrainTestSplits-RecognitionTask.zip",
        **FAST,
    )
    assert (root / "ucfTrainTestlist" / "trainlist01.txt").exists()
    assert [name for name, _ in state.requests] == ["UCF101TrainTestSplits-RecognitionTask.zip"]


# ----------------------------------------------------------------------------------------------
# Kinetics end to end: path lists -> tarballs -> extracted videos -> reader
# ----------------------------------------------------------------------------------------------


def _tarball(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_kinetics_download_kill_and_restart(http_server, tmp_path, video_writer):
    base, state = http_server
    clips = {
        "train": [("aaaaaaaaaaa", 0, 10, "abseiling"), ("bbbbbbbbbbb", 5, 15, "tying tie, bow")],
        "val": [("ccccccccccc", 1, 11, "abseiling")],
    }
    for split, rows in clips.items():
        members = {}
        for ytid, start, end, _ in rows:
            video = video_writer(tmp_path / "src" / f"{ytid}.mp4", 3, 25, (32, 24))
            members[f"{ytid}_{start:06d}_{end:06d}.mp4"] = video.read_bytes()
        names = list(members)
        (state.root / "k400" / split).mkdir(parents=True)
        # One tarball per clip, so a split has several.
        for i, name in enumerate(names):
            _tarball(state.root / "k400" / split / f"part_{i}.tar.gz", {name: members[name]})
        urls = [f"{base}/k400/{split}/part_{i}.tar.gz" for i in range(len(names))]
        (state.root / "k400" / split / f"k400_{split}_path.txt").write_text("\n".join(urls) + "\n")
        csv = "label,youtube_id,time_start,time_end,split\n" + "".join(
            f'"{label}",{ytid},{start},{end},{split}\n' for ytid, start, end, label in rows
        )
        _serve(state, f"k400/annotations/{split}.csv", csv.encode())
    _serve(state, "k400/annotations/test.csv", b"youtube_id,time_start,time_end,split\n")
    lists = {s: f"{base}/k400/{s}/k400_{s}_path.txt" for s in ("train", "val")}
    annotations = {s: f"{base}/k400/annotations/{s}.csv" for s in ("train", "val", "test")}
    root = tmp_path / "kinetics"

    state.cut_after["k400/train/part_1.tar.gz"] = [100]  # the "kill"
    with pytest.raises(DownloadError, match="part_1.tar.gz"):
        download.download_kinetics(
            root, 400, ("train", "val"), path_list_urls=lists, annotation_urls=annotations,
            workers=2, retries=0, backoff=0.0,
        )  # fmt: skip
    assert extracted_marker(root / "downloads" / "train" / "part_0.tar.gz").exists()
    assert not (root / "downloads" / "train" / "part_0.tar.gz").exists()  # deleted after extraction
    assert part_path(root / "downloads" / "train" / "part_1.tar.gz").stat().st_size == 100

    state.requests.clear()
    download.download_kinetics(
        root, 400, ("train", "val"), path_list_urls=lists, annotation_urls=annotations,
        workers=2, retries=0, backoff=0.0,
    )  # fmt: skip
    requested = [name for name, _ in state.requests]
    assert "k400/train/part_0.tar.gz" not in requested
    assert ("k400/train/part_1.tar.gz", "bytes=100-") in state.requests
    assert sorted(os.listdir(root / "annotations")) == ["test.csv", "train.csv", "val.csv"]

    listing = kinetics.scan(root)
    assert listing.missing == []
    assert listing.class_names == ["abseiling", "tying tie, bow"]
    assert sorted((r.path, r.split) for r in listing.records) == [
        ("train/aaaaaaaaaaa_000000_000010.mp4", "train"),
        ("train/bbbbbbbbbbb_000005_000015.mp4", "train"),
        ("val/ccccccccccc_000001_000011.mp4", "test"),
    ]


def test_kinetics_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="version"):
        download.download_kinetics(tmp_path, 500)
    with pytest.raises(ValueError, match="unknown Kinetics splits"):
        download.download_kinetics(tmp_path, 400, ("training",))
    assert set(download.KINETICS_PATH_LIST_URLS) == {400, 600, 700}
    for version, lists in download.KINETICS_PATH_LIST_URLS.items():
        for split, url in lists.items():
            assert url.endswith(f"_{split}_path.txt"), (version, url)
