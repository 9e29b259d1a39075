"""Passwords out of ledger URLs: redacted for messages and reprs, scrubbed from database drivers' errors."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact_url", "scrub", "url_passwords"]


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and reprs.

    >>> redact_url("postgresql://ledger:s3cret@db:5432/budget?schema=dp&password=s3cret")
    'postgresql://ledger:***@db:5432/budget?schema=dp&password=***'
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = "&".join(
        f"{piece.split('=', 1)[0]}=***" if unquote(piece.split("=", 1)[0]).lower() == "password" else piece
        for piece in parts.query.split("&")
        if piece
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_passwords(url: str) -> list[str]:
    """Every password ``url`` holds, raw and percent-decoded, so driver messages can be scrubbed of them."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    if "@" in parts.netloc and ":" in parts.netloc.rsplit("@", 1)[0]:
        found.append(parts.netloc.rsplit("@", 1)[0].split(":", 1)[1])
    for piece in parts.query.split("&"):
        name, _, value = piece.partition("=")
        if unquote(name).lower() == "password" and value:
            found += [value, unquote(value)]
    return sorted({p for p in found if p}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with every password of ``url`` replaced by ``***``."""
    for password in url_passwords(url):
        text = text.replace(password, "***")
    return text
