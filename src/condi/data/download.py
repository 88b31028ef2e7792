"""Resumable, size-checked downloads and archive extraction for UCF-101 and Kinetics (docs/method.md, section 7).

Downloads (:func:`download_file`) go to ``<dest>.part`` and are resumed with HTTP ``Range``
requests after a dropped connection, a retry or a killed process; the ``.part`` file is renamed to
its final name only once its size matches the size the server announced (``Content-Length`` or the
total of ``Content-Range``) and, when given, the expected size. A final file that exists is
therefore complete and is skipped. :func:`download_many` runs a thread pool over many files; a
``KeyboardInterrupt`` (or kill) stops it, and running it again skips the finished files and
resumes the partial ones.

Extraction (:func:`extract_archive`, through :mod:`condi.data.archives`: every member checked
before anything is written, nothing partial left): ``.zip`` and ``.tar``/``.tar.gz``/``.tgz``
member by member by condi itself, ``.rar`` with ``unar`` or ``7z``/``7zz`` found on ``PATH``
(Debian package ``unar``; Debian's ``7zip`` reads RAR only with the non-free ``7zip-rar``). After a successful extraction a marker
``<archive>.extracted`` is written beside the archive, so a restart skips the archive even when it
was deleted after extraction (Kinetics tarballs are, by default, to halve the disk space needed).

Layouts written:

- :func:`download_ucf101`: ``root/UCF-101/<Class>/*.avi`` and ``root/ucfTrainTestlist/`` (the
  layout :mod:`condi.data.ucf101` reads); archives in ``root/downloads/``.
- :func:`download_kinetics`: videos of each split in ``root/<split>/`` (flat, as the CVDF tarballs
  hold them), annotation CSVs in ``root/annotations/{train,val,test}.csv`` (the layout
  :mod:`condi.data.kinetics` reads); path lists and tarballs in ``root/downloads/<split>/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from condi.data.archives import RAR_TOOLS as RAR_TOOLS  # re-exported: the old home
from condi.data.archives import TAR_SUFFIXES as TAR_SUFFIXES
from condi.data.archives import ExtractionError as ExtractionError
from condi.data.archives import UnsafeArchiveError as UnsafeArchiveError
from condi.data.archives import archive_kind, find_rar_tool, safe_extract

log = logging.getLogger(__name__)

# UCF-101, from the UCF Center for Research in Computer Vision.
UCF101_VIDEOS_URL = "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar"
UCF101_SPLITS_URL = "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip"

# Kinetics, hosted by the CVDF: per version and split, a text file listing one tarball URL a line.
KINETICS_BASE_URLS = {
    400: "https://s3.amazonaws.com/kinetics/400",
    600: "https://s3.amazonaws.com/kinetics/600",
    700: "https://s3.amazonaws.com/kinetics/700_2020",
}
KINETICS_PATH_LIST_URLS = {
    400: {
        "train": "https://s3.amazonaws.com/kinetics/400/train/k400_train_path.txt",
        "val": "https://s3.amazonaws.com/kinetics/400/val/k400_val_path.txt",
        "test": "https://s3.amazonaws.com/kinetics/400/test/k400_test_path.txt",
    },
    600: {
        "train": "https://s3.amazonaws.com/kinetics/600/train/k600_train_path.txt",
        "val": "https://s3.amazonaws.com/kinetics/600/val/k600_val_path.txt",
        "test": "https://s3.amazonaws.com/kinetics/600/test/k600_test_path.txt",
    },
    700: {
        "train": "https://s3.amazonaws.com/kinetics/700_2020/train/k700_2020_train_path.txt",
        "val": "https://s3.amazonaws.com/kinetics/700_2020/val/k700_2020_val_path.txt",
        "test": "https://s3.amazonaws.com/kinetics/700_2020/test/k700_2020_test_path.txt",
    },
}
# Annotation CSVs ``label,youtube_id,time_start,time_end,split[,is_cc]``. For Kinetics-600 the CVDF
# also serves ``train.txt``/``val.txt``, said to be more complete than its CSVs; they are not used.
KINETICS_ANNOTATION_URLS = {
    version: {split: f"{base}/annotations/{split}.csv" for split in ("train", "val", "test")}
    for version, base in KINETICS_BASE_URLS.items()
}
KINETICS_SPLITS = ("train", "val", "test")

# Files whose size (and, where known, SHA-256) is fixed: a download of one of these URLs that
# ends with another size or digest is refused. Sources: the server's Content-Length for
# UCF101.rar (6,932,971,618 bytes); TensorFlow Datasets' url_checksums/ucf101.txt for the
# splits archive.
KNOWN_FILES: dict[str, tuple[int, str | None]] = {
    UCF101_VIDEOS_URL: (6_932_971_618, None),
    UCF101_SPLITS_URL: (
        113_943,
        "5c0d1a53b8ed364a2ac830a73f405e51bece7d98ce1254fd19ed4a36b224bd27",
    ),
}

CHUNK_SIZE = 1 << 20
USER_AGENT = "condi-downloader/1.0"
ALLOWED_SCHEMES = ("http", "https")


class DownloadError(RuntimeError):
    """A download that could not be completed (after retries)."""


class SizeMismatchError(DownloadError):
    """A file whose size is not the expected one: never retried, never renamed to its final name."""


class ChecksumMismatchError(SizeMismatchError):
    """A file whose SHA-256 is not the expected one: never retried, never renamed."""


class DownloadCancelled(DownloadError):
    """The download was stopped through its ``stop`` event."""


@dataclass(frozen=True)
class DownloadJob:
    """One file to fetch: ``url`` to ``dest``; ``expected_size`` in bytes and ``sha256`` (hex)
    when known."""

    url: str
    dest: Path
    expected_size: int | None = None
    sha256: str | None = None


# ----------------------------------------------------------------------------------------------
# Single-file download
# ----------------------------------------------------------------------------------------------


def part_path(dest: Path) -> Path:
    """The temporary file a download of ``dest`` is written to until complete."""
    return dest.with_name(dest.name + ".part")


def meta_path(dest: Path) -> Path:
    """Beside the ``.part``: the URL and the validators (ETag, Last-Modified, size) of the
    server's file it holds the beginning of, so that a resume asks for the rest of *that* file
    (``If-Range``) and never splices two versions."""
    return dest.with_name(dest.name + ".part.meta")


def check_url(url: str, source: str | None = None) -> None:
    """Only ``http``/``https`` URLs with a host are fetched (no ``file:``, ``ftp:``,
    ``data:``...); ``source`` (a list file and line) is named in the error."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.netloc:
        where = f"{source}: " if source else ""
        raise DownloadError(f"{where}{url!r}: refused: only http(s) URLs are downloaded")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are followed to http(s) URLs only (urllib's default also follows ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            check_url(newurl)
        except DownloadError as exc:
            raise urllib.error.HTTPError(
                newurl, code, f"redirect refused: {exc}", headers, fp
            ) from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """An opener that speaks http and https only (no file/ftp/data handlers at all)."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(context=context),
        urllib.request.HTTPDefaultErrorHandler(),
        _HttpOnlyRedirects(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _ssl_context(insecure: bool) -> ssl.SSLContext | None:
    if not insecure:
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _content_range_total(header: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` (or ``bytes */TOTAL``) -> (START, TOTAL); None where absent."""
    if not header or not header.startswith("bytes "):
        return None, None
    span, _, total = header[len("bytes ") :].partition("/")
    start = None if span.strip() == "*" else int(span.split("-")[0])
    return start, (None if total.strip() in ("", "*") else int(total))


def _read_meta(dest: Path, url: str) -> dict | None:
    try:
        meta = json.loads(meta_path(dest).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("url") == url else None


def _validator(meta: dict | None) -> str | None:
    """What ``If-Range`` may carry: a strong ETag, else the Last-Modified date."""
    if not meta:
        return None
    etag = meta.get("etag")
    if isinstance(etag, str) and etag and not etag.startswith("W/"):
        return etag
    modified = meta.get("last_modified")
    return modified if isinstance(modified, str) and modified else None


def _restart(dest: Path, why: str) -> None:
    log.warning("%s: %s; downloading it again from the start", dest.name, why)
    part_path(dest).unlink(missing_ok=True)
    meta_path(dest).unlink(missing_ok=True)


@dataclass
class _Fetched:
    total: int | None  # the size the server announced for the whole file
    framed: bool  # a cut-short body would have been noticed (a length or chunked encoding)


def _fetch_once(
    url: str,
    dest: Path,
    expected_size: int | None,
    timeout: float,
    context: ssl.SSLContext | None,
    stop: threading.Event | None,
) -> _Fetched:
    """One request: append to the ``.part`` from its current size, if the server still has
    the same file (``If-Range``), else start over; returns what the server announced."""
    part = part_path(dest)
    offset = part.stat().st_size if part.exists() else 0
    meta = _read_meta(dest, url)
    if offset and expected_size is not None and offset > expected_size:
        _restart(dest, f"partial file larger than expected ({offset} > {expected_size})")
        offset, meta = 0, None
    if offset and _validator(meta) is None:
        _restart(dest, "the partial file has no ETag/Last-Modified to check it against")
        offset, meta = 0, None
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = _validator(meta)
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _opener(context).open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range not satisfiable: the part may already be complete.
            _, total = _content_range_total(exc.headers.get("Content-Range"))
            if total is not None and total == offset and total == meta.get("total", total):
                return _Fetched(total, True)
            _restart(dest, f"the server refused to resume at byte {offset}")
            return _fetch_once(url, dest, expected_size, timeout, context, stop)
        raise
    with response:
        status = response.status
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        if status == 206:
            start, total = _content_range_total(response.headers.get("Content-Range"))
            if start != offset:
                raise HTTPException(f"{url}: asked for byte {offset}, server sent from {start}")
            changed = (meta.get("etag") and etag and etag != meta["etag"]) or (
                meta.get("total") is not None and total is not None and total != meta["total"]
            )
            if changed:  # a server that ignored If-Range: never splice two versions
                _restart(dest, "the file changed on the server since the partial download")
                return _fetch_once(url, dest, expected_size, timeout, context, stop)
            mode = "ab"
        else:
            # 200: the whole file (the server ignored Range, or If-Range said it changed)
            if offset:
                log.info("%s: the server sent the whole file; starting over", url)
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            offset = 0
            mode = "wb"
        if expected_size is not None and total is not None and total != expected_size:
            raise SizeMismatchError(
                f"{url}: server announces {total} bytes, expected {expected_size}"
            )
        if mode == "wb":
            meta = {"url": url, "etag": etag, "last_modified": modified, "total": total}
            meta_path(dest).write_text(json.dumps(meta) + "\n")
        if offset:
            log.info("%s: resuming at byte %d of %s", url, offset, total)
        framed = total is not None or bool(getattr(response, "chunked", False))
        with open(part, mode) as fh:
            while True:
                if stop is not None and stop.is_set():
                    raise DownloadCancelled(f"{url}: cancelled")
                block = response.read(CHUNK_SIZE)
                if not block:
                    break
                fh.write(block)
    return _Fetched(total, framed)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_SIZE):
            h.update(block)
    return h.hexdigest()


def download_file(
    url: str,
    dest: Path | str,
    expected_size: int | None = None,
    *,
    sha256: str | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    insecure: bool = False,
    stop: threading.Event | None = None,
) -> Path:
    """Download ``url`` (http or https only) to ``dest``, resuming a ``dest.part`` left by an
    earlier try when the server still has the same file.

    A ``dest`` that already exists is taken as complete (only complete files are renamed to it)
    and is returned at once, after a size check when ``expected_size`` is given. Connection
    errors, truncated bodies and 5xx answers are retried ``retries`` times with exponential
    ``backoff`` seconds, each retry resuming where the last one stopped (``Range`` with
    ``If-Range``: a file changed on the server is downloaded again from the start, never
    spliced). A file is complete when it has the size the server announced; a body without a
    length (no ``Content-Length``, no chunked encoding: a cut connection looks like the end)
    is accepted only when ``expected_size`` or ``sha256`` confirms it. Raises
    :class:`SizeMismatchError` when the server's size or the final size differs from
    ``expected_size``, :class:`ChecksumMismatchError` when the SHA-256 differs from
    ``sha256``, and :class:`DownloadError` for a URL that is not http(s), a body that cannot
    be verified, or when the retries run out. ``insecure`` skips TLS certificate checks (the
    UCF site has served an incomplete certificate chain in the past).
    """
    check_url(url)
    dest = Path(dest)
    if dest.exists():
        size = dest.stat().st_size
        if expected_size is not None and size != expected_size:
            raise SizeMismatchError(
                f"{dest} exists with {size} bytes, expected {expected_size}: delete it to download again"
            )
        log.debug("%s: already downloaded", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    context = _ssl_context(insecure)
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            log.warning(
                "%s: retry %d/%d in %.1f s after: %s", url, attempt, retries, delay, last_error
            )
            if stop is not None and stop.wait(delay):
                raise DownloadCancelled(f"{url}: cancelled")
            if stop is None:
                time.sleep(delay)
        try:
            fetched = _fetch_once(url, dest, expected_size, timeout, context, stop)
        except (SizeMismatchError, DownloadCancelled):
            raise
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            last_error = exc
            continue
        except (urllib.error.URLError, HTTPException, OSError, TimeoutError) as exc:
            last_error = exc
            continue
        size = part.stat().st_size if part.exists() else 0
        total = fetched.total
        if total is None and expected_size is not None:
            total = expected_size  # no announced length: the known size says when it is complete
        elif total is None and not fetched.framed and sha256 is None:
            _restart(dest, "unverifiable body")
            raise DownloadError(
                f"{url}: the server sent no Content-Length (nor chunked encoding) and no size "
                "or checksum of the file is known, so a connection cut short cannot be told "
                "from a complete file: not accepted"
            )
        if total is not None and size < total:
            last_error = DownloadError(f"connection closed after {size} of {total} bytes")
            continue
        if total is not None and size != total:
            part.unlink()
            last_error = DownloadError(f"received {size} bytes, server announced {total}")
            if expected_size is not None and fetched.total is None:
                raise SizeMismatchError(f"{url}: received {size} bytes, expected {expected_size}")
            continue
        if expected_size is not None and size != expected_size:
            raise SizeMismatchError(f"{url}: received {size} bytes, expected {expected_size}")
        if sha256 is not None:
            digest = file_sha256(part)
            if digest != sha256.lower():
                _restart(dest, "checksum mismatch")
                raise ChecksumMismatchError(
                    f"{url}: SHA-256 of the {size} bytes received is {digest}, expected {sha256}"
                )
        os.replace(part, dest)
        meta_path(dest).unlink(missing_ok=True)
        log.info("downloaded %s (%d bytes)", dest, size)
        return dest
    raise DownloadError(f"{url}: gave up after {retries + 1} tries: {last_error}")


def download_many(
    jobs: Iterable[DownloadJob],
    *,
    workers: int = 4,
    after: Callable[[DownloadJob], None] | None = None,
    **kwargs,
) -> list[Path]:
    """Download ``jobs`` with ``workers`` threads; return the paths, in the jobs' order.

    ``after(job)`` runs in the worker right after each download (e.g. extraction). Finished files
    are skipped (see :func:`download_file`), so a killed run is resumed by running it again.
    A ``KeyboardInterrupt`` sets the shared stop event, cancels the queued jobs and re-raises;
    ``.part`` files stay for the next run. Failures of single jobs don't stop the others: they
    are collected and raised together as one :class:`DownloadError` at the end.
    """
    jobs = list(jobs)
    stop = kwargs.pop("stop", None) or threading.Event()

    def run(job: DownloadJob) -> Path:
        path = download_file(
            job.url, job.dest, job.expected_size, sha256=job.sha256, stop=stop, **kwargs
        )
        if after is not None:
            after(job)
        return path

    results: dict[int, Path] = {}
    errors: list[str] = []
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="download")
    try:
        futures = {pool.submit(run, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - reported together below
                errors.append(f"{jobs[i].url}: {exc}")
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if errors:
        raise DownloadError(f"{len(errors)} of {len(jobs)} downloads failed:\n" + "\n".join(errors))
    return [results[i] for i in range(len(jobs))]


# ----------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------


def extracted_marker(archive: Path) -> Path:
    """The file whose presence says ``archive`` was extracted completely."""
    return archive.with_name(archive.name + ".extracted")


def extract_archive(archive: Path | str, dest: Path | str, *, force: bool = False) -> Path:
    """Extract ``archive`` into ``dest`` (made if needed); skip when already extracted.

    The extraction is :func:`condi.data.archives.safe_extract`: every member is checked
    before anything is written (no links, devices, absolute paths or ``..``), and only a
    complete extraction reaches ``dest``. Writes :func:`extracted_marker` after it succeeded,
    never after a refused or failed one; ``force`` extracts again regardless.
    """
    archive, dest = Path(archive), Path(dest)
    marker = extracted_marker(archive)
    if marker.exists() and not force:
        log.debug("%s: already extracted", archive)
        return dest
    if not archive.exists():
        raise FileNotFoundError(f"archive not found: {archive}")
    if archive_kind(archive) is None:
        raise ExtractionError(f"unknown archive type: {archive}")
    log.info("extracting %s into %s", archive, dest)
    safe_extract(archive, dest)
    marker.write_text("ok\n")
    return dest


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------


def _name_from_url(url: str) -> str:
    """The file name a URL is saved under (the last path segment, as is): never empty, ``.``
    or ``..``, and without control characters."""
    name = PurePosixPath(urlsplit(url).path).name
    if not name or name in (".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DownloadError(f"no usable file name in URL {url!r}")
    return name


def _known_job(url: str, dest: Path) -> DownloadJob:
    """A job with the size and checksum :data:`KNOWN_FILES` keeps for ``url``, if any."""
    size, digest = KNOWN_FILES.get(url, (None, None))
    return DownloadJob(url, dest, size, digest)


def download_ucf101(
    root: Path | str,
    *,
    videos_url: str = UCF101_VIDEOS_URL,
    splits_url: str = UCF101_SPLITS_URL,
    keep_archives: bool = True,
    **kwargs,
) -> Path:
    """Download and extract UCF-101 into ``root`` (``UCF-101/`` and ``ucfTrainTestlist/``).

    Needs ``unar`` or ``7z`` for the .rar (:func:`find_rar_tool`); checked before downloading
    6.5 GB. The official archives are checked against the size (and checksum) kept in
    :data:`KNOWN_FILES`. Extra keyword arguments go to :func:`download_many`.
    """
    root = Path(root)
    downloads = root / "downloads"
    jobs = [
        _known_job(videos_url, downloads / _name_from_url(videos_url)),
        _known_job(splits_url, downloads / _name_from_url(splits_url)),
    ]
    if not extracted_marker(jobs[0].dest).exists():
        find_rar_tool()
    pending = [job for job in jobs if not extracted_marker(job.dest).exists()]
    download_many(pending, **kwargs)
    for job in jobs:
        extract_archive(job.dest, root)
        if not keep_archives and job.dest.exists():
            job.dest.unlink()
    return root


def read_url_list(path: Path) -> list[str]:
    """URLs in a text file, one a line; blank lines and ``#`` comments skipped. A line that is
    not an http(s) URL with a usable file name refuses the whole list (before any download),
    naming the file and the line."""
    urls = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        check_url(line, f"{path}:{number}")
        try:
            _name_from_url(line)
        except DownloadError as exc:
            raise DownloadError(f"{path}:{number}: {exc}") from None
        urls.append(line)
    return urls


def download_kinetics(
    root: Path | str,
    version: int = 400,
    splits: Sequence[str] = ("train", "val"),
    *,
    workers: int = 4,
    keep_archives: bool = False,
    path_list_urls: dict[str, str] | None = None,
    annotation_urls: dict[str, str] | None = None,
    **kwargs,
) -> Path:
    """Download Kinetics-``version`` (400, 600 or 700-2020) from the CVDF lists into ``root``.

    For each split in ``splits`` (of ``train``, ``val``, ``test``; docs/method.md, section 5 uses the
    official ``val`` as the test set, so ``test`` is not needed): fetch the split's path list,
    download its tarballs in parallel into ``root/downloads/<split>/`` and extract each into
    ``root/<split>/`` as soon as it is complete (then delete it unless ``keep_archives``). All
    three annotation CSVs go to ``root/annotations/``. Killed and run again, it skips extracted
    tarballs and resumes partial ones. ``path_list_urls``/``annotation_urls`` override the
    module constants (tests, mirrors). Extra keyword arguments go to :func:`download_file`.
    """
    if version not in KINETICS_PATH_LIST_URLS:
        raise ValueError(
            f"Kinetics version must be one of {sorted(KINETICS_PATH_LIST_URLS)}, got {version}"
        )
    unknown = sorted(set(splits) - set(KINETICS_SPLITS))
    if unknown:
        raise ValueError(f"unknown Kinetics splits {unknown}; choose from {KINETICS_SPLITS}")
    root = Path(root)
    path_list_urls = path_list_urls or KINETICS_PATH_LIST_URLS[version]
    annotation_urls = annotation_urls or KINETICS_ANNOTATION_URLS[version]

    annotation_jobs = [
        DownloadJob(url, root / "annotations" / f"{split}.csv")
        for split, url in annotation_urls.items()
    ]
    download_many(annotation_jobs, workers=workers, **kwargs)

    for split in splits:
        downloads = root / "downloads" / split
        list_url = path_list_urls[split]
        list_path = download_file(list_url, downloads / _name_from_url(list_url), **kwargs)
        out_dir = root / split

        def extract(job: DownloadJob, out_dir: Path = out_dir) -> None:
            extract_archive(job.dest, out_dir)
            if not keep_archives:
                job.dest.unlink(missing_ok=True)

        jobs = [
            DownloadJob(url, downloads / _name_from_url(url)) for url in read_url_list(list_path)
        ]
        pending = [job for job in jobs if not extracted_marker(job.dest).exists()]
        log.info("Kinetics-%d %s: %d tarballs, %d to do", version, split, len(jobs), len(pending))
        download_many(pending, workers=workers, after=extract, **kwargs)
    return root
