"""Issue 12.2 and 12.6: hostile or damaged archives write nothing, anywhere.

Each archive is built in tmp_path next to an ``outside`` folder it aims at. Extraction must
raise an error naming the archive (and the member), leave the tree exactly as it was (no file
in the target, none outside it, no staging folder) and write no "extracted" marker. The checks
are condi's own (``condi.data.archives``), not ``tarfile``'s ``filter=``, so they hold on every
Python that pyproject allows.
"""

from __future__ import annotations

import io
import os
import re
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from condi.data import archives, ssv2
from condi.data.download import ExtractionError, extract_archive, extracted_marker
from tests.conftest import REPO


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` (links not followed) with its kind and content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_file():
                out[rel] = p.read_bytes().hex()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture
def site(tmp_path):
    """``tmp_path/work`` (archives and target live here) and ``tmp_path/outside``."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("original\n")
    (tmp_path / "work").mkdir()
    return tmp_path


def assert_refused_untouched(site, archive, dest, before, member=None, error=ExtractionError):
    with pytest.raises(error) as info:
        extract_archive(archive, dest)
    message = str(info.value)
    assert str(archive) in message, message
    if member is not None:
        assert member in message, message
    assert not extracted_marker(archive).exists()
    after = tree(site)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:5]
    return message


# -- tar ------------------------------------------------------------------------------------


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], fmt=tarfile.PAX_FORMAT):
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w", format=fmt) as tf:
        for m in members:
            if isinstance(m, tuple):
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
            else:
                tf.addfile(m)
    return path


def _info(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def chained_symlink_tar(path: Path, outside: Path, dest: Path) -> Path:
    """CVE-2025-4517's shape: symlinks chained through 247-character folder names and a last
    254-character component, so that resolving the link overflows ``PATH_MAX``;
    ``os.path.realpath`` then stops resolving and ``filter="data"`` checks the unresolved
    (harmless-looking) path, while the OS follows the links out of ``dest``. With this archive
    ``tarfile.extractall(dest, filter="data")`` on Python 3.11.7 writes ``outside/new.txt``
    and raises nothing."""
    comp = "d" * 247
    steps = "abcdefghijklmnop"
    members: list = [("good.mp4", b"video")]
    prefix = ""
    for step in steps:
        members.append(_info(os.path.join(prefix, comp), tarfile.DIRTYPE))
        members.append(_info(os.path.join(prefix, step), tarfile.SYMTYPE, comp))
        prefix = os.path.join(prefix, comp)
    linkpath = os.path.join(*steps, "l" * 254)
    members.append(_info(linkpath, tarfile.SYMTYPE, "../" * len(steps)))  # -> dest itself
    up = "/.." * len(dest.parts)  # from dest to /
    members.append(_info("escape", tarfile.SYMTYPE, linkpath + up + str(outside)))
    members.append(("escape/victim.txt", b"overwritten\n"))
    members.append(("escape/new.txt", b"planted\n"))
    return _tar(path, members)


def test_cve_2025_4517_chained_symlinks_are_refused(site):
    dest = site / "work" / "train"
    archive = chained_symlink_tar(site / "work" / "part_0.tar", site / "outside", dest)
    before = tree(site)
    message = assert_refused_untouched(site, archive, dest, before)
    assert "symbolic link" in message
    assert (site / "outside" / "victim.txt").read_text() == "original\n"


@pytest.mark.parametrize(
    ("member", "what"),
    [
        (_info("link", tarfile.SYMTYPE, "../outside"), "symbolic link"),
        (_info("hard", tarfile.LNKTYPE, "../outside/victim.txt"), "hard link"),
        (_info("tty", tarfile.CHRTYPE), "device"),
        (_info("disk", tarfile.BLKTYPE), "device"),
        (_info("pipe", tarfile.FIFOTYPE), "FIFO"),
        (("/abs/x.mp4", b"x"), "absolute"),
        (("../outside/victim.txt", b"x"), "leaves the target"),
        (("a/../../outside/x", b"x"), "leaves the target"),
        (("..\\outside\\x", b"x"), "leaves the target"),
        (("C:\\x.mp4", b"x"), "absolute"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_tar_member_kinds_refused_before_anything_is_written(site, member, what, suffix):
    archive = _tar(site / "work" / f"evil{suffix}", [("a/good.mp4", b"video"), member])
    before = tree(site)
    message = assert_refused_untouched(site, archive, site / "work" / "out", before)
    assert what in message


def test_a_good_tar_with_a_dot_root_extracts(site):
    archive = _tar(
        site / "work" / "ok.tar.gz",
        [_info("./", tarfile.DIRTYPE), ("./a/b.mp4", b"video"), ("c.mp4", b"v2")],
    )
    extract_archive(archive, site / "work" / "out")
    assert (site / "work" / "out" / "a" / "b.mp4").read_bytes() == b"video"
    assert sorted(os.listdir(site / "work" / "out")) == ["a", "c.mp4"]
    assert extracted_marker(archive).exists()


def test_a_file_and_folder_of_the_same_name_is_refused(site):
    archive = _tar(site / "work" / "clash.tar", [("a", b"file"), ("a/b", b"x")])
    before = tree(site)
    assert_refused_untouched(site, archive, site / "work" / "out", before, "'a'")


# -- zip ------------------------------------------------------------------------------------


def _zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.create_system = 3  # Unix
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("name", "mode", "what"),
    [
        ("link", stat.S_IFLNK | 0o777, "symbolic link"),
        ("pipe", stat.S_IFIFO | 0o644, "FIFO"),
        ("tty", stat.S_IFCHR | 0o644, "device"),
        ("/etc/x", stat.S_IFREG | 0o644, "absolute"),
        ("../outside/victim.txt", stat.S_IFREG | 0o644, "leaves the target"),
        ("..\\outside\\victim.txt", stat.S_IFREG | 0o644, "leaves the target"),
        ("D:/x", stat.S_IFREG | 0o644, "absolute"),
    ],
)
def test_zip_member_kinds_refused_before_anything_is_written(site, name, mode, what):
    data = b"../outside" if stat.S_ISLNK(mode) else b"x"
    archive = _zip(
        site / "work" / "evil.zip",
        [("ok/a.txt", b"fine", stat.S_IFREG | 0o644), (name, data, mode)],
    )
    before = tree(site)
    message = assert_refused_untouched(site, archive, site / "work" / "out", before)
    assert what in message


def test_a_zip_damaged_half_way_leaves_no_partial_extraction(site):
    archive = site / "work" / "half.zip"
    _zip(archive, [("a/first.txt", b"A" * 5000, 0o100644), ("a/second.txt", b"B" * 5000, 0o100644)])
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"B" * 100)  # the second member's data (stored): its CRC no longer matches
    raw[at : at + 10] = b"X" * 10
    archive.write_bytes(bytes(raw))
    before = tree(site)
    message = assert_refused_untouched(site, archive, site / "work" / "out", before)
    assert "damaged" in message


def test_a_stale_staging_folder_is_removed(site):
    archive = _zip(site / "work" / "ok.zip", [("x.txt", b"x", 0o100644)])
    dest = site / "work" / "out"
    stale = dest / f".ok.zip{archives.STAGING_INFIX}killed"
    (stale / "half").mkdir(parents=True)
    extract_archive(archive, dest)
    assert sorted(os.listdir(dest)) == ["x.txt"]


# -- rar --------------------------------------------------------------------------------------


def _fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    path.chmod(0o755)


def test_rar_link_member_refused_by_the_lsar_listing(site, monkeypatch):
    """``lsar -j`` lists a link: refused before ``unar`` runs (a fake pair of tools)."""
    bin_dir = site / "bin"
    listing = {
        "lsarContents": [
            {"XADFileName": "UCF-101/a.avi", "XADPosixPermissions": 0o100644},
            {"XADFileName": "UCF-101/l", "XADIsLink": 1, "XADPosixPermissions": 0o120777},
        ]
    }
    _fake_tool(bin_dir, "lsar", f"print(json.dumps({listing!r}))")
    ran = site / "unar-ran"
    _fake_tool(bin_dir, "unar", f"open({str(ran)!r}, 'w').close()")
    monkeypatch.setenv("PATH", str(bin_dir))
    archive = site / "work" / "UCF101.rar"
    archive.write_bytes(b"Rar!\x1a\x07\x00")
    before = tree(site)
    message = assert_refused_untouched(site, archive, site / "work", before, "UCF-101/l")
    assert "link" in message and not ran.exists()


def test_rar_tool_output_is_checked_again(site, monkeypatch):
    """Should a tool write a link the listing did not show, the staging folder goes."""
    bin_dir = site / "bin"
    listing = {"lsarContents": [{"XADFileName": "UCF-101/a.avi"}]}
    _fake_tool(bin_dir, "lsar", f"print(json.dumps({listing!r}))")
    _fake_tool(
        bin_dir,
        "unar",
        "out = sys.argv[sys.argv.index('-o') + 1]\n"
        "os.makedirs(os.path.join(out, 'UCF-101'))\n"
        "open(os.path.join(out, 'UCF-101', 'a.avi'), 'w').write('v')\n"
        f"os.symlink({str(site / 'outside')!r}, os.path.join(out, 'UCF-101', 'sneaky'))",
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    archive = site / "work" / "UCF101.rar"
    archive.write_bytes(b"Rar!\x1a\x07\x00")
    before = tree(site)
    assert_refused_untouched(site, archive, site / "work", before, "sneaky")


def test_7z_listing_with_a_link_is_refused(site, monkeypatch):
    bin_dir = site / "bin"
    listing = (
        "Path = x.rar\nType = Rar\n\n----------\n"
        "Path = UCF-101/a.avi\nFolder = -\nAttributes = A -rw-r--r--\n\n"
        "Path = UCF-101/l\nFolder = -\nMode = lrwxrwxrwx\nSymbolic Link = /etc\n"
    )
    ran = site / "7z-extract-ran"
    _fake_tool(
        bin_dir,
        "7z",
        f"if sys.argv[1] == 'l':\n    print({listing!r})\nelse:\n    open({str(ran)!r}, 'w')",
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    archive = site / "work" / "UCF101.rar"
    archive.write_bytes(b"Rar!\x1a\x07\x00")
    before = tree(site)
    assert_refused_untouched(site, archive, site / "work", before, "UCF-101/l")
    assert not ran.exists()


needs_unar = pytest.mark.skipif(
    not (archives.shutil.which("unar") and archives.shutil.which("lsar")),
    reason="unar/lsar not installed (apt-get install unar)",
)


@needs_unar
@pytest.mark.parametrize(
    ("members", "what"),
    [
        ({"a/l": (b"/etc", 0o120777), "a/l/x": (b"pwn", 0o100644)}, "link"),
        ({"ok.txt": (b"ok", 0o100644), "../outside/x.txt": (b"pwn", 0o100644)}, "leaves the"),
    ],
)
def test_real_rar_with_a_link_or_dotdot_is_refused(site, members, what):
    archive = site / "work" / "evil.rar"
    write_rar(archive, members)
    before = tree(site)
    message = assert_refused_untouched(site, archive, site / "work" / "out", before)
    assert what in message


def write_rar(path: Path, members: dict[str, tuple[bytes, int]]) -> None:
    """A stored RAR 4 like tests/data_sources' ``write_stored_rar``, with a Unix mode per
    member (0o120777 with the target as data is how RAR stores a symbolic link)."""
    import struct
    import zlib

    def block(head_type: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    out = bytearray(b"Rar!\x1a\x07\x00") + block(0x73, 0, struct.pack("<HI", 0, 0))
    dos_time = (45 << 25) | (1 << 21) | (1 << 16)
    for name, (data, mode) in members.items():
        raw = name.replace("/", "\\").encode()
        fields = (len(data), len(data), 3, zlib.crc32(data), dos_time, 20, 0x30, len(raw), mode)
        out += block(0x74, 0x8000, struct.pack("<IIBIIBBHI", *fields) + raw) + data
    out += block(0x7B, 0x4000, b"")
    path.write_bytes(bytes(out))


# -- SSv2 chunks (12.6) -------------------------------------------------------------------------


def _ssv2_chunks(root: Path, members: list, n: int = 2) -> list[Path]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for m in members:
            if isinstance(m, tuple):
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
            else:
                tf.addfile(m)
    data = buffer.getvalue()
    size = -(-len(data) // n)
    chunks = []
    for i in range(n):
        chunk = root / f"20bn-something-something-v2-{i:02d}"
        chunk.write_bytes(data[i * size : (i + 1) * size])
        chunks.append(chunk)
    return chunks


VIDEOS = [(f"{ssv2.VIDEO_DIR}/{i}.webm", bytes([i]) * 20_000) for i in range(1, 6)]


def test_ssv2_killed_chunk_unzip_leaves_no_partial_chunk(site, monkeypatch):
    """SIGKILL during the unzip of chunk 01 (simulated: the copy dies half way): no file
    named like a chunk remains; the next run unzips it again and extracts everything."""
    root = site / "work" / "ssv2"
    root.mkdir()
    chunks = _ssv2_chunks(root, VIDEOS)
    whole = chunks[1].read_bytes()
    with zipfile.ZipFile(root / f"{chunks[1].name}.zip", "w") as zf:
        zf.write(chunks[1], arcname=chunks[1].name)
    chunks[1].unlink()

    real = ssv2.shutil.copyfileobj

    def killed(src, dst, length=0):
        dst.write(src.read(len(whole) // 2))
        raise KeyboardInterrupt  # stands for the kill: nothing after this line runs

    monkeypatch.setattr(ssv2.shutil, "copyfileobj", killed)
    with pytest.raises(KeyboardInterrupt):
        ssv2.find_chunks(root)
    monkeypatch.setattr(ssv2.shutil, "copyfileobj", real)
    assert not (root / chunks[1].name).exists()
    # what a real SIGKILL leaves: the temporary file (the context manager had no chance to run)
    (root / f".{chunks[1].name}.k1ll3d.tmp").write_bytes(whole[:100])
    assert [c.name for c in ssv2.find_chunks(root)] == [c.name for c in chunks]
    assert (root / chunks[1].name).read_bytes() == whole
    assert not list(root.glob(".*.tmp"))
    ssv2.join_and_extract(ssv2.find_chunks(root), root)
    for name, data in VIDEOS:
        assert (root / name).read_bytes() == data


def test_ssv2_truncated_chunk_is_named_and_nothing_is_extracted(site):
    root = site / "work" / "ssv2"
    root.mkdir()
    chunks = _ssv2_chunks(root, VIDEOS)
    chunks[1].write_bytes(chunks[1].read_bytes()[:-3000])  # a download cut short
    before = tree(site)
    with pytest.raises(ValueError, match=rf"{chunks[1].name}.*damaged or incomplete"):
        ssv2.prepare(root)
    assert tree(site) == before
    assert not (root / ssv2.VIDEO_DIR).exists()


def test_ssv2_chunks_with_a_link_member_are_refused(site):
    root = site / "work" / "ssv2"
    root.mkdir()
    link = _info(f"{ssv2.VIDEO_DIR}/9.webm", tarfile.SYMTYPE, str(site / "outside" / "victim.txt"))
    _ssv2_chunks(root, [*VIDEOS, link, (f"{ssv2.VIDEO_DIR}/9.webm", b"overwrite")])
    before = tree(site)
    with pytest.raises(ValueError, match=r"9\.webm.*symbolic link"):
        ssv2.prepare(root)
    assert tree(site) == before


# -- the Python floor -------------------------------------------------------------------------


def test_no_extraction_relies_on_tarfile_filters():
    """pyproject's floor is 3.11 (Snakemake 9); condi's checks do not depend on the Python
    version's ``filter=`` support: no ``extractall`` anywhere in condi."""
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'requires-python = ">=3\.11"', text)
    for path in (REPO / "src" / "condi").rglob("*.py"):
        source = path.read_text()
        assert "extractall(" not in source, path
        assert not re.search(r"filter\s*=\s*['\"]", source), path


@pytest.mark.skipif(not archives.shutil.which("7zz"), reason="7zz not installed")
def test_real_7z_listing_of_a_link_is_refused(site):
    """The listing parser against real ``7zz l -slt`` output (of a tar: free 7-Zip lists the
    same fields for every format, and reads RAR only with the non-free codec)."""
    archive = _tar(site / "work" / "l.tar", [("d/f", b"x"), _info("d/l", tarfile.SYMTYPE, "/etc")])
    out = archives._run(["7zz", "l", "-slt", str(archive)])
    with pytest.raises(archives.UnsafeArchiveError, match="'d/l' is a link"):
        archives._7z_entries(archive, out.stdout)
    ok = _tar(site / "work" / "ok.tar", [("d/f", b"x")])
    entries = archives._7z_entries(ok, archives._run(["7zz", "l", "-slt", str(ok)]).stdout)
    assert [(p.as_posix(), d) for p, d in entries] == [("d/f", False)]
