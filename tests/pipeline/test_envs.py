"""The rules' conda environments (issue 15.7): generated from pyproject.toml and the pin file,
current, CPU and CUDA variants, and condi installed from an absolute path by a post-deploy
script (no path relative to the env file, which Snakemake copies into its --conda-prefix)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from condi import condaenv
from tests.conftest import REPO


def test_the_envs_are_current():
    assert condaenv.stale(REPO) == []


def test_every_pyproject_dependency_is_pinned_in_both_variants():
    _, deps = condaenv.pyproject(REPO)
    lock = condaenv.read_lock(REPO / condaenv.LOCK)
    for variant in ("cpu", "cuda"):
        env = yaml.safe_load((REPO / condaenv.ENV_DIR / f"condi-{variant}.yaml").read_text())
        (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
        pins = dict(line.split("==") for line in pip if not line.startswith("-"))
        assert pins == lock.pins
        for dep in deps:
            from packaging.requirements import Requirement

            req = Requirement(dep)
            assert req.specifier.contains(pins[condaenv._canonical(req.name)]), dep
        assert f"python={lock.python}" in env["dependencies"]
        # nothing relative to the env file (Snakemake copies it into the --conda-prefix)
        assert not any(line.startswith(("-e", ".", "/")) or "../" in line for line in pip)
        (index,) = [line for line in pip if line.startswith("--extra-index-url")]
        assert index.endswith("/whl/cpu" if variant == "cpu" else "/whl/cu130")
        assert not any(name.startswith(("nvidia-", "cuda-")) for name in pins)
    assert "driver >= 580" in (REPO / condaenv.ENV_DIR / "condi-cuda.yaml").read_text()


def test_lock_python_meets_requires_python():
    requires, _ = condaenv.pyproject(REPO)
    assert requires == ">=3.11"  # Snakemake 9.27 and the SLURM plugin need 3.11
    assert condaenv.read_lock(REPO / condaenv.LOCK).python == "3.11"


@pytest.fixture
def checkout(tmp_path):
    """pyproject.toml and workflow/envs of this repository, to edit."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / condaenv.ENV_DIR, tmp_path / condaenv.ENV_DIR)
    return tmp_path


def envs(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "condi", "pipeline", "envs", "--root", str(cwd), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_dependency_change_is_caught_until_locked(checkout):
    """A new dependency (or a tightened one) fails --check until the pin file has it; pinned,
    the env files change (so Snakemake's env hash does: a new env is built)."""
    text = (checkout / "pyproject.toml").read_text()
    (checkout / "pyproject.toml").write_text(text.replace('"scipy>=1.11",', '"scipy>=99",'))
    out = envs("--check", cwd=checkout)
    assert out.returncode == 1 and "does not satisfy 'scipy>=99'" in out.stderr, out.stderr
    (checkout / "pyproject.toml").write_text(text.replace('"scipy>=1.11",', '"rich-new-dep",'))
    out = envs("--check", cwd=checkout)
    assert out.returncode == 1 and "rich-new-dep (pyproject) is not pinned" in out.stderr

    before = (checkout / condaenv.ENV_DIR / "condi-cpu.yaml").read_text()
    lock = checkout / condaenv.LOCK
    lock.write_text(lock.read_text() + "rich-new-dep==1.0\n")
    assert envs(cwd=checkout).returncode == 0
    after = (checkout / condaenv.ENV_DIR / "condi-cpu.yaml").read_text()
    assert after != before and "      - rich-new-dep==1.0\n" in after
    assert envs("--check", cwd=checkout).returncode == 0


def test_an_edited_env_file_is_not_current(checkout):
    env = checkout / condaenv.ENV_DIR / "condi-cuda.yaml"
    env.write_text(env.read_text().replace("torch==", "torch>="))
    out = envs("--check", cwd=checkout)
    assert out.returncode == 1 and "condi-cuda.yaml is not up to date" in out.stderr


def test_post_deploy_installs_condi_from_the_exported_checkout(tmp_path):
    """The script refuses to run without CONDI_SOURCE, and the Snakefile's export gives it the
    absolute checkout (and the checkout's src first on PYTHONPATH)."""
    script = REPO / condaenv.ENV_DIR / "condi-cpu.post-deploy.sh"
    assert (
        'pip install --no-deps --no-build-isolation --quiet "$CONDI_SOURCE"' in script.read_text()
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode != 0 and "CONDI_SOURCE" in out.stderr
    code = (
        "import os, sys; from condi.condaenv import export_checkout; "
        "os.environ['PYTHONPATH'] = '/x'; export_checkout(sys.argv[1]); "
        "print(os.environ['CONDI_SOURCE']); print(os.environ['PYTHONPATH'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "workflow" / "..")],
        capture_output=True,
        text=True,
        check=True,
    )
    source, path = out.stdout.split()
    assert source == str(REPO)
    assert path.split(":") == [str(REPO / "src"), "/x"]
