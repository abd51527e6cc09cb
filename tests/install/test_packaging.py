"""The worker as an installed package: a wheel built with the locked setuptools, installed into a
fresh venv from the lock (hashes checked), answering from there with no source tree on the path.

The slow test builds and installs once per session (about a minute; pip's cache is reused) and
then drives ``optuna-bridge`` and ``python -m bridge_worker`` from the new venv through the
``basics`` conversation read from the package data the wheel carries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bridge_worker import __version__
from bridge_worker.wire.distribution import SCHEMA_FILE, version_text
from bridge_worker.wire.schema import PROTOCOL_VERSION
from tests.helpers import ROOT, same_frames


def test_every_subpackage_is_in_the_wheel_list() -> None:
    """pyproject.toml lists packages explicitly (for the protocol/ mapping): a new subpackage
    that is not listed would be missing from the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "bridge_worker").rglob("__init__.py")
    }
    protocol = {
        "bridge_worker.protocol",
        "bridge_worker.protocol.schema",
        "bridge_worker.protocol.examples",
    }
    assert set(config["packages"]) == on_disk | protocol
    assert config["package-dir"] == {"bridge_worker.protocol": "protocol"}


def test_version_names_worker_protocol_and_optuna() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge_worker", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == f"optuna-bridge {__version__}"
    assert lines[1] == f"protocol {PROTOCOL_VERSION}"
    assert lines[2].startswith("optuna ") and lines[2] != "optuna not installed"
    assert done.stdout.strip() == version_text()


def test_schema_subcommand_prints_the_committed_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge_worker", "schema"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == (ROOT / "protocol" / "schema" / SCHEMA_FILE).read_bytes()
    bad = subprocess.run(
        [sys.executable, "-m", "bridge_worker", "schema", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "takes no arguments" in bad.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding the runtime part of the lock and the wheel built from this tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist, venv = tmp / "src", tmp / "dist", tmp / "venv"
    # Built from a copy of what the wheel is made of: setuptools writes build/ and *.egg-info
    # into the tree it builds, where `make dist` (the Elixir stage, run alongside) removes them.
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for folder in ("bridge_worker", "protocol"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        timeout=300,
        cwd=tmp,
    )
    [wheel] = dist.glob("*.whl")
    requirements = dist / "requirements.txt"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "runtime_requirements.py"),
            str(ROOT / "requirements" / "lock.txt"),
            str(requirements),
            str(wheel),
        ],
        check=True,
        timeout=60,
    )
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            # the few modules these tests import are compiled as they are imported; compiling
            # every installed file first cost 15 s of the install's 40 s of CPU
            "--no-compile",
            "-r",
            str(requirements),
        ],
        check=True,
        timeout=600,
        cwd=dist,
    )
    yield venv


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONSAFEPATH"] = "1"  # not even the working directory on sys.path
    return env


def _conversation(command: list[str], venv: Path, cwd: Path) -> None:
    examples = _installed_file(venv, "examples/basics.jsonl")
    exchanges = [orjson.loads(x) for x in examples.read_bytes().splitlines() if x.strip()]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env=_clean_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready = orjson.loads(proc.stdout.readline())
        assert ready["method"] == "ready"
        assert ready["params"]["protocol"] == PROTOCOL_VERSION
        for exchange in exchanges:
            proc.stdin.write(orjson.dumps(exchange["send"]) + b"\n")
            proc.stdin.flush()
            got = [orjson.loads(proc.stdout.readline()) for _ in exchange["expect"]]
            assert same_frames(got, exchange["expect"]), (got, exchange["expect"])
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0


def _installed_file(venv: Path, relative: str) -> Path:
    [found] = venv.glob(f"lib/python*/site-packages/bridge_worker/protocol/{relative}")
    return found


@pytest.mark.timeout(900)
def test_the_wheel_carries_the_protocol(installed: Path) -> None:
    [wheel] = (installed.parent / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for relative in ("PROTOCOL.md", f"schema/{SCHEMA_FILE}", "examples/basics.jsonl"):
        assert f"bridge_worker/protocol/{relative}" in names
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "clients/"))]
    committed = ROOT / "protocol" / "schema" / SCHEMA_FILE
    assert _installed_file(installed, f"schema/{SCHEMA_FILE}").read_bytes() == (
        committed.read_bytes()
    )


@pytest.mark.timeout(900)
def test_the_installed_wheel_answers(installed: Path, tmp_path: Path) -> None:
    bin_dir = installed / "bin"
    version = subprocess.run(
        [str(bin_dir / "optuna-bridge"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert version.stdout.strip() == version_text()
    schema = subprocess.run(
        [str(bin_dir / "optuna-bridge"), "schema"],
        capture_output=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert schema.stdout == (ROOT / "protocol" / "schema" / SCHEMA_FILE).read_bytes()
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import bridge_worker; print(bridge_worker.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert where.stdout.startswith(str(installed)), "imported from the source tree"
    _conversation([str(bin_dir / "optuna-bridge")], installed, tmp_path)
    _conversation([str(bin_dir / "python"), "-m", "bridge_worker"], installed, tmp_path)
