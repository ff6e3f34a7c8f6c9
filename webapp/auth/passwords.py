"""Password hashing with scrypt, and rehash when the parameters change."""

from werkzeug.security import check_password_hash, generate_password_hash

# werkzeug's scrypt: N=2^15, r=8, p=1. Changing this makes logins rehash old hashes.
METHOD = "scrypt:32768:8:1"
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    """Hash a password with the current method and a random salt."""
    return generate_password_hash(password, method=METHOD)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; False for a missing hash."""
    return bool(password_hash) and check_password_hash(password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than METHOD."""
    return password_hash.split("$", 1)[0] != METHOD


def password_problem(password: str) -> str | None:
    """A plain sentence saying why a new password is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    return None
