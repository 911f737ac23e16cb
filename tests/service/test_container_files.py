"""The Dockerfile and bench/container.sh, checked without building: the base image is a build argument, the
build copies every package pyproject installs, and the script parses (and passes shellcheck where installed).

The real build (debootstrap + buildah, minutes) is `sudo bench/container.sh`; its last result is in README.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SCRIPT = ROOT / "bench" / "container.sh"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def test_dockerfile_takes_the_base_image_as_a_build_argument():
    ins = _instructions()
    froms = [i for i, (word, _) in enumerate(ins) if word == "FROM"]
    assert len(froms) == 2, "multi-stage: build and runtime"
    assert ("ARG", "BASE=python:3.11-slim") in ins[: froms[0]], "ARG BASE=python:3.11-slim before the first FROM"
    for i in froms:
        assert ins[i][1].split()[0] == "${BASE}", ins[i]
    text = DOCKERFILE.read_text()
    # Portable across python:3.11-slim (/usr/local/bin) and Debian's python3 (/usr/bin): no fixed interpreter path.
    assert "/usr/local/bin/python" not in text


def test_dockerfile_copies_every_package_that_pyproject_installs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copies = {args.split()[0] for word, args in _instructions() if word == "COPY" and "--from" not in args}
    assert packages <= copies, f"not copied into the build stage: {sorted(packages - copies)}"


def test_dockerfile_warm_run_does_not_take_the_fixed_metrics_port():
    run = next(args for word, args in _instructions() if word == "RUN" and "--duration" in args)
    assert re.search(r"metrics_port = 0", run) and "/tmp/warm/engine.toml" in run


def test_container_script_parses_and_is_executable():
    assert os.access(SCRIPT, os.X_OK)
    text = SCRIPT.read_text()
    assert "set -euo pipefail" in text
    assert "--build-arg" in text and "BASE=" in text
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_container_script_passes_shellcheck():
    proc = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
