"""The JSON envelopes sites, coordinator and key holders exchange, their digests and their checks.

Every envelope carries the same header: ``schema``, ``kind``, ``round_id``, ``spec_digest``,
``key_fingerprint``, ``sender`` (a site id, ``holder-<i>`` or ``coordinator``), ``created_at`` and a
``content_digest`` (SHA-256 over the canonical JSON of ``payload``). The round spec is an envelope too; its
``spec_digest`` is the SHA-256 of the canonical JSON of all its other fields, so every later envelope names
the exact spec it answers. Schemas live in ``schemas/Secure<Kind>-1.0.json``.

The digests catch corruption and edits (a flipped ciphertext byte is ``tampered``); *who* may write an
envelope is the exchange's access control (each site writes only its own upload). Envelopes never hold
plaintext site values, private key material or decryption secrets: uploads and aggregates hold ciphertexts,
decryption shares hold partial decryptions, which are public by design of threshold Paillier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal

from privacy_core.errors import ConfigurationError, PrivacyCoreError, SchemaValidationError
from privacy_core.schemas import validate

if TYPE_CHECKING:
    from privacy_core.secure.keys import PublicKey
    from privacy_core.secure.noise import NoisePlan
    from privacy_core.secure.packing import SlotLayout

__all__ = [
    "COORDINATOR",
    "KINDS",
    "REJECTION_REASONS",
    "Envelope",
    "EnvelopeRejected",
    "RoundSpec",
    "canonical_json",
    "check_token",
    "digest_of",
    "format_time",
    "holder_sender",
    "open_envelope",
    "parse_time",
    "seal",
    "sha256_digest",
]

Kind = Literal["round", "upload", "aggregate", "decryption-share", "result"]
#: Each kind's schema name; all are at version 1.0.
KINDS: Final[dict[str, str]] = {
    "round": "SecureRound",
    "upload": "SecureUpload",
    "aggregate": "SecureAggregate",
    "decryption-share": "SecureDecryptionShare",
    "result": "SecureResult",
}
VERSION = "1.0"
#: Why the coordinator leaves an upload out; a fixed set so summaries and lineage can count them.
REJECTION_REASONS: Final[tuple[str, ...]] = (
    "wrong-round",
    "wrong-spec",
    "wrong-key",
    "unknown-site",
    "duplicate",
    "late",
    "malformed",
    "tampered",
)
COORDINATOR = "coordinator"
#: Round ids and site ids become file names: a letter or digit, then letters, digits, ``.``, ``_``, ``-``.
TOKEN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class EnvelopeRejected(PrivacyCoreError):
    """An envelope cannot be used; ``reason`` is one of :data:`REJECTION_REASONS`, ``detail`` says why.

    ``detail`` names fields and digests, never ciphertexts or values, so it is safe for logs and records.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def canonical_json(obj: Any) -> bytes:
    """The one byte form digests are taken over: sorted keys, no spaces, ASCII, no NaN.

    >>> canonical_json({"b": 1, "a": [1, 2]})
    b'{"a":[1,2],"b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def sha256_digest(data: bytes) -> str:
    """``"sha256:<hex>"`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of(obj: Any) -> str:
    """``"sha256:<hex>"`` of ``obj``'s canonical JSON.

    >>> digest_of({}) == sha256_digest(b"{}")
    True
    """
    return sha256_digest(canonical_json(obj))


def check_token(value: object, setting: str) -> str:
    """``value`` if it is a safe id (it becomes a file name), else a ConfigurationError naming ``setting``.

    >>> check_token("site-A", "site_id")
    'site-A'
    """
    if not isinstance(value, str) or not TOKEN.match(value):
        raise ConfigurationError(
            setting,
            f"is {value!r}, not a safe id",
            "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


def holder_sender(holder: int) -> str:
    """The sender name of key holder ``holder`` (1-based), e.g. ``holder-2``."""
    return f"holder-{holder}"


def format_time(moment: dt.datetime) -> str:
    """An aware datetime as ISO 8601 UTC with microseconds and ``Z``.

    >>> format_time(dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    '2025-01-02T03:04:05.000000Z'
    """
    if moment.tzinfo is None:
        raise ConfigurationError("time", f"{moment.isoformat()} has no time zone", "give an aware UTC datetime")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object, setting: str = "time") -> dt.datetime:
    """An ISO 8601 time with a zone (``Z`` or ``+hh:mm``) as an aware UTC datetime.

    >>> parse_time("2025-01-02T03:04:05Z").isoformat()
    '2025-01-02T03:04:05+00:00'
    """
    try:
        moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            setting, f"is {text!r}, not an ISO 8601 time", "write e.g. 2025-06-01T18:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ConfigurationError(setting, f"is {text!r}, without a time zone", "end it with Z for UTC")
    return moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class Envelope:
    """One exchanged JSON document: the common header plus a kind-specific ``payload``."""

    kind: str
    round_id: str
    spec_digest: str
    key_fingerprint: str
    sender: str
    created_at: str
    payload: dict[str, Any]
    content_digest: str

    @property
    def schema(self) -> str:
        """``"<Name>/1.0"`` of this kind."""
        return f"{KINDS[self.kind]}/{VERSION}"

    def to_json(self) -> dict[str, Any]:
        """The envelope as it is written."""
        return {
            "schema": self.schema,
            "kind": self.kind,
            "round_id": self.round_id,
            "spec_digest": self.spec_digest,
            "key_fingerprint": self.key_fingerprint,
            "sender": self.sender,
            "created_at": self.created_at,
            "payload": self.payload,
            "content_digest": self.content_digest,
        }

    def to_bytes(self) -> bytes:
        """Indented, key-sorted UTF-8 JSON, as written to the exchange. Records and the aggregate name a
        written envelope by ``sha256_digest`` of exactly these bytes, so ``sha256sum`` can check it."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")


def _spec_digest(document: dict[str, Any]) -> str:
    """A round spec's digest: over every field but ``spec_digest`` itself."""
    return digest_of({k: v for k, v in document.items() if k != "spec_digest"})


def seal(
    kind: Kind,
    *,
    round_id: str,
    spec_digest: str | None,
    key_fingerprint: str,
    sender: str,
    payload: dict[str, Any],
    created_at: dt.datetime | None = None,
) -> Envelope:
    """Build an envelope, computing its digests, and validate it against its schema.

    :param spec_digest: the round spec's digest; None only for ``kind="round"``, whose digest is computed here.
    :raises SchemaValidationError: a field does not fit the schema (a bug in the caller, not bad input).
    """
    moment = format_time(created_at or dt.datetime.now(dt.UTC))
    content = digest_of(payload)
    if kind == "round":
        document = {
            "schema": f"{KINDS[kind]}/{VERSION}",
            "kind": kind,
            "round_id": round_id,
            "key_fingerprint": key_fingerprint,
            "sender": sender,
            "created_at": moment,
            "payload": payload,
            "content_digest": content,
        }
        spec_digest = _spec_digest(document)
    if spec_digest is None:
        raise ConfigurationError("spec_digest", "is missing", "give the digest of the round spec this answers")
    envelope = Envelope(kind, round_id, spec_digest, key_fingerprint, sender, moment, payload, content)
    validate(KINDS[kind], envelope.to_json())
    return envelope


def open_envelope(data: bytes, kind: Kind) -> Envelope:
    """Parse, schema-check and digest-check an envelope of ``kind``.

    :raises EnvelopeRejected: ``malformed`` (not JSON, wrong kind, schema mismatch) or ``tampered`` (a digest
        does not match the content).
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeRejected("malformed", f"not UTF-8 JSON ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise EnvelopeRejected("malformed", "not a JSON object")
    if document.get("kind") != kind or document.get("schema") != f"{KINDS[kind]}/{VERSION}":
        raise EnvelopeRejected(
            "malformed",
            f"kind {str(document.get('kind'))[:40]!r} / schema {str(document.get('schema'))[:60]!r}, "
            f"expected {kind} / {KINDS[kind]}/{VERSION}",
        )
    try:
        validate(KINDS[kind], document)
    except SchemaValidationError as exc:
        raise EnvelopeRejected("malformed", f"does not match {exc.schema} at {exc.path or '/'}") from None
    if digest_of(document["payload"]) != document["content_digest"]:
        raise EnvelopeRejected("tampered", "the payload does not match its content_digest")
    if kind == "round" and _spec_digest(document) != document["spec_digest"]:
        raise EnvelopeRejected("tampered", "the round spec does not match its spec_digest")
    return Envelope(
        kind=document["kind"],
        round_id=document["round_id"],
        spec_digest=document["spec_digest"],
        key_fingerprint=document["key_fingerprint"],
        sender=document["sender"],
        created_at=document["created_at"],
        payload=document["payload"],
        content_digest=document["content_digest"],
    )


@dataclass(frozen=True)
class RoundSpec:
    """A round spec envelope read into typed values, every part checked against the others.

    Built only by :meth:`from_envelope`, so holding one means the key, layout and noise plan agree.
    """

    envelope: Envelope
    public_key: PublicKey
    layout: SlotLayout
    noise: NoisePlan
    allowed_sites: tuple[str, ...]
    max_sites: int
    deadline: dt.datetime
    statistic: str
    length: int
    value_bound_data: int
    resolution: Fraction
    contribution_bound: int
    dataset: str
    delta: float

    @property
    def round_id(self) -> str:
        return self.envelope.round_id

    @property
    def spec_digest(self) -> str:
        return self.envelope.spec_digest

    @property
    def key_fingerprint(self) -> str:
        return self.envelope.key_fingerprint

    @property
    def min_sites(self) -> int:
        return self.noise.min_sites

    @property
    def collusion(self) -> int:
        return self.noise.collusion

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> RoundSpec:
        """Read a ``round`` envelope (already digest-checked by :func:`open_envelope`).

        :raises EnvelopeRejected: ``malformed``, when the key, layout, sites or noise do not fit together.
        """
        from privacy_core.secure.keys import PublicKey
        from privacy_core.secure.noise import plan_noise
        from privacy_core.secure.packing import SlotLayout

        body = envelope.payload
        statistic, sites, privacy = body["statistic"], body["sites"], body["privacy"]
        try:
            public = PublicKey.from_json(body["public_key"])
            layout = SlotLayout.from_json(body["slot_layout"])
            plan = plan_noise(
                Fraction(statistic["l2_sensitivity_sq"]),
                Fraction(privacy["rho_exact"]),
                sites["min_sites"],
                sites["collusion_tolerance"],
                statistic["length"],
            )
            deadline = parse_time(body["deadline"], "deadline")
        except (ConfigurationError, ValueError, ZeroDivisionError) as exc:
            raise EnvelopeRejected("malformed", f"the round spec does not hold together ({exc})") from None
        allowed = tuple(sites["allowed"])
        problems = []
        if public.fingerprint != envelope.key_fingerprint:
            problems.append("its public key does not have its key_fingerprint")
        if layout.key_bits != public.bits:
            problems.append(f"the slot layout is for {layout.key_bits}-bit keys, the key has {public.bits}")
        if layout.max_sites < len(allowed) or sites["max_sites"] != layout.max_sites:
            problems.append("the slot layout has no room for every allowed site")
        if sites["min_sites"] > len(allowed):
            problems.append("min_sites is more than the allowed sites")
        if layout.value_bound != statistic["value_bound_data"] + plan.tail_bound:
            problems.append("the slot bound is not the data bound plus the noise tail bound")
        if Fraction(privacy["noise"]["sigma_site_sq_exact"]) != plan.sigma_site_sq:
            problems.append("the per-site noise does not follow from rho, the sensitivity and the sites")
        if problems:
            raise EnvelopeRejected("malformed", "; ".join(problems))
        return cls(
            envelope=envelope,
            public_key=public,
            layout=layout,
            noise=plan,
            allowed_sites=allowed,
            max_sites=layout.max_sites,
            deadline=deadline,
            statistic=statistic["name"],
            length=statistic["length"],
            value_bound_data=statistic["value_bound_data"],
            resolution=Fraction(statistic["resolution"]),
            contribution_bound=statistic["contribution_bound"],
            dataset=privacy["dataset"],
            delta=float(privacy["delta"]),
        )
