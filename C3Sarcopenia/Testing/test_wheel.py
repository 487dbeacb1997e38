"""The pip package on its own: a wheel built from the repository's files, installed into a
new virtual environment, runs 'demo' (shipped models, sample CT) from an unrelated folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from C3SarcopeniaLib import __version__
from conftest import ROOT

# What the wheel is built from; the rest of the repository (data, docs, tests) stays out.
PACKAGE_SOURCES = ("pyproject.toml", "README.md", "models", "C3Sarcopenia/C3SarcopeniaLib",
                   "C3Sarcopenia/Resources/SampleData")


def copy_package_sources(target: Path) -> Path:
    """A clean copy, so the build leaves nothing in the checkout (and misses nothing)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "checkpoints", "*.egg-info")
    for name in PACKAGE_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def run(argv: list, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def new_venv_reusing_this_one(folder: Path) -> Path:
    """A fresh venv that finds torch, MONAI etc. where this interpreter has them (a .pth
    line, so this environment's own editable install of the package is not taken along)."""
    run([sys.executable, "-m", "venv", "--without-pip", folder])
    python = folder / "bin" / "python"
    site_packages = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    Path(site_packages.stdout.strip(), "reuse_test_environment.pth").write_text(
        sysconfig.get_path("purelib") + "\n")
    return python


def test_wheel_installs_and_runs_the_demo_from_anywhere(tmp_path):
    sources = copy_package_sources(tmp_path / "src")
    run([sys.executable, "-m", "pip", "wheel", sources, "--no-deps", "--no-build-isolation",
         "--wheel-dir", tmp_path / "dist", "--quiet"])
    wheel, = (tmp_path / "dist").glob("c3sarcopenia-*.whl")
    assert wheel.name.startswith(f"c3sarcopenia-{__version__}-")
    python = new_venv_reusing_this_one(tmp_path / "venv")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--quiet", wheel])
    shutil.rmtree(sources)  # the installed package must not need the sources

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = tmp_path / "venv" / "bin" / "c3sarcopenia"
    located = run([python, "-c", "import C3SarcopeniaLib; print(C3SarcopeniaLib.__file__)"],
                  elsewhere)
    assert Path(located.stdout.strip()).is_relative_to(tmp_path / "venv")
    assert run([command, "--version"], elsewhere).stdout.strip() == f"c3sarcopenia {__version__}"
    assert "--slice-k" in run([command, "predict", "--help"], elsewhere).stdout
    demo = run([command, "demo", "--out", "demo"], elsewhere)
    assert "shipped_sample_data" in demo.stdout and "Muscle CSA" in demo.stdout
    assert (elsewhere / "demo" / "result.json").is_file()
