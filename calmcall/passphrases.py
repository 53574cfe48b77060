"""Per-learner passphrases for the stand-alone app: a learner's history is theirs.

In the stand-alone app a learner is whoever types a name, so without this anyone who types
a colleague's name would see (and add to) that colleague's attempts. The first time a name
saves anything, its learner chooses a passphrase; from then on the name's attempts are
recorded and shown only in a session that gave it.

Why a file and not a table: only the stand-alone app's ``local`` organisation needs this
(portal learners arrive with a signed embed token, hosts with sign-in use it instead), so
the attempts schema that the API, the portal and every migration share stays as it is. The
file lives in the data dir (``$CALMCALL_DATA_DIR/learner_passphrases.json``) next to the
default SQLite database; app servers that share one PostgreSQL must share the data dir too
(or use the host's sign-in).

Stored per name: ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` (``hashlib.scrypt``, 16-byte
random salt), never the passphrase. Wrong guesses are slowed down per name (in-process).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import unicodedata
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX; elsewhere one process per data dir is assumed
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

FILE_NAME = "learner_passphrases.json"
MIN_CHARS = 8
MAX_CHARS = 1024
# scrypt cost: n=2**14, r=8 is ~16 MiB and ~40 ms per check on this project's machine
SCRYPT_N, SCRYPT_R, SCRYPT_P, DKLEN = 2**14, 8, 1, 32
MAX_FAILURES = 5  # wrong passphrases for one name before it waits
LOCKOUT_S = 30.0


class PassphraseError(ValueError):
    """A passphrase cannot be set or checked; ``reason`` says why (for the UI's own words)."""

    def __init__(self, reason: str, wait_s: float = 0.0):
        super().__init__(reason)
        self.reason = reason  # too_short | too_long | taken | wrong | wait | unavailable
        self.wait_s = wait_s


def _normal(passphrase: str) -> bytes:
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def hash_passphrase(passphrase: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(_normal(passphrase), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=DKLEN,
                            maxmem=64 * 1024 * 1024)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_hash(passphrase: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(_normal(passphrase), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2, maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):  # a damaged entry never opens
        return False
    return hmac.compare_digest(got.hex(), digest)


class LearnerPassphrases:
    """The passphrase file of one data dir. Safe for several threads and processes."""

    def __init__(self, data_dir: Path | str):
        self.path = Path(data_dir) / FILE_NAME
        self._failures: dict[str, tuple[int, float]] = {}  # name -> (failures, blocked until)
        self._lock = threading.Lock()

    # -- the file ---------------------------------------------------------------------
    @contextmanager
    def _locked(self):
        """An exclusive lock across processes, for read-modify-write."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.path.with_suffix(".lock"), "a+")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise PassphraseError("unavailable") from exc
        try:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            lock.close()  # releases the flock

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # unreadable: refuse rather than let anyone in
            raise PassphraseError("unavailable") from exc
        if not isinstance(data, dict) or not isinstance(data.get("learners", {}), dict):
            raise PassphraseError("unavailable")
        return {str(k): str(v) for k, v in data.get("learners", {}).items()}

    def _write(self, learners: dict[str, str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_text(json.dumps({"version": 1, "learners": learners}, ensure_ascii=False, indent=0),
                           encoding="utf-8")
            os.chmod(tmp, 0o600)
            tmp.replace(self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise PassphraseError("unavailable") from exc

    # -- what the app asks ----------------------------------------------------------------
    def is_protected(self, learner: str) -> bool:
        return learner in self._read()

    def protect(self, learner: str, passphrase: str) -> None:
        """Set the passphrase of a name that has none (first use). Raises ``PassphraseError``
        ``taken`` when another session protected it first."""
        if len(passphrase) < MIN_CHARS:
            raise PassphraseError("too_short")
        if len(passphrase) > MAX_CHARS:
            raise PassphraseError("too_long")
        hashed = hash_passphrase(passphrase)  # outside the lock: it takes a while
        with self._locked():
            learners = self._read()
            if learner in learners:
                raise PassphraseError("taken")
            learners[learner] = hashed
            self._write(learners)

    def unlock(self, learner: str, passphrase: str, now: float | None = None) -> None:
        """Return if ``passphrase`` opens ``learner``; else raise ``PassphraseError``
        (``wrong``, or ``wait`` with ``wait_s`` after too many wrong ones)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures, until = self._failures.get(learner, (0, 0.0))
            if until > now:
                raise PassphraseError("wait", wait_s=until - now)
        stored = self._read().get(learner)
        if stored is not None and len(passphrase) <= MAX_CHARS and check_hash(passphrase, stored):
            with self._lock:
                self._failures.pop(learner, None)
            return
        with self._lock:
            failures, _ = self._failures.get(learner, (0, 0.0))
            failures += 1
            until = now + LOCKOUT_S if failures >= MAX_FAILURES else 0.0
            self._failures[learner] = (0 if until else failures, until)
            if len(self._failures) > 10_000:  # forget the oldest names
                for name in list(self._failures)[:1000]:
                    self._failures.pop(name, None)
        raise PassphraseError("wrong")
