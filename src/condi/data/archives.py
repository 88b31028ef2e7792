"""Safe extraction of tar, zip and rar archives: nothing outside the target, nothing partial.

Every archive condi extracts (UCF-101's .rar and split .zip, Kinetics tarballs, the SSv2
chunks and labels archive) goes through this module, which does its own member-by-member
validation instead of relying on ``tarfile``'s ``filter=`` (whose ``"data"`` filter was
bypassed by chained symlinks overflowing ``PATH_MAX``, CVE-2025-4517, on Python 3.11.7):

* **Validated before anything is written.** The whole member list is read first (tar: its
  headers; zip: its central directory; rar: ``lsar -j`` or ``7z l -slt``). An archive with a
  link (symbolic or hard), a device, a FIFO or any member that is neither a regular file nor a
  directory, an absolute name (``/x``, ``\\x``, ``C:x``), a ``..`` component, an empty name or a
  NUL byte is refused with :class:`UnsafeArchiveError` naming the archive and the member.
* **Written by condi, not by the library.** tar and zip members are copied out one by one into
  files condi creates itself (never a link, never a device, permissions from the umask), in a
  fresh staging folder inside the target; a rar is extracted by the tool into such a folder
  and the result is checked again (regular files and folders only, every name listed).
* **All or nothing.** Only a complete, valid extraction is moved from the staging folder into
  the target; an error (a refused or damaged archive, a full disk) removes the staging folder,
  so the target gets no partial extraction. A staging folder left by a killed run is removed
  by the next one. The caller writes its "extracted" marker only after :func:`safe_extract`
  returned.

The same rules hold on every Python that ``pyproject.toml`` allows (>= 3.11): nothing here
depends on ``tarfile``'s version-specific extraction filters.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import lzma
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

log = logging.getLogger(__name__)

RAR_TOOLS = ("unar", "7z", "7zz")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
STAGING_INFIX = ".condi-extracting-"
COPY_CHUNK = 1 << 20

# What a damaged (truncated, corrupt) archive raises in the standard library.
DAMAGED = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    lzma.LZMAError,
)


class ExtractionError(RuntimeError):
    """An archive that could not be extracted, or no tool to extract it."""


class UnsafeArchiveError(ExtractionError):
    """An archive refused before extraction: a member would be a link, a device, or land
    outside the target."""


# ----------------------------------------------------------------------------------------------
# Member checks
# ----------------------------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def member_path(archive: str | os.PathLike, name: object, is_dir: bool = False) -> PurePosixPath:
    """The relative path a member ``name`` is written to; :class:`UnsafeArchiveError` for an
    absolute name, a ``..`` component, a NUL byte or an empty file name (a folder named ``.``
    or ``./``, the archive's root, is ``PurePosixPath('.')``). Backslashes count as separators
    (archives written on Windows)."""
    if not isinstance(name, str):
        raise UnsafeArchiveError(f"{archive}: unsafe path {name!r} (not text): refused")
    unix = name.replace("\\", "/")
    if "\x00" in unix:
        raise UnsafeArchiveError(f"{archive}: unsafe path {name!r} (a NUL byte): refused")
    if unix.startswith("/") or _DRIVE.match(unix):
        raise UnsafeArchiveError(f"{archive}: unsafe path {name!r} (absolute): refused")
    parts = [p for p in unix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: unsafe path {name!r} (leaves the target): refused")
    if not parts and not is_dir:
        raise UnsafeArchiveError(f"{archive}: unsafe path {name!r} (empty): refused")
    return PurePosixPath(*parts)


def _kind_of_mode(mode: int) -> str | None:
    """None for a regular file or folder (or no type bits), else what the mode says it is."""
    fmt = stat.S_IFMT(mode)
    if fmt in (0, stat.S_IFREG, stat.S_IFDIR):
        return None
    kinds = {
        stat.S_IFLNK: "a symbolic link",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFIFO: "a FIFO",
        stat.S_IFSOCK: "a socket",
    }
    return kinds.get(fmt, f"a special file (mode {mode:o})")


def _refuse(archive, name: str, kind: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive}: member {name!r} is {kind}: refused (condi extracts regular files and "
        "folders only); nothing was extracted"
    )


def _check_layout(archive, entries: Iterable[tuple[PurePosixPath, bool]]) -> None:
    """No member may be a file and also the folder of another member."""
    files, folders = set(), set()
    for path, is_dir in entries:
        (folders if is_dir else files).add(path)
        folders.update(path.parents)
    clash = sorted(files & folders)
    if clash:
        raise UnsafeArchiveError(
            f"{archive}: {clash[0].as_posix()!r} is both a file and a folder: refused"
        )


def tar_plan(archive, tf: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Every member of a (random-access) tar, checked; raises before anything is written."""
    try:
        members = tf.getmembers()
    except (*DAMAGED, OSError) as exc:  # only reading happens here: a damaged archive
        raise ExtractionError(
            f"{archive} is damaged ({exc}): delete it to download it again"
        ) from exc
    plan = [(info, _tar_member(archive, info)) for info in members]
    _check_layout(archive, ((path, info.isdir()) for info, path in plan))
    return plan


def _tar_member(archive, info: tarfile.TarInfo) -> PurePosixPath:
    path = member_path(archive, info.name, info.isdir())
    if info.issym():
        raise _refuse(archive, info.name, f"a symbolic link (to {info.linkname!r})")
    if info.islnk():
        raise _refuse(archive, info.name, f"a hard link (to {info.linkname!r})")
    if info.ischr() or info.isblk():
        raise _refuse(archive, info.name, "a device file")
    if info.isfifo():
        raise _refuse(archive, info.name, "a FIFO")
    if not (info.isreg() or info.isdir()):
        raise _refuse(archive, info.name, f"of tar type {info.type!r}")
    return path


def zip_plan(archive, zf: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every member of a zip, checked (links and devices are told by the Unix mode in the
    external attributes); raises before anything is written."""
    plan = []
    for info in zf.infolist():
        path = member_path(archive, info.filename, info.is_dir())
        kind = _kind_of_mode(info.external_attr >> 16)
        if kind is not None:
            raise _refuse(archive, info.filename, kind)
        plan.append((info, path))
    _check_layout(archive, ((path, info.is_dir()) for info, path in plan))
    return plan


# ----------------------------------------------------------------------------------------------
# Staging: extract beside the target, move in only when complete
# ----------------------------------------------------------------------------------------------


def _staging_prefix(archive: Path) -> str:
    return f".{archive.name}{STAGING_INFIX}"


def remove_stale_staging(archive: Path, dest: Path) -> None:
    """Staging folders a killed extraction of ``archive`` left in ``dest``."""
    if not dest.is_dir():
        return
    for stale in dest.glob(f"{_staging_prefix(archive)}*"):
        log.info("removing %s, left by an interrupted extraction", stale)
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def staging(archive: Path, dest: Path) -> Iterator[Path]:
    """A fresh folder inside ``dest``; on success its content is moved into ``dest``, on any
    error (or interrupt) it is removed with everything in it."""
    created = [d for d in (dest, *dest.parents) if not d.exists()]
    dest.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(archive, dest)
    stage = Path(tempfile.mkdtemp(prefix=_staging_prefix(archive), dir=dest))
    ok = False
    try:
        yield stage
        _move_into(stage, dest, archive)
        ok = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not ok:  # the folders made for this extraction go too
            for d in created:
                with contextlib.suppress(OSError):
                    d.rmdir()


def _move_into(src: Path, dest: Path, archive: Path) -> None:
    """Move the checked tree ``src`` into ``dest``, merging folders; files are renamed over
    existing ones (an existing link is replaced, never written through)."""
    for entry in sorted(src.iterdir()):
        target = dest / entry.name
        if entry.is_dir() and not entry.is_symlink():
            if target.is_dir():
                _move_into(entry, target, archive)
                continue
            if target.exists() or target.is_symlink():
                raise ExtractionError(
                    f"{archive}: {entry.name!r} is a folder in the archive but {target} "
                    "exists and is not one"
                )
            os.replace(entry, target)
        else:
            if target.is_dir() and not target.is_symlink():
                raise ExtractionError(
                    f"{archive}: {entry.name!r} is a file in the archive but {target} is a folder"
                )
            os.replace(entry, target)


def _new_file(stage: Path, rel: PurePosixPath) -> IO[bytes]:
    """Create ``stage/rel`` for writing: its folders are real folders condi made (no link
    in ``stage`` exists to follow), checked once more with ``realpath``."""
    target = stage.joinpath(*rel.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    real = os.path.realpath(target)
    if os.path.commonpath([real, os.path.realpath(stage)]) != os.path.realpath(stage):
        raise UnsafeArchiveError(f"{rel}: would be written outside the target: refused")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(target, flags, 0o666), "wb")


def _write_member(
    stage: Path,
    rel: PurePosixPath,
    src: IO[bytes] | None,
    is_dir: bool,
    archive,
    hint: str = ": delete it to download it again",
) -> None:
    if is_dir:
        stage.joinpath(*rel.parts).mkdir(parents=True, exist_ok=True)
        return
    with _new_file(stage, rel) as dst:
        while src is not None:
            try:  # a read error is the archive's (damaged); a write error is ours (disk full)
                block = src.read(COPY_CHUNK)
            except (*DAMAGED, OSError) as exc:
                raise ExtractionError(
                    f"{archive} is damaged or incomplete ({rel.as_posix()}: {exc}){hint}"
                ) from exc
            if not block:
                break
            dst.write(block)


def check_tree(root: Path, archive, listed: set[PurePosixPath] | None = None) -> None:
    """After a tool extracted into ``root``: regular files and folders only and, when
    ``listed`` is given, only names the listing announced (or their folders)."""
    allowed = None
    if listed is not None:
        allowed = set(listed)
        for path in listed:
            allowed.update(path.parents)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = PurePosixPath(path.relative_to(root).as_posix())
            kind = _kind_of_mode(os.lstat(path).st_mode)
            if kind is not None:
                raise _refuse(archive, rel.as_posix(), kind + " after extraction")
            if allowed is not None and rel not in allowed:
                raise UnsafeArchiveError(
                    f"{archive}: the extractor wrote {rel.as_posix()!r}, which the archive's "
                    "listing does not have: refused"
                )


# ----------------------------------------------------------------------------------------------
# tar and zip
# ----------------------------------------------------------------------------------------------


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tf:
        plan = tar_plan(archive, tf)
        with staging(archive, dest) as stage:
            for info, rel in plan:
                src = None if info.isdir() else tf.extractfile(info)
                try:
                    _write_member(stage, rel, src, info.isdir(), archive)
                finally:
                    if src is not None:
                        src.close()


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        plan = zip_plan(archive, zf)
        with staging(archive, dest) as stage:
            for info, rel in plan:
                if info.is_dir():
                    _write_member(stage, rel, None, True, archive)
                    continue
                with zf.open(info) as src:
                    _write_member(stage, rel, src, False, archive)


def extract_tar_stream(fileobj: IO[bytes], dest: Path, name: str | os.PathLike) -> int:
    """Extract a tar read as a stream (``r|*``: it cannot be listed first without reading it
    twice, e.g. 19 GB of SSv2 chunks) into a staging folder in ``dest``, checking each member
    before writing it; a bad member removes everything written so far. ``name`` names the
    archive in errors. Returns the number of members."""
    name = Path(name)
    n = 0
    seen: list[tuple[PurePosixPath, bool]] = []
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tf, staging(name, dest) as stage:
            for info in tf:
                rel = _tar_member(name, info)
                seen.append((rel, info.isdir()))
                _check_layout(name, seen)
                src = None if info.isdir() else tf.extractfile(info)
                _write_member(stage, rel, src, info.isdir(), name, hint="")
                n += 1
    except DAMAGED as exc:
        raise ExtractionError(f"{name} is damaged or incomplete ({exc})") from exc
    return n


# ----------------------------------------------------------------------------------------------
# rar (an external tool)
# ----------------------------------------------------------------------------------------------


def find_rar_tool() -> list[str]:
    """The command prefix of the first RAR extractor on ``PATH`` (``unar``, ``7z``, ``7zz``)."""
    for tool in RAR_TOOLS:
        path = shutil.which(tool)
        if path:
            return [path]
    raise ExtractionError(
        "no RAR extractor found on PATH (looked for "
        + ", ".join(RAR_TOOLS)
        + "): install the Debian package `unar` (apt-get install unar); Debian's `7zip` package "
        "reads RAR only together with the non-free `7zip-rar` package. Or extract the .rar "
        "yourself into the dataset root."
    )


def _rar_command(tool: str, archive: Path, dest: Path) -> list[str]:
    if Path(tool).name == "unar":
        # -f: overwrite, -D: no extra containing folder (UCF101.rar already holds UCF-101/).
        return [tool, "-q", "-f", "-D", "-o", str(dest), str(archive)]
    return [tool, "x", "-y", f"-o{dest}", str(archive)]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True)


_LSAR_LINK_KEYS = ("XADIsLink", "XADIsSymbolicLink", "XADIsHardLink", "XADLinkDestination")
_LSAR_SPECIAL_KEYS = ("XADIsSpecialFile", "XADIsDevice", "XADIsCharacterDevice")
_LSAR_SPECIAL_KEYS += ("XADIsBlockDevice", "XADIsFIFO", "XADIsSocket")


def _lsar_entries(archive: Path, output: str) -> list[tuple[PurePosixPath, bool]]:
    try:
        contents = json.loads(output)["lsarContents"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ExtractionError(f"{archive}: cannot read lsar's listing ({exc})") from exc
    entries = []
    for item in contents:
        name = item.get("XADFileName")
        path = member_path(archive, name, bool(item.get("XADIsDirectory")))
        if any(item.get(k) for k in _LSAR_LINK_KEYS):
            raise _refuse(archive, name, "a link")
        if any(item.get(k) for k in _LSAR_SPECIAL_KEYS):
            raise _refuse(archive, name, "a special file")
        kind = _kind_of_mode(int(item.get("XADPosixPermissions") or 0))
        if kind is not None:
            raise _refuse(archive, name, kind)
        entries.append((path, bool(item.get("XADIsDirectory"))))
    return entries


_UNIX_MODE = re.compile(r"(?:^|\s)([-dlcbps])[-rwxsStT]{9}(?:\s|$)")


def _7z_entries(archive: Path, output: str) -> list[tuple[PurePosixPath, bool]]:
    """``7z l -slt``: blocks of ``Key = value`` lines after the ``----------`` line."""
    _, sep, body = output.partition("\n----------\n")
    if not sep:
        raise ExtractionError(f"{archive}: cannot read 7z's listing")
    entries = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(" = ", 1) if " = " in line else (line.rstrip(" ="), "")
            for line in block.splitlines()
            if line.strip()
        )
        if "Path" not in fields:
            continue
        name = fields["Path"]
        path = member_path(archive, name, fields.get("Folder") == "+")
        for key in ("Symbolic Link", "Hard Link", "Link"):
            if fields.get(key, "").strip():
                raise _refuse(archive, name, "a link")
        m = _UNIX_MODE.search(fields.get("Mode", "") + " " + fields.get("Attributes", ""))
        if m and m.group(1) not in "-d":
            raise _refuse(archive, name, {"l": "a link"}.get(m.group(1), "a special file"))
        entries.append((path, fields.get("Folder") == "+"))
    return entries


def rar_plan(archive: Path, tool: str) -> list[tuple[PurePosixPath, bool]]:
    """The members of a .rar, listed by the tool's companion (``lsar -j`` beside ``unar``,
    ``7z l -slt``) and checked; raises before anything is extracted."""
    if Path(tool).name == "unar":
        lister = shutil.which("lsar", path=str(Path(tool).parent)) or shutil.which("lsar")
        if not lister:
            raise ExtractionError(
                f"{archive}: `lsar` (from the package unar) is needed to check the archive "
                "before extracting it, and was not found"
            )
        result = _run([lister, "-j", str(archive)])
        parse = _lsar_entries
    else:
        result = _run([tool, "l", "-slt", str(archive)])
        parse = _7z_entries
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise ExtractionError(f"{archive}: cannot list the archive ({result.returncode}): {output}")
    entries = parse(archive, result.stdout)
    _check_layout(archive, entries)
    return entries


def _extract_rar(archive: Path, dest: Path) -> None:
    tool = find_rar_tool()[0]
    entries = rar_plan(archive, tool)
    with staging(archive, dest) as stage:
        command = _rar_command(tool, archive, stage)
        result = _run(command)
        if result.returncode != 0:
            hint = ""
            if Path(tool).name != "unar":
                hint = " (Debian's 7zip reads RAR only with the non-free `7zip-rar`; try `unar`)"
            output = (result.stderr or result.stdout).strip()[-2000:]
            raise ExtractionError(
                f"{' '.join(command)} failed ({result.returncode}){hint}: {output}"
            )
        check_tree(stage, archive, {path for path, _ in entries})


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def archive_kind(archive: Path) -> str | None:
    name = archive.name.lower()
    if name.endswith(".rar"):
        return "rar"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    return None


def safe_extract(archive: Path | str, dest: Path | str, kind: str | None = None) -> Path:
    """Extract ``archive`` into ``dest`` under the rules of the module docstring: checked
    first, written by condi into a staging folder, moved in complete, or not at all.
    ``kind`` (``tar``, ``zip``, ``rar``) defaults to the file name's suffix. Raises
    :class:`UnsafeArchiveError` for a refused archive, :class:`ExtractionError` for a damaged
    one or a missing tool."""
    archive, dest = Path(archive), Path(dest)
    kind = kind or archive_kind(archive)
    if kind is None:
        raise ExtractionError(f"unknown archive type: {archive}")
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    try:
        if kind == "rar":
            _extract_rar(archive, dest)
        elif kind == "zip":
            _extract_zip(archive, dest)
        else:
            _extract_tar(archive, dest)
    except DAMAGED as exc:
        raise ExtractionError(
            f"{archive} is damaged ({exc}): delete it to download it again"
        ) from exc
    return dest


__all__ = [
    "ExtractionError",
    "RAR_TOOLS",
    "TAR_SUFFIXES",
    "UnsafeArchiveError",
    "archive_kind",
    "check_tree",
    "extract_tar_stream",
    "find_rar_tool",
    "member_path",
    "rar_plan",
    "remove_stale_staging",
    "safe_extract",
    "tar_plan",
    "zip_plan",
]
