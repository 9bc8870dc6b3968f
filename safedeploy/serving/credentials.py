"""The runtime's AWS-style credentials: one access key pair per state directory, kept in an owner-only file.

Anyone who can reach 127.0.0.1 can reach the runtime, so, as on AWS, every call must be signed (Signature
Version 4, :mod:`safedeploy.serving.sigv4`) with a secret only the state directory's owner can read:
``<state>/runtime/credentials.json`` (mode ``0600``), created on first use and kept across restarts. The
pipeline's own clients read it from there; ``make outputs`` shows it so boto3 can use it
(``aws_access_key_id`` / ``aws_secret_access_key``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from safedeploy.errors import SafeDeployError
from safedeploy.filemodes import PRIVATE_FILE_MODE

_KEY_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # AWS access key ids: upper-case base32 after the prefix
KEY_ID_PREFIX = "AKIA"
SECRET_LENGTH = 40


class CredentialsError(SafeDeployError):
    """The credentials file is missing, unreadable, malformed or readable by others."""


@dataclass(frozen=True)
class LocalCredentials:
    """An access key id and its secret (never printed by ``repr``)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


def generate() -> LocalCredentials:
    """A fresh key pair: ``AKIA`` + 16 base32 characters, and a 40-character secret, both from :mod:`secrets`."""
    key_id = KEY_ID_PREFIX + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))
    return LocalCredentials(key_id, secrets.token_urlsafe(30)[:SECRET_LENGTH])


def load(path: Path) -> LocalCredentials:
    """Read the credentials file; refuse one that the group or others may read (as ssh refuses a loose key)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise CredentialsError(f"no runtime credentials at {path}; start the runtime (`make deploy`)") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read the runtime credentials {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as stream:
        mode = stat.S_IMODE(os.fstat(stream.fileno()).st_mode)
        if mode & 0o077:
            raise CredentialsError(
                f"the runtime credentials {path} are readable by others (mode {mode:o}); "
                f"run `chmod 600 {path}` or delete the file and restart the runtime for new ones"
            )
        raw = stream.read()
    try:
        document = json.loads(raw)
        return LocalCredentials(str(document["AccessKeyId"]), str(document["SecretAccessKey"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(f"the runtime credentials {path} are malformed ({exc}); delete the file") from None


def load_or_create(path: Path) -> LocalCredentials:
    """The state directory's credentials, created (mode ``0600``, never replacing another's) if there are none."""
    if path.exists():
        return load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = generate()
    document = {"AccessKeyId": fresh.access_key_id, "SecretAccessKey": fresh.secret_access_key}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2)
            stream.flush()
            os.fsync(stream.fileno())
        with contextlib.suppress(FileExistsError):  # another process created it first: theirs wins
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return load(path)
