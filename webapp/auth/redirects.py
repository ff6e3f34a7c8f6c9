"""Safe `next` targets: only paths on this site."""

from urllib.parse import urlsplit


def safe_next(target: str | None, default: str = "/") -> str:
    """Return target when it is a local path, else default (refuses //host, schemes, backslashes)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in target):
        return default
    return target
