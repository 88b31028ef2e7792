"""The conda environments of the Snakemake rules (``snakemake --use-conda``), generated from
pyproject.toml and a pin file (docs/cluster.md, "Software on the nodes").

* ``workflow/envs/requirements.lock`` is the pin file: every Python package the project needs
  at run time (pyproject's ``dependencies`` and everything they require, for Linux x86-64 and
  the Python version it names), each at the version the test suite passed with. ``condi
  pipeline envs --lock`` writes it from the environment it runs in. Torch's own platform
  libraries (``nvidia-*``, ``cuda-*``, ``triton``) are left to each variant's package index.
* ``workflow/envs/condi-cpu.yaml`` and ``condi-cuda.yaml`` are the two variants, each holding
  every pin, so that any change of the dependencies changes the file and Snakemake (whose env
  hash is the file's content, its post-deploy script's and its pin file's) builds the
  environment anew. The CPU variant takes torch from PyTorch's CPU index (no CUDA libraries on
  CPU nodes); the CUDA variant from its CUDA 13.0 index, whose wheels need an NVIDIA driver
  >= 580 on the GPU nodes. The rules pick one per job: the CUDA variant for a job that asks
  for a GPU (params ``device: cuda``), the CPU variant otherwise.
* ``condi-cpu.post-deploy.sh`` / ``condi-cuda.post-deploy.sh`` install condi itself into the
  new environment from the checkout that creates it (an absolute path: the Snakefile exports
  ``CONDI_SOURCE``), never from a path relative to the env file, which Snakemake copies into
  its ``--conda-prefix``. The Snakefile also puts that checkout's ``src`` first on every job's
  ``PYTHONPATH``, so an environment shared by several checkouts (a shared ``--conda-prefix``)
  still runs each checkout's own code.

``condi pipeline envs`` writes the variants and scripts from pyproject.toml and the pin file;
``--check`` (CI) fails when they are not current or when the pin file does not satisfy
pyproject's dependencies (a dependency added or changed without ``--lock``).
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = Path("workflow/envs")
LOCK = ENV_DIR / "requirements.lock"
# torch's platform libraries: each variant's index brings the ones its torch build needs
PLATFORM = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
# conda packages every variant holds (ffmpeg: the command-line tool, for users' own videos)
CONDA_PACKAGES = ("pip", "setuptools", "wheel", "ffmpeg")


@dataclass(frozen=True)
class Variant:
    name: str
    index: str  # the package index torch comes from (pip --extra-index-url)
    about: str


VARIANTS = (
    Variant(
        "cpu",
        "https://download.pytorch.org/whl/cpu",
        "CPU nodes: torch's CPU wheels (+cpu), no CUDA libraries.",
    ),
    Variant(
        "cuda",
        "https://download.pytorch.org/whl/cu130",
        "GPU nodes: torch's CUDA 13.0 wheels (+cu130, CUDA libraries included), which need an\n"
        "# NVIDIA driver >= 580 on the node (`nvidia-smi` shows it). For an older driver, point\n"
        "# `index` in src/condi/condaenv.py at the PyTorch index of a CUDA version it supports\n"
        "# (https://pytorch.org/get-started/locally/) and run `condi pipeline envs`.",
    ),
)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject(root: Path) -> tuple[str, list[str]]:
    """``(requires-python, dependencies)`` of ``root/pyproject.toml``."""
    with open(root / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    return project["requires-python"], list(project["dependencies"])


# -- the pin file ---------------------------------------------------------------------------


@dataclass
class Lock:
    python: str  # major.minor
    pins: dict[str, str]  # canonical name -> version


def installed_closure(requirements: list[str]) -> dict[str, str]:
    """``{name: version}`` of ``requirements`` and everything they require, as installed in this
    interpreter (markers evaluated here, extras followed), without torch's platform libraries."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = _canonical(req.name)
        key = (name, frozenset(req.extras))
        if key in seen or PLATFORM.match(name):
            continue
        seen.add(key)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError as exc:
            raise ValueError(f"{req.name} is required but not installed here") from exc
        pins[name] = dist.version.split("+")[0]  # a local label (+cu130) belongs to an index
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if sub.marker is None or any(
                sub.marker.evaluate({"extra": e}) for e in (*req.extras, "")
            ):
                todo.append(sub)
    return dict(sorted(pins.items()))


def render_lock(lock: Lock) -> str:
    lines = [
        "# The pin file of the conda environments (src/condi/condaenv.py): every package condi",
        "# needs at run time, at the version the tests passed with, for Linux x86-64 and the",
        "# Python below. Written by `condi pipeline envs --lock` in a working environment; the",
        "# environments in this folder are generated from it (`condi pipeline envs`).",
        f"# python {lock.python}",
    ]
    lines += [f"{name}=={version}" for name, version in lock.pins.items()]
    return "\n".join(lines) + "\n"


