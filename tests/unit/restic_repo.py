"""Restic repositories for the tests, made by the real restic and then given a cheap key (issue 34: the suite's CPU).

`restic init` calibrates scrypt to about 0.5 s on the machine it runs on (restic internal/repository/key.go:
``KDFTimeout = 500 * time.Millisecond``, crypto.Calibrate), and every later command derives the key again when it
opens the repository (key.go, OpenKey: ``crypto.KDF(params, k.Salt, password)`` with the N, r and p stored in the
key file). On this kind of machine that is N=32768, r=8, p=6 and ~0.4 s of CPU for each restic command: most of the
CPU of the backup job's unit tests. The parameters live in the key file, so a test repository is made once per
session with the real `restic init` and its key file is rewritten with N=1024, r=8, p=1, the same master key and
password (the format of restic's design document, "Keys, Encryption and MAC", and key.go/crypto.go):

- a key file is JSON: created, username, hostname, kdf "scrypt", N, r, p, salt (64 bytes) and data, base64;
- scrypt(password, salt, N, r, p) gives 64 bytes: the AES-256 key, then the MAC key k (16 bytes) and r (16 bytes);
- data = nonce (16) || AES-256-CTR(master key JSON, IV = nonce) || Poly1305-AES MAC of the ciphertext, whose
  one-time key is r || AES_k(nonce) (crypto.go, poly1305PrepareKey; Poly1305 clamps r itself);
- the key file is named by the SHA-256 of its bytes (key.go, AddKey: ``restic.Hash(buf)``).

Each test then copies that repository (`seed`), so only the tests about `restic init` itself pay for it. What this
does not test: restic's calibration (restic's own tests do; the molecule backup scenarios init theirs with restic).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

CHEAP = {"N": 1024, "r": 8, "p": 1}


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes, bytes]:
    key = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=64, maxmem=1 << 30)
    return key[:32], key[32:48], key[48:]  # AES key, MAC k, MAC r


def _mac(k: bytes, r: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    # one block, AES_k(nonce): the one-time key part s of Poly1305-AES (restic crypto.go, poly1305PrepareKey)
    encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    one_time = r + encryptor.update(nonce) + encryptor.finalize()
    return Poly1305.generate_tag(one_time, ciphertext)


def rekey(repo: Path, password: str, params: dict[str, int] = CHEAP) -> dict:
    """Rewrite the repository's only key file with `params` (same master key, same password); return the new key."""
    (old,) = (repo / "keys").iterdir()
    key = json.loads(old.read_bytes())
    pw = password.encode()
    data = base64.b64decode(key["data"])
    nonce, ciphertext, tag = data[:16], data[16:-16], data[-16:]
    aes, k, r = _derive(pw, base64.b64decode(key["salt"]), key["N"], key["r"], key["p"])
    if _mac(k, r, nonce, ciphertext) != tag:
        raise ValueError(f"{old}: the password does not open this key")
    decryptor = Cipher(algorithms.AES(aes), modes.CTR(nonce)).decryptor()
    master = decryptor.update(ciphertext) + decryptor.finalize()
    salt, nonce = os.urandom(64), os.urandom(16)
    aes, k, r = _derive(pw, salt, params["N"], params["r"], params["p"])
    encryptor = Cipher(algorithms.AES(aes), modes.CTR(nonce)).encryptor()
    ciphertext = encryptor.update(master) + encryptor.finalize()
    key.update(params)
    key["salt"] = base64.b64encode(salt).decode()
    key["data"] = base64.b64encode(nonce + ciphertext + _mac(k, r, nonce, ciphertext)).decode()
    raw = json.dumps(key).encode()
    (repo / "keys" / hashlib.sha256(raw).hexdigest()).write_bytes(raw)
    old.unlink()
    return key


def make_template(restic: str, repo: Path, password_file: Path) -> Path:
    """A repository made by the real `restic init`, then rekeyed with the cheap parameters."""
    env = {**os.environ, "RESTIC_PASSWORD_FILE": str(password_file), "RESTIC_CACHE_DIR": str(repo) + ".cache"}
    subprocess.run([restic, "--repo", str(repo), "init"], env=env, check=True, capture_output=True)
    rekey(repo, password_file.read_text(encoding="utf-8").strip())  # restic TrimSpace-s the file
    return repo


def seed(template: Path, dest: Path) -> Path:
    """A copy of the template repository at `dest` (a test's own repository, as if `restic init` had made it)."""
    shutil.copytree(template, dest)
    return dest
