"""Secrets encrypted at rest: webhook signing secrets, carriers' webhook secrets.

A secret the suite must use again later (to sign or verify an HMAC) cannot be
hashed like a password; it is stored as a Fernet token (AES-128-CBC + HMAC-SHA256,
from the ``cryptography`` package) under the key(s) of the ``secrets_key`` setting,
so a copy of the database or of a backup alone does not give the secrets away.

Rotation: ``LOGISTICS_SECRETS_KEY=new,old`` encrypts with ``new`` and decrypts with
either (:class:`cryptography.fernet.MultiFernet`); once every stored token has been
re-encrypted (:meth:`SecretBox.rotate`), ``old`` can go.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .settings import Settings, SettingsError

_SETTING = "setting 'secrets_key' (LOGISTICS_SECRETS_KEY)"
MAKE_KEY = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


class Box(Protocol):
    """What code that stores secrets needs of a :class:`SecretBox`: the app registry's
    ``"logistics.secretbox"`` is a lazy one (``logistics_shared.app.LazySecretBox``)."""

    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, token: str) -> str: ...


class UndecryptableSecret(ValueError):
    """No configured key opens this token: it was encrypted under a key no longer in
    ``secrets_key`` (or a different deployment's), or it is not a token at all."""


def parse_keys(raw: str, what: str = _SETTING) -> list[Fernet]:
    """The comma-separated Fernet keys of ``raw``, first one first. Never echoes a key."""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        raise SettingsError(f"{what}: no key (make one with `{MAKE_KEY}`)")
    keys = []
    for number, part in enumerate(parts, start=1):
        try:
            keys.append(Fernet(part))
        except ValueError:
            raise SettingsError(
                f"{what}: key {number} of {len(parts)} is not a Fernet key "
                f"(32 bytes in URL-safe base64, 44 characters; make one with `{MAKE_KEY}`)"
            ) from None
    return keys


def secrets_key(settings: Settings) -> str:
    """The ``secrets_key`` setting; on the embedded default, generated once under the var directory.

    A real deployment (PostgreSQL) must set it: every replica and process kind (web,
    worker, dispatcher, migrate) has to open the same tokens, and a key that lived only
    on one machine would make the database's secrets unreadable without it.
    """
    if settings.secrets_key:
        return settings.secrets_key
    if not settings.is_sqlite:
        raise SettingsError(
            f"{_SETTING} is required when the database is not the embedded SQLite default "
            f"(make one with `{MAKE_KEY}`)"
        )
    path = Path(settings.var_dir) / "secrets-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a temporary file, then linked into place: link() fails if the
        # file exists, so two processes starting together agree on one key, and neither
        # can read a file the other has created but not yet written.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secrets-key.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(Fernet.generate_key().decode() + "\n")
            with contextlib.suppress(FileExistsError):  # another process's key won: read it
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    parse_keys(key, f"the generated secrets key file {path} (delete it only if no secret is stored yet)")
    return key


class SecretBox:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: Sequence[Fernet]) -> None:
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        self._fernet = MultiFernet(list(keys))

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """Raises :class:`SettingsError` when the key is missing (off the embedded default) or bad."""
        return cls(parse_keys(secrets_key(settings)))

    def encrypt(self, plaintext: str) -> str:
        """A token (URL-safe ASCII, about 4/3 of the secret's length + 100 characters), new every call."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The secret ``token`` holds; :class:`UndecryptableSecret` if no key opens it."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, UnicodeError, TypeError):
            raise UndecryptableSecret(
                "a stored secret could not be decrypted with any key of LOGISTICS_SECRETS_KEY "
                "(was the key that encrypted it removed?)"
            ) from None

    def rotate(self, token: str) -> str:
        """``token`` encrypted again under the first key (for retiring an old key)."""
        try:
            return self._fernet.rotate(token.encode()).decode("ascii")
        except (InvalidToken, UnicodeError, TypeError):
            raise UndecryptableSecret(
                "a stored secret could not be decrypted with any key of LOGISTICS_SECRETS_KEY"
            ) from None
