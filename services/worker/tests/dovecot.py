"""A throwaway Dovecot IMAP server for the tests: its own config, TLS certificate (self-signed,
for 127.0.0.1), one user with a Maildir, all under a temporary folder, on a free loopback port.

Debian's ``dovecot-imapd`` (installed by scripts/install-system-deps.sh) provides the binary;
:func:`dovecot_binary` is None when it is missing and the tests skip with that reason.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Dovecot", "dovecot_binary", "start_dovecot"]

USER = "ingest"
PASSWORD = "imap-" + "test-pw"  # a throwaway account's password, built at runtime

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = cesar-test-{port}
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass
class Dovecot:
    process: subprocess.Popen[bytes]
    root: Path
    port: int
    user: str = USER
    password: str = PASSWORD

    @property
    def url(self) -> str:
        return f"imaps://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> str:
        return str(self.root / "cert.pem")

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot",) if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_account() -> tuple[str, int, int]:
    """Dovecot refuses to run mail processes as root: when we are root, use ``nobody``."""
    entry = pwd.getpwuid(os.geteuid()) if os.geteuid() != 0 else pwd.getpwnam("nobody")
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def _certificate(root: Path) -> None:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


def start_dovecot(binary: str) -> Dovecot:
    """Started in a fresh folder under the system's temp dir (not pytest's, whose parents are
    private to root, which `nobody` could not traverse); :meth:`Dovecot.stop` removes it."""
    root = Path(tempfile.mkdtemp(prefix="cesar-dovecot-"))
    user, uid, gid = _service_account()
    for folder in ("run", "state", "mail"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # the mail processes run as `nobody`: it must reach and own the mail folder
        root.chmod(0o755)
        os.chown(root / "mail", uid, gid)
    _certificate(root)
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    port = _free_port()
    group = grp.getgrgid(gid).gr_name
    config = root / "dovecot.conf"
    config.write_text(CONFIG.format(root=root, port=port, uid=uid, gid=gid, user=user, group=group))
    process = subprocess.Popen(
        [binary, "-F", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    server = Dovecot(process, root, port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited with {process.returncode}: {server.log()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"dovecot did not listen on {port}: {server.log()[-2000:]}")
