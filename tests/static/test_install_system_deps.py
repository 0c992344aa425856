"""scripts/install-system-deps.sh: silent when everything is there, never fails without apt."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-system-deps.sh"
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def fake_bin(tmp_path: Path, commands: dict[str, str]) -> Path:
    """A PATH holding only the tools the script needs plus the given fake commands."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("sort", "mktemp", "rm", "tail", "printf", "chmod"):
        real = shutil.which(tool)
        if real:
            (folder / tool).symlink_to(real)
    for name, body in commands.items():
        path = folder / name
        path.write_text(f"#!{BASH}\n{body}\n")
        path.chmod(0o755)
    return folder


def run(folder: Path) -> subprocess.CompletedProcess[str]:
    assert BASH is not None
    env = {
        "PATH": str(folder),
        "HOME": os.environ.get("HOME", "/tmp"),
        # never touch the machine's real policy-rc.d from a test
        "POLICY_RC_D": str(folder.parent / "policy-rc.d"),
    }
    return subprocess.run(
        [BASH, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_script_is_valid_bash_and_executable() -> None:
    assert BASH is not None
    assert subprocess.run([BASH, "-n", str(SCRIPT)], check=False).returncode == 0
    assert os.access(SCRIPT, os.X_OK)


def test_nothing_happens_when_every_tool_is_present(tmp_path: Path) -> None:
    folder = fake_bin(
        tmp_path,
        {
            "promtool": "exit 0",
            "chromium": "exit 0",
            "chromedriver": "exit 0",
            "dovecot": "exit 0",
            "wrk": "exit 0",
            "id": "echo 0",
            "apt-get": "echo apt-get must not run >&2; exit 99",
        },
    )
    result = run(folder)
    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == ""


def test_without_root_it_only_reports_what_is_missing(tmp_path: Path) -> None:
    folder = fake_bin(
        tmp_path,
        {"id": "echo 1000", "apt-get": "echo apt-get must not run >&2; exit 99"},
    )
    result = run(folder)
    assert result.returncode == 0
    assert "missing chromium chromium-driver dovecot-imapd prometheus wrk" in result.stderr
    assert "apt-get must not run" not in result.stderr


def test_without_apt_it_only_reports_what_is_missing(tmp_path: Path) -> None:
    folder = fake_bin(tmp_path, {"id": "echo 0", "promtool": "exit 0"})
    result = run(folder)
    assert result.returncode == 0
    assert "missing chromium chromium-driver" in result.stderr
    assert "prometheus" not in result.stderr


def test_a_failing_apt_never_fails_the_build(tmp_path: Path) -> None:
    log = tmp_path / "apt.log"
    folder = fake_bin(
        tmp_path,
        {
            "id": "echo 0",
            "promtool": "exit 0",
            "chromium": "exit 0",
            "dovecot": "exit 0",
            "wrk": "exit 0",
            "apt-get": f'echo "$@" >> {log}; echo "E: network unreachable" >&2; exit 100',
        },
    )
    result = run(folder)
    assert result.returncode == 0
    assert "apt-get update failed; still missing chromium-driver" in result.stderr
    assert log.read_text().splitlines() == ["update -qq"], "install must not run after update fails"
    assert not (tmp_path / "policy-rc.d").exists(), "the temporary policy-rc.d was left behind"


def test_installs_only_what_is_missing_without_starting_services(tmp_path: Path) -> None:
    log = tmp_path / "apt.log"
    policy = tmp_path / "policy-rc.d"
    folder = fake_bin(
        tmp_path,
        {
            "id": "echo 0",
            "chromium": "exit 0",
            "chromedriver": "exit 0",
            "dovecot": "exit 0",
            "wrk": "exit 0",
            "apt-get": f'echo "$* policy=$(test -x {policy} && echo yes)" >> {log}',
        },
    )
    result = run(folder)
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "update -qq policy=yes",
        "install -y -qq --no-install-recommends prometheus policy=yes",
    ]
    assert not policy.exists()
