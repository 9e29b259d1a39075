"""The project secret behind every keyed pseudonym: loaded from a file, an environment variable or a caller.

Pseudonyms are HMAC-SHA256 under this secret, so they are reproducible on any worker and in any run that holds
the same secret, and unlinkable to the input for anyone who does not. The secret never appears in a repr, a
log line, a record or an error message; records carry only its fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from privacy_core.errors import SecretError

#: 128 bits: the HMAC key must be at least as strong as the pseudonyms it protects.
MIN_SECRET_BYTES = 16
#: Environment variable the CLI reads when no ``--secret-file`` is given.
SECRET_ENV = "IMAGING_PRIVACY_SECRET"
_MAKE_ONE = 'make one with: python -c "import secrets; print(secrets.token_hex(32))" > secret.key'


@dataclass(frozen=True, repr=False)
class PseudonymKey:
    """A secret for keyed pseudonyms. ``repr`` and ``str`` show only the fingerprint.

    >>> key = PseudonymKey.from_text("0123456789abcdef0123456789abcdef")
    >>> len(key.fingerprint)
    16
    """

    _secret: bytes = field(compare=True)

    def __post_init__(self) -> None:
        if len(self._secret) < MIN_SECRET_BYTES:
            raise SecretError(
                "secret",
                f"has {len(self._secret)} bytes, fewer than the {MIN_SECRET_BYTES} required",
                _MAKE_ONE,
            )

    def __repr__(self) -> str:
        return f"PseudonymKey(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[PseudonymKey], tuple[bytes]]:
        # Pickled only to hand the key to worker processes over a local pipe.
        return (PseudonymKey, (self._secret,))

    @classmethod
    def from_text(cls, text: str) -> PseudonymKey:
        """Build a key from text (surrounding white space is ignored)."""
        return cls(text.strip().encode("utf-8"))

    @classmethod
    def from_file(cls, path: str | Path) -> PseudonymKey:
        """Read the secret from ``path``; the error names the path, never its content."""
        p = Path(path)
        if not p.is_file():
            raise SecretError("--secret-file", f"{p} is not a readable file", _MAKE_ONE)
        return cls.from_text(p.read_text(encoding="utf-8"))

    @classmethod
    def from_env(cls, name: str = SECRET_ENV) -> PseudonymKey:
        """Read the secret from the environment variable ``name``."""
        value = os.environ.get(name, "")
        if not value.strip():
            raise SecretError(name, "is not set", f"set it or pass --secret-file; {_MAKE_ONE}")
        return cls.from_text(value)

    @property
    def fingerprint(self) -> str:
        """A 64-bit public identifier of the secret, safe to record, that reveals nothing about it."""
        return self.mac(b"fingerprint", b"airflow-imaging-privacy key v1").hex()[:16]

    def mac(self, purpose: bytes, value: bytes) -> bytes:
        """HMAC-SHA256 of ``value`` under the secret, domain-separated by ``purpose``."""
        return hmac.new(self._secret, purpose + b"\x00" + value, hashlib.sha256).digest()
