"""tests/tools/install_kustomize.py: the fallback .ci/run uses on machines without kubectl."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.k8s.manifests import K8S, kustomize_command
from tests.tools import install_kustomize


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("kbin")
    proc = subprocess.run(
        [sys.executable, str(Path(install_kustomize.__file__)), str(dest)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sha256 verified" in proc.stdout
    return dest / "kubectl"


def test_installed_kubectl_renders_like_the_one_the_tests_use(installed: Path):
    for kustomization in ("base", "overlays/legacy-sidecar", "monitoring", "injector"):
        mine = subprocess.run(
            [str(installed), "kustomize", str(K8S / kustomization)],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        theirs = subprocess.run(
            [*kustomize_command(), str(K8S / kustomization)],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        assert mine == theirs, kustomization


def test_a_wrong_checksum_is_refused(tmp_path: Path):
    tag, _ = install_kustomize.PINS[install_kustomize.machine()]
    wrong = {install_kustomize.machine(): (tag, "0" * 64)}
    with pytest.raises(install_kustomize.InstallError, match=r"(?i)hash"):
        install_kustomize.install(tmp_path, pins=wrong)
    assert not (tmp_path / "kubectl").exists()


def test_an_unknown_architecture_is_a_clear_error(tmp_path: Path):
    with pytest.raises(install_kustomize.InstallError, match="no pinned kubectl for linux/sparc64"):
        install_kustomize.install(tmp_path, arch="sparc64")
