"""Channel secrets encrypted at rest (Fernet, with a key derived from HELPDESK_SECRET_KEY).

The column holds a Fernet token (a JSON string); the application sees the dict. Keys named in
HELPDESK_OLD_SECRET_KEYS still decrypt, so a key can be rotated without downtime: set the new
HELPDESK_SECRET_KEY with the old one in HELPDESK_OLD_SECRET_KEYS, run
`helpdesk secrets rotate` (every row re-encrypted under the new key), then drop the old key.
Migration 0012 encrypts the rows that were stored in plain text (and its downgrade decrypts).
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import JSON, TypeDecorator

# Changing these changes every key: migration 0012 spells them out too.
_SALT = b"helpdesk"
_INFO = b"channel secrets v1"


class SecretsUnreadable(RuntimeError):
    """No configured key decrypts the stored secrets."""


@lru_cache(maxsize=16)
def fernet_for(secret_key: str) -> Fernet:
    """The Fernet whose key is derived from this HELPDESK_SECRET_KEY (HKDF-SHA256)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT,
                   info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def keys() -> MultiFernet:
    """The current key first (it encrypts), then the old ones (they still decrypt)."""
    config = current_app.config
    old = [key for key in config.get("OLD_SECRET_KEYS") or [] if key]
    return MultiFernet([fernet_for(config["SECRET_KEY"]), *map(fernet_for, old)])


def encrypt(value: dict) -> str:
    return keys().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict:
    try:
        return json.loads(keys().decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnreadable(
            "channel secrets cannot be decrypted with HELPDESK_SECRET_KEY (or any key in "
            "HELPDESK_OLD_SECRET_KEYS): was the key changed without `helpdesk secrets "
            "rotate`?") from None


class EncryptedJSON(TypeDecorator):
    """A dict stored as a Fernet token; rows still in plain text (a dict) read as they are."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else encrypt(value)

    def process_result_value(self, value, dialect):
        if value is None or isinstance(value, dict):
            return value
        return decrypt(value)
