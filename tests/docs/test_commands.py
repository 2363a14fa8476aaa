"""Every shell command in README.md and docs/*.md runs verbatim from a fresh clone.

The blocks marked runnable run in a copy of the repository's files (what a clone has) with
the set-up of README command 1 in place (``.venv``); a block must exit 0, and a transcript's
output lines must appear in what its commands print.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docs.blocks import ROOT, SHELL_LANGUAGES, all_blocks, line_matches, transcript

SHELL_BLOCKS = [b for b in all_blocks() if b.language in SHELL_LANGUAGES]
RUNNABLE = [b for b in SHELL_BLOCKS if b.marker == "runnable"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files as a clone has them (tracked and new, never ignored ones), with
    the installed ``.venv`` of README command 1."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    dest = tmp_path_factory.mktemp("clone")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


def _env() -> dict[str, str]:
    # a newcomer's shell: no test-runner AWS settings, nothing of the format-proxy's own
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FORMAT_PROXY_"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def test_every_shell_block_says_whether_it_runs() -> None:
    assert len(SHELL_BLOCKS) >= 10
    for block in SHELL_BLOCKS:
        assert block.marker is not None, f"{block.id}: no <!-- runnable --> or not-runnable mark"
        if block.marker == "not runnable":
            assert len(block.reason) > 10, f"{block.id}: say why it is not runnable"
    assert len(RUNNABLE) >= 4


def test_the_readme_starts_with_the_two_set_up_commands() -> None:
    first = next(b for b in all_blocks() if b.path.name == "README.md")
    commands = first.text.strip().splitlines()
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[local]' && "
        ".venv/bin/format-proxy serve --config config/local.yaml",
        "bash .ci/run",
    ]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_runnable_block(block, clone: Path) -> None:
    if block.language != "console":
        p = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.text],
            cwd=clone, env=_env(), capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert p.returncode == 0, f"{block.id} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
        return
    steps = transcript(block.text)
    assert steps, f"{block.id}: a console block without a $ command"
    for command, expected in steps:
        p = subprocess.run(
            ["bash", "-c", command],
            cwd=clone, env=_env(), capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        actual = (p.stdout + p.stderr).splitlines()
        for line in expected:
            assert line_matches(line, actual), f"{block.id}: {line!r} not in:\n" + "\n".join(actual)
