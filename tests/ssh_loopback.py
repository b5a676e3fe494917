"""This machine as an SSH-reachable "cluster machine" for ``ray up`` tests.

:func:`start_loopback_sshd` makes the machine look like one of ``cluster-onprem.yaml``'s hosts:

* ``openssh-server``, ``rsync`` (``ray up`` copies the file mounts with it) and
  ``netcat-openbsd`` are installed with apt-get when missing (the test runs as root, as CI does);
* a throwaway account (:data:`NODE_USER`) is the cluster account. A separate account keeps the
  cluster's Ray apart from everything else of root's: ``ray stop`` in the cluster file's start
  commands ends only that account's Ray processes, and its ``~/.ray/auth_token`` and venv are its
  own. Its ``~/.bashrc`` sets ``RAY_TMPDIR`` (a folder it owns), since ``/tmp/ray`` may belong
  to root's Ray;
* a throwaway ed25519 client key is authorized for that account only, and an ``sshd`` with its
  own host key and config listens on 127.0.0.1 only, on a free port. Ray's SSH runner always
  dials port 22, so the cluster file routes it there with
  ``auth.ssh_proxy_command: nc 127.0.0.1 PORT``.

The sshd runs in its own process group and is killed (SIGKILL of the group) by
:meth:`LoopbackSSHD.stop`; nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NODE_USER = "tgnode"
PACKAGES = {"/usr/sbin/sshd": "openssh-server", "rsync": "rsync", "nc": "netcat-openbsd"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unavailable_reason() -> str | None:
    """Why this machine cannot host the test (None when it can)."""
    if os.name != "posix" or not Path("/etc/debian_version").exists():
        return "needs a Debian-like Linux (apt-get)"
    if os.geteuid() != 0:
        return "needs root (apt-get, useradd, sshd), as CI runs"
    if shutil.which("python3.11", path="/usr/bin:/usr/local/bin") is None:
        return "needs a system python3.11 for the cluster account's venv"
    return None


def ensure_packages() -> None:
    missing = [pkg for exe, pkg in PACKAGES.items() if shutil.which(exe) is None]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    # Keep the package from starting its own sshd on all interfaces (Debian's policy-rc.d).
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env=env,
            capture_output=True,
        )
    finally:
        if created:
            policy.unlink(missing_ok=True)


def ensure_node_user(ray_tmpdir: Path) -> Path:
    """The cluster account (created once) with an empty ``~/.bashrc`` but RAY_TMPDIR; its home."""
    try:
        entry = pwd.getpwnam(NODE_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", NODE_USER], check=True)
        entry = pwd.getpwnam(NODE_USER)
    # No password, but not locked ("!"): sshd refuses key logins to locked accounts.
    subprocess.run(["usermod", "-p", "*", NODE_USER], check=True)
    home = Path(entry.pw_dir)
    ray_tmpdir.mkdir(parents=True, exist_ok=True)
    os.chown(ray_tmpdir, entry.pw_uid, entry.pw_gid)
    # The machine's package-index settings (pip's environment and root's pip.conf): on this
    # machine pip may be pointed at local mirrors; with PyPI reachable they are not needed.
    lines = [f"export RAY_TMPDIR={ray_tmpdir}"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in os.environ.items() if k.startswith("PIP_")]
    bashrc = home / ".bashrc"
    bashrc.write_text("\n".join(lines) + "\n")
    os.chown(bashrc, entry.pw_uid, entry.pw_gid)
    root_pip = Path("/root/.config/pip/pip.conf")
    if root_pip.exists():
        target = home / ".config" / "pip" / "pip.conf"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root_pip, target)
        for path in (home / ".config", target.parent, target):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return home


@dataclass
class LoopbackSSHD:
    """A running sshd on 127.0.0.1:``port`` that lets :data:`NODE_USER` in with ``key``."""

    root: Path
    port: int
    key: Path
    process: subprocess.Popen[bytes]

    @property
    def proxy_command(self) -> str:
        return f"nc 127.0.0.1 {self.port}"

    def ssh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``command`` as the cluster account, through this sshd."""
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(self.key),
                "-p",
                str(self.port),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                f"{NODE_USER}@127.0.0.1",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def start_loopback_sshd(root: Path) -> LoopbackSSHD:
    """Install what is missing, authorize a fresh key for the cluster account, start sshd."""
    ensure_packages()
    home = ensure_node_user(root / "raytmp")
    entry = pwd.getpwnam(NODE_USER)
    key = root / "id_ed25519"
    host_key = root / "ssh_host_ed25519_key"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    for path in (ssh_dir, authorized):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    authorized.chmod(0o600)
    port = _free_port()
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {root / 'sshd.pid'}",
                "AuthorizedKeysFile .ssh/authorized_keys",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin no",
                f"AllowUsers {NODE_USER}",
                "UsePAM no",
                "MaxStartups 100",
                "MaxSessions 100",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    log = (root / "sshd.log").open("wb")
    process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sshd = LoopbackSSHD(root=root, port=port, key=key, process=process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            break
        time.sleep(0.2)
    check = sshd.ssh("echo ok")
    if check.stdout.strip() != "ok":
        sshd.stop()
        raise RuntimeError(f"ssh to the loopback sshd failed: {check.stderr[-2000:]}")
    return sshd


def short_tempdir(prefix: str) -> Path:
    """A short folder under /tmp, readable by the cluster account (socket paths stay short)."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o755)
    return root
