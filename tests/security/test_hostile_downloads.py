"""Issue 12.3-12.5: downloads that end short, change under a resume, or point off the web.

Against the local server of tests/data_sources (127.0.0.1): a download must never produce a
final file that is not the server's whole, current file; anything else is an error naming the
URL, and nothing is written at the destination.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from condi.data import download
from condi.data.download import (
    ChecksumMismatchError,
    DownloadError,
    SizeMismatchError,
    download_file,
    meta_path,
    part_path,
)

FAST = {"retries": 2, "backoff": 0.0, "timeout": 10.0}
NO_RETRY = {"retries": 0, "backoff": 0.0, "timeout": 10.0}


def payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(n))


def serve(state, name: str, data: bytes) -> None:
    (state.root / name).parent.mkdir(parents=True, exist_ok=True)
    (state.root / name).write_bytes(data)


# -- 12.3: a body that ends short ----------------------------------------------------------------


def test_no_content_length_cut_half_way_is_not_accepted(http_server, tmp_path):
    base, state = http_server
    data = payload(200_000)
    serve(state, "f.bin", data)
    state.no_length.add("f.bin")
    state.cut_after["f.bin"] = [100_000]
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match=r"f\.bin: the server sent no Content-Length"):
        download_file(f"{base}/f.bin", dest, **NO_RETRY)
    assert not dest.exists() and not part_path(dest).exists()


def test_no_content_length_is_completed_when_the_size_is_known(http_server, tmp_path):
    base, state = http_server
    data = payload(200_000, seed=1)
    serve(state, "f.bin", data)
    state.no_length.add("f.bin")
    state.cut_after["f.bin"] = [100_000]
    dest = download_file(f"{base}/f.bin", tmp_path / "f.bin", len(data), **FAST)
    assert dest.read_bytes() == data
    assert [r for _, r in state.requests] == [None, "bytes=100000-"]


def test_no_content_length_with_a_wrong_checksum_is_refused(http_server, tmp_path):
    base, state = http_server
    serve(state, "f.bin", payload(5000))
    state.no_length.add("f.bin")
    dest = tmp_path / "f.bin"
    with pytest.raises(ChecksumMismatchError, match="SHA-256"):
        download_file(f"{base}/f.bin", dest, sha256="0" * 64, **FAST)
    assert not dest.exists() and not part_path(dest).exists()
    good = hashlib.sha256(payload(5000)).hexdigest()
    assert download_file(f"{base}/f.bin", dest, sha256=good, **FAST).read_bytes() == payload(5000)


def test_body_shorter_than_its_content_length_is_an_error(http_server, tmp_path):
    base, state = http_server
    serve(state, "f.bin", payload(100_000))
    state.cut_after["f.bin"] = [40_000]
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="connection closed after 40000 of 100000 bytes"):
        download_file(f"{base}/f.bin", dest, **NO_RETRY)
    assert not dest.exists()
    assert part_path(dest).stat().st_size == 40_000  # kept, to be resumed


# -- 12.4: the server's file changes between a cut and the resume ------------------------------


@pytest.mark.parametrize("server", ["honours If-Range", "ignores If-Range", "no validators"])
def test_a_resume_never_splices_two_versions(http_server, tmp_path, server):
    base, state = http_server
    old, new = payload(120_000, seed=1), payload(120_000, seed=2)  # same size, other bytes
    serve(state, "f.bin", old)
    state.honor_if_range = server == "honours If-Range"
    state.etags = server != "no validators"
    state.cut_after["f.bin"] = [50_000]
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError):
        download_file(f"{base}/f.bin", dest, **NO_RETRY)
    assert part_path(dest).stat().st_size == 50_000
    serve(state, "f.bin", new)  # the file changed on the server
    download_file(f"{base}/f.bin", dest, **NO_RETRY)
    assert dest.read_bytes() == new
    assert not part_path(dest).exists() and not meta_path(dest).exists()
    if server == "honours If-Range":  # a resume was asked for; the server sent all of it
        assert state.requests[-1] == ("f.bin", "bytes=50000-")


def test_an_unchanged_file_is_resumed(http_server, tmp_path):
    base, state = http_server
    data = payload(120_000, seed=3)
    serve(state, "f.bin", data)
    state.cut_after["f.bin"] = [50_000]
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError):
        download_file(f"{base}/f.bin", dest, **NO_RETRY)
    download_file(f"{base}/f.bin", dest, **NO_RETRY)
    assert dest.read_bytes() == data
    assert state.requests[-1] == ("f.bin", "bytes=50000-")


# -- 12.5: URLs that are not http(s) ----------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file:///etc/hostname", "ftp://127.0.0.1/x", "data:,hello", "/etc/hostname"]
)
def test_only_http_urls_are_fetched(tmp_path, url):
    dest = tmp_path / "downloads" / "hostname"
    with pytest.raises(DownloadError, match="only http"):
        download_file(url, dest, **NO_RETRY)
    assert not dest.exists() and not (tmp_path / "downloads").exists()


@pytest.mark.parametrize("target", ["file:///etc/hostname", "ftp://127.0.0.1/hostname"])
def test_a_redirect_off_the_web_is_refused(http_server, tmp_path, target):
    base, state = http_server
    state.redirects["x.bin"] = target
    dest = tmp_path / "x.bin"
    with pytest.raises(DownloadError, match=r"x\.bin: HTTP 302 .*(not allowed|redirect refused)"):
        download_file(f"{base}/x.bin", dest, **NO_RETRY)
    assert not dest.exists() and not part_path(dest).exists()


def test_kinetics_list_with_a_file_url_is_refused_before_any_download(http_server, tmp_path):
    base, state = http_server
    serve(state, "k400/train/part_0.tar.gz", b"never fetched")
    lines = [f"{base}/k400/train/part_0.tar.gz", "file:///etc/hostname"]
    serve(state, "k400/train/k400_train_path.txt", ("\n".join(lines) + "\n").encode())
    for split in ("train", "val", "test"):
        serve(state, f"k400/annotations/{split}.csv", b"label,youtube_id,time_start,time_end\n")
    root = tmp_path / "kinetics"
    with pytest.raises(DownloadError, match=r"k400_train_path\.txt:2: 'file:///etc/hostname'"):
        download.download_kinetics(
            root,
            400,
            ("train",),
            path_list_urls={"train": f"{base}/k400/train/k400_train_path.txt"},
            annotation_urls={s: f"{base}/k400/annotations/{s}.csv" for s in ("train", "val")},
            **NO_RETRY,
        )
    assert sorted(os.listdir(root / "downloads" / "train")) == ["k400_train_path.txt"]
    assert not (root / "train").exists()
    assert ("k400/train/part_0.tar.gz", None) not in state.requests


@pytest.mark.parametrize("url", ["http://127.0.0.1/a/..", "http://127.0.0.1/", "http://h/a\x1bb"])
def test_a_url_without_a_usable_file_name_is_refused(tmp_path, url):
    (tmp_path / "list.txt").write_text(url + "\n")
    with pytest.raises(DownloadError, match=r"list\.txt:1"):
        download.read_url_list(tmp_path / "list.txt")


# -- known archives: size and checksum kept in the code ------------------------------------------


def test_the_official_ucf_archives_have_a_size_and_checksum():
    rar = download.KNOWN_FILES[download.UCF101_VIDEOS_URL]
    splits = download.KNOWN_FILES[download.UCF101_SPLITS_URL]
    assert rar[0] == 6_932_971_618
    assert splits == (113_943, "5c0d1a53b8ed364a2ac830a73f405e51bece7d98ce1254fd19ed4a36b224bd27")


def test_a_known_archive_with_other_content_is_refused(http_server, tmp_path, monkeypatch):
    """Served with the right size but other bytes (a tampered mirror): not kept, not extracted."""
    base, state = http_server
    real = payload(3000, seed=4)
    tampered = payload(3000, seed=5)
    serve(state, "splits.zip", tampered)
    url = f"{base}/splits.zip"
    monkeypatch.setitem(download.KNOWN_FILES, url, (len(real), hashlib.sha256(real).hexdigest()))
    root = tmp_path / "ucf"
    (root / "downloads").mkdir(parents=True)
    download.extracted_marker(root / "downloads" / "UCF101.rar").write_text("ok\n")
    with pytest.raises(DownloadError, match="SHA-256"):
        download.download_ucf101(root, videos_url=f"{base}/UCF101.rar", splits_url=url, **FAST)
    assert sorted(os.listdir(root / "downloads")) == ["UCF101.rar.extracted"]

    monkeypatch.setitem(download.KNOWN_FILES, url, (len(real) + 1, None))
    with pytest.raises(DownloadError, match=f"announces {len(real)} bytes, expected"):
        download.download_ucf101(root, videos_url=f"{base}/UCF101.rar", splits_url=url, **FAST)
    assert sorted(os.listdir(root / "downloads")) == ["UCF101.rar.extracted"]


def test_size_mismatch_is_not_retried(http_server, tmp_path):
    base, state = http_server
    serve(state, "f.bin", payload(10))
    with pytest.raises(SizeMismatchError):
        download_file(f"{base}/f.bin", tmp_path / "f.bin", 11, **FAST)
    assert len(state.requests) == 1
