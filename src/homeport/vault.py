"""The Ansible Vault password: where it comes from, how it reaches ansible-playbook, and vault encryption.

Sources, first found wins: ``$HOMEPORT_VAULT_PASSWORD``; the macOS Keychain (item ``homeport-vault``, when the
``security`` tool exists); the file ``~/.config/homeport/vault-password`` (mode 0600).

ansible-playbook gets the password through ``--vault-password-file <client script>``. The runner serves the
password to that script through a private Unix socket (``PasswordPipe``) so it never sits in the environment of the
ansible process (ansible-runner writes that environment into its artifacts) nor in any file.
The password is never printed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from homeport import paths

ENV_PASSWORD = "HOMEPORT_VAULT_PASSWORD"  # noqa: S105 - the name of the variable
ENV_SOCKET = "HOMEPORT_VAULT_SOCKET"
KEYCHAIN_SERVICE = "homeport-vault"
KEYCHAIN_ACCOUNT = "homeport"


def password_file() -> Path:
    return paths.config_dir() / "vault-password"


def _keychain_available() -> bool:
    return sys.platform == "darwin" and shutil.which("security") is not None


def _keychain_read() -> str | None:
    if not _keychain_available():
        return None
    r = subprocess.run(
        ["security", "find-generic-password", "-a", KEYCHAIN_ACCOUNT, "-s", KEYCHAIN_SERVICE, "-w"],
        capture_output=True,
        text=True,
        check=False,
    )
    return r.stdout.strip() or None if r.returncode == 0 else None


def resolve_password() -> str | None:
    """The vault password from the first source that has one, or None."""
    env = os.environ.get(ENV_PASSWORD)
    if env:
        return env
    from_keychain = _keychain_read()
    if from_keychain:
        return from_keychain
    pfile = password_file()
    if pfile.is_file():
        text = pfile.read_text(encoding="utf-8").strip()
        return text or None
    return None


def ensure_password() -> tuple[str, str]:
    """The vault password and a description of where it lives; generates and stores one when none exists."""
    if os.environ.get(ENV_PASSWORD):
        return os.environ[ENV_PASSWORD], f"${ENV_PASSWORD}"
    existing = resolve_password()
    if existing:
        return existing, ("the macOS Keychain" if _keychain_read() else str(password_file()))
    password = secrets.token_urlsafe(32)
    if _keychain_available():
        r = subprocess.run(
            ["security", "add-generic-password", "-U", "-a", KEYCHAIN_ACCOUNT, "-s", KEYCHAIN_SERVICE, "-w", password],
            capture_output=True,
            check=False,
        )
        if r.returncode == 0:
            return password, f"the macOS Keychain (item {KEYCHAIN_SERVICE})"
    pfile = password_file()
    pfile.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(pfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")
    os.chmod(pfile, 0o600)
    return password, str(pfile)


def _vault(password: str):
    # ansible's vault (0.2 CPU s of imports) only where something is encrypted or decrypted: every other verb, and
    # the password client ansible-playbook runs, start without it (issue 29)
    from ansible.constants import DEFAULT_VAULT_ID_MATCH  # noqa: PLC0415
    from ansible.parsing.vault import VaultLib, VaultSecret  # noqa: PLC0415

    return VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password.encode("utf-8")))])


def encrypt(plaintext: str, password: str) -> str:
    """Encrypt text into an ansible-vault file body ($ANSIBLE_VAULT;1.1;AES256 ...)."""
    return _vault(password).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(ciphertext: str, password: str) -> str:
    return _vault(password).decrypt(ciphertext.encode("ascii")).decode("utf-8")


class PasswordPipe(contextlib.AbstractContextManager):
    """Serve the password on a private Unix socket (in a 0700 temp dir) to every client that connects, until
    closed: each connection gets the password once, then EOF."""

    def __init__(self, password: str):
        self._password = password.encode("utf-8") + b"\n"
        self._dir = Path(tempfile.mkdtemp(prefix="homeport-vault-"))  # mode 0700
        self.path = self._dir / "socket"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="homeport-vault-pipe", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.sendall(self._password)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def client_script(directory: Path) -> Path:
    """Write the vault password client script ansible-playbook runs (--vault-password-file) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "vault-password-client"
    body = (
        f"#!{sys.executable}\n"
        '"""homeport vault password client: prints the vault password for ansible-playbook."""\n'
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})\n"
        "from homeport.vault import client_main\n"
        "sys.exit(client_main())\n"
    )
    if not script.exists() or script.read_text(encoding="utf-8") != body:
        script.write_text(body, encoding="utf-8")
    script.chmod(0o700)
    return script


def client_main() -> int:
    """Entry point of the client script: the password on stdout, or a clear error on stderr."""
    sock_path = os.environ.get(ENV_SOCKET)
    if sock_path:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(sock_path)
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        password = data.decode("utf-8").strip()
    else:
        password = resolve_password() or ""
    if not password:
        sys.stderr.write(
            f"homeport: no vault password: set ${ENV_PASSWORD}, or run `homeport init` to create {password_file()}\n"
        )
        return 1
    sys.stdout.write(password + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(client_main())
