"""Encryption at rest for tokens and API keys (MultiFernet: first key encrypts, all decrypt)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class KeyConfigError(ValueError):
    """TOKEN_ENCRYPTION_KEYS holds something that is not a Fernet key."""


def build(keys: str) -> MultiFernet:
    """A MultiFernet from a comma-separated key list."""
    parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
    if not parts:
        raise KeyConfigError(
            "TOKEN_ENCRYPTION_KEYS is empty; generate one with python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    try:
        return MultiFernet([Fernet(p.encode()) for p in parts])
    except ValueError:
        raise KeyConfigError("TOKEN_ENCRYPTION_KEYS must be url-safe base64 Fernet keys, comma-separated.") from None


def _fernet() -> MultiFernet:
    return build(current_app.config["TOKEN_ENCRYPTION_KEYS"])


def encrypt(plaintext: str | None) -> str | None:
    """Encrypt under the first key; None stays None."""
    if plaintext is None:
        return None
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str | None) -> str | None:
    """Decrypt with any configured key; None stays None. Raises InvalidToken if no key fits."""
    if ciphertext is None:
        return None
    return _fernet().decrypt(ciphertext.encode()).decode()


def rotate(ciphertext: str | None) -> str | None:
    """Re-encrypt under the first key."""
    if ciphertext is None:
        return None
    return _fernet().rotate(ciphertext.encode()).decode()


__all__ = ["InvalidToken", "KeyConfigError", "build", "decrypt", "encrypt", "rotate"]
