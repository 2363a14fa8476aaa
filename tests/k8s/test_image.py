"""The Dockerfile: hadolint-clean, the right shape, and its build steps really work.

No Docker engine runs here, so the build stage's own instructions are replayed on this machine:
its ``COPY`` sources are copied into a scratch build context, its ``RUN`` commands run there
(``/opt/format-proxy`` relocated to a temporary directory, ``python`` = this Python, the same
minor version as the image's base), and the resulting virtualenv is checked and started the way
the image starts it: the runtime stage's ``ENV``, a read-only root filesystem with a tmpfs at
``$TMPDIR`` (a private mount namespace), no capabilities and no-new-privileges.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from proxy.inject.options import DATA_PORT, METRICS_PORT, RUN_AS
from proxy.inject.sidecar import WAIT_READY_SCRIPT
from tests.k8s.manifests import ROOT, VENV_BIN
from tests.support.backends import Backend, isolated_aws_env
from tests.support.clients import boto3_client
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess

pytestmark = pytest.mark.slow

DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "k8s" / "image" / "constraints.txt"
VENV_IN_IMAGE = "/opt/format-proxy"


@dataclass(frozen=True)
class Instruction:
    stage: int
    name: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions (continuations joined, comments dropped), with their stage."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        out.append(Instruction(stage, name, " ".join(args.split())))
    return out


INSTRUCTIONS = parse(DOCKERFILE.read_text())


def stage(n: int) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.stage == n]


def the(n: int, name: str) -> list[str]:
    return [i.args for i in stage(n) if i.name == name]


# --- static checks --------------------------------------------------------------------------


def test_hadolint_reports_nothing():
    proc = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--format", "json", str(DOCKERFILE)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == []


def test_hadolint_does_find_problems(tmp_path: Path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nADD . /app\nCMD python app.py\n")
    proc = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--format", "json", str(bad)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    codes = {f["code"] for f in json.loads(proc.stdout)}
    assert {"DL3007", "DL3013", "DL3020", "DL3025"} <= codes


def test_base_image_is_a_pinned_slim_python_matching_this_interpreter():
    froms = the(0, "FROM") + the(1, "FROM")
    assert len(froms) == 2 and len({i.stage for i in INSTRUCTIONS}) == 2  # multi-stage
    build_from, run_from = froms
    assert build_from.endswith(" AS build")
    image = run_from
    assert build_from.split()[0] == image
    m = re.fullmatch(r"python:(3\.\d+)\.\d+-slim-bookworm", image)
    assert m, f"base image not pinned to a patch version: {image}"
    assert m.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_runtime_stage_shape():
    assert the(1, "USER") == [f"{RUN_AS}:{RUN_AS}"]
    assert json.loads(the(1, "ENTRYPOINT")[0]) == ["format-proxy"]  # exec form
    assert json.loads(the(1, "CMD")[0]) == ["serve"]
    exposed = {int(p) for e in the(1, "EXPOSE") for p in e.split()}
    assert exposed == {DATA_PORT, METRICS_PORT}
    assert "TMPDIR=/tmp" in the(1, "ENV")[0].split()
    assert "PYTHONDONTWRITEBYTECODE=1" in the(1, "ENV")[0].split()
    assert the(1, "COPY") == [f"--from=build {VENV_IN_IMAGE} {VENV_IN_IMAGE}"]
    with (ROOT / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert the(1, "ARG") == [f"VERSION={version}"]


def test_nothing_secret_or_cached_is_baked_in():
    assert not [i for i in INSTRUCTIONS if i.name == "ADD"]
    for i in INSTRUCTIONS:
        if i.name in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(?i)(secret|password|token|aws_|credential)", i.args), i
        if i.name == "RUN" and "pip" in i.args:
            for command in i.args.split("&&"):
                if " install " in command:
                    assert "--no-cache-dir" in command, command
                    assert "[" not in command, "no extras in the image"
    # The build context the COPYs need is exactly what exists in the repo.
    for args in the(0, "COPY"):
        for src in args.split()[:-1]:
            assert (ROOT / src).exists(), src


# --- the build, replayed ---------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltImage:
    venv: Path
    env: dict[str, str]  # the runtime stage's ENV, relocated

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def _base_python() -> str:
    return getattr(sys, "_base_executable", sys.executable)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    root = tmp_path_factory.mktemp("image")
    venv = root / "opt" / "format-proxy"
    shim = root / "shim"
    shim.mkdir()
    (shim / "python").symlink_to(_base_python())
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{shim}:/usr/local/bin:/usr/bin:/bin"
    workdir = root / "context"
    for ins in stage(0):
        if ins.name == "WORKDIR":
            workdir = root / "context" / ins.args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif ins.name == "COPY":
            *sources, dest = ins.args.split()
            target = workdir / dest
            for src in sources:
                path = ROOT / src
                if path.is_dir():
                    shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    out = target / path.name if dest.endswith("/") else target
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
        elif ins.name == "RUN":
            command = ins.args.replace(VENV_IN_IMAGE, str(venv))
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, (
                f"RUN {command}\n{proc.stdout}\n{proc.stderr}\n(a runtime dependency missing "
                "from the lock? run .venv/bin/python tests/tools/lock_image.py)"
            )
        elif ins.name != "FROM":
            raise AssertionError(f"the replay does not know {ins.name} in the build stage")
    runtime_env: dict[str, str] = {}
    for args in the(1, "ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            runtime_env[key] = value.replace(VENV_IN_IMAGE, str(venv)).replace(
                "${PATH}", "/usr/local/bin:/usr/bin:/bin"
            )
    return BuiltImage(venv, runtime_env)


def _pip(image: BuiltImage, *args: str) -> str:
    proc = subprocess.run(
        [_base_python(), "-m", "pip", "--python", str(image.bin / "python"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_installs_exactly_the_lock_and_no_extras(image: BuiltImage):
    installed = {}
    for line in _pip(image, "list", "--format", "json").splitlines():
        for dist in json.loads(line):
            installed[dist["name"].lower().replace("_", "-")] = dist["version"]
    assert (
        installed.pop("format-proxy")
        == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    )
    locked = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[name] = version
    assert installed == locked, "regenerate with .venv/bin/python tests/tools/lock_image.py"
    for absent in ("moto", "pytest", "boto3", "pip", "setuptools"):
        assert absent not in installed
    # Byte-compiled at build time: nothing to write at run time.
    assert list((image.venv / "lib").rglob("proxy/app/__pycache__/cli.*.pyc"))


def test_help_and_version(image: BuiltImage):
    env = {**isolated_aws_env(), **image.env}
    proc = subprocess.run(
        [str(image.bin / "format-proxy"), "--help"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for command in ("serve", "inject", "webhook"):
        assert command in proc.stdout
    version = subprocess.run(
        [str(image.bin / "format-proxy"), "--version"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert version.stdout.strip() == "format-proxy 0.1.0"


READ_ONLY_ROOT = """
set -e
mount --bind / /
mount -o remount,bind,ro /
mount -t tmpfs -o size=256m,mode=1777 tmpfs "$TMPDIR"
exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all "$@"
"""


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_on_a_read_only_root_without_capabilities(
    image: BuiltImage, moto_backend: Backend, tmp_path: Path
):
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "metrics_listen": f"127.0.0.1:{metrics_port}",
                "upstream": {"endpoint": moto_backend.endpoint, "region": moto_backend.region},
            }
        )
    )
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = {**isolated_aws_env(), **moto_backend.credentials.env(), **image.env}
    env["TMPDIR"] = str(spool)  # the emptyDir
    argv = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh",
        str(image.bin / "format-proxy"), "serve", "--config", str(config),
    ]  # fmt: skip
    proc = ManagedProcess("image-serve", argv, tmp_path / "logs", env=env, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{metrics_port}"
        proc.wait_until(lambda: _get(base + "/readyz") == 200, timeout=30, what="ready")
        assert _get(base + "/healthz") == 200
        bucket = moto_backend.new_bucket("image")
        s3 = boto3_client(f"http://127.0.0.1:{port}")
        s3.put_object(Bucket=bucket, Key="k", Body=b"from the image")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"from the image"
        assert moto_backend.read(bucket, "k") == b"from the image"
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            assert b"format_proxy_build_info" in resp.read()

        # The legacy sidecar's postStart hook (run with the image's python) sees it ready...
        script = WAIT_READY_SCRIPT.replace(str(METRICS_PORT), str(metrics_port))
        ready = subprocess.run(
            [str(image.bin / "python"), "-c", script, "4"], env=env, timeout=30, check=False
        )
        assert ready.returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(30)
        output = proc.output()
        proc.stop()
    assert status == 0, output
    assert "Read-only file system" not in output and "Traceback" not in output, output
    # ...and gives up with a failure when nothing answers.
    nobody = WAIT_READY_SCRIPT.replace(str(METRICS_PORT), str(free_port()))
    down = subprocess.run(
        [str(image.bin / "python"), "-c", nobody, "2"], env=env, timeout=30, check=False
    )
    assert down.returncode == 1


def test_the_read_only_sandbox_is_real(image: BuiltImage, tmp_path: Path):
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = {**os.environ, "TMPDIR": str(spool)}
    probe = (
        "import os, sys\n"
        "open(os.path.join(os.environ['TMPDIR'], 'ok'), 'w').write('x')\n"
        "try:\n"
        f"    open({str(image.venv / 'written')!r}, 'w')\n"
        "except OSError as e:\n"
        "    sys.exit(0 if e.errno == 30 else 2)\n"  # EROFS
        "sys.exit(1)\n"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh",
         str(image.bin / "python"), "-c", probe],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not (image.venv / "written").exists()
    assert not (spool / "ok").exists()  # it was on the private tmpfs