def read_lock(path: Path) -> Lock:
    python, pins = None, {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if m := re.fullmatch(r"# python (\d+\.\d+)", line.strip()):
            python = m.group(1)
        elif line.strip() and not line.startswith("#"):
            name, sep, version = line.strip().partition("==")
            if not sep or not version:
                raise ValueError(f"{path}:{n}: expected NAME==VERSION, not {line!r}")
            pins[_canonical(name)] = version
    if python is None:
        raise ValueError(f"{path}: no '# python X.Y' line")
    return Lock(python, pins)


def lock_problems(root: Path, lock: Lock) -> list[str]:
    """What in the pin file contradicts pyproject.toml (empty when it satisfies it)."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    requires_python, deps = pyproject(root)
    problems = []
    if not SpecifierSet(requires_python).contains(f"{lock.python}.0"):
        problems.append(f"python {lock.python} is not {requires_python} (pyproject)")
    for dep in deps:
        req = Requirement(dep)
        version = lock.pins.get(_canonical(req.name))
        if version is None:
            problems.append(f"{req.name} (pyproject) is not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} does not satisfy {dep!r} (pyproject)")
    return problems


def make_lock(root: Path) -> Lock:
    """The pin file from this interpreter's installed packages."""
    _, deps = pyproject(root)
    return Lock(f"{sys.version_info.major}.{sys.version_info.minor}", installed_closure(deps))


# -- the environments -----------------------------------------------------------------------


def render_env(variant: Variant, lock: Lock) -> str:
    pins = "\n".join(f"      - {name}=={version}" for name, version in lock.pins.items())
    return (
        "# Generated by `condi pipeline envs` from pyproject.toml and requirements.lock (the pin\n"
        "# file): do not edit; src/condi/condaenv.py says how. The environment of the rules'\n"
        "# jobs under `snakemake --use-conda` (docs/cluster.md, 'Software on the nodes'):\n"
        f"# {variant.about}\n"
        "# condi itself is installed by the post-deploy script beside this file.\n"
        f"name: condi-{variant.name}\n"
        "channels:\n"
        "  - conda-forge\n"
        "  - nodefaults\n"
        "dependencies:\n"
        f"  - python={lock.python}\n" + "".join(f"  - {p}\n" for p in CONDA_PACKAGES) + "  - pip:\n"
        f"      - --extra-index-url {variant.index}\n"
        f"{pins}\n"
    )


POST_DEPLOY = """\
#!/usr/bin/env bash
# Generated by `condi pipeline envs` (src/condi/condaenv.py): do not edit. Snakemake runs it
# once in the new environment. It installs condi from the checkout that runs Snakemake: the
# Snakefile exports CONDI_SOURCE, its absolute path (Snakemake copies the env file into the
# --conda-prefix, so no path relative to it would do). Its dependencies are the env file's.
set -euo pipefail
: "${CONDI_SOURCE:?not set: create this environment through the condi Snakefile}"
python -m pip install --no-deps --no-build-isolation --quiet "$CONDI_SOURCE"
"""


def export_checkout(basedir: str | Path) -> None:
    """What the Snakefile exports to its jobs (local ones inherit its environment; SLURM's are
    submitted with ``--export=ALL``): ``CONDI_SOURCE``, the checkout for the post-deploy
    scripts, and, when it holds condi's sources, its ``src`` first on ``PYTHONPATH``."""
    import os

    base = Path(basedir).resolve()
    os.environ["CONDI_SOURCE"] = str(base)
    src = base / "src"
    if (src / "condi").is_dir():
        rest = [
            p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(src)
        ]
        os.environ["PYTHONPATH"] = os.pathsep.join([str(src), *rest])


def rendered(root: Path) -> dict[Path, str]:
    """``{path relative to root: text}`` of every generated file."""
    lock = read_lock(root / LOCK)
    out: dict[Path, str] = {}
    for v in VARIANTS:
        out[ENV_DIR / f"condi-{v.name}.yaml"] = render_env(v, lock)
        out[ENV_DIR / f"condi-{v.name}.post-deploy.sh"] = POST_DEPLOY
    return out


def stale(root: Path) -> list[str]:
    """Why the generated files are not current (empty when they are)."""
    problems = lock_problems(root, read_lock(root / LOCK))
    for rel, text in rendered(root).items():
        path = root / rel
        if not path.is_file() or path.read_text() != text:
            problems.append(f"{rel} is not up to date")
    return problems


def write(root: Path) -> list[Path]:
    written = []
    for rel, text in rendered(root).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            written.append(rel)
        if rel.suffix == ".sh":
            path.chmod(0o755)
    return written
