"""Envelopes: digests, schema checks, and the round spec read back into consistent, typed values."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from privacy_core.errors import ConfigurationError
from privacy_core.schemas import validate
from privacy_core.secure.envelopes import (
    KINDS,
    EnvelopeRejected,
    RoundSpec,
    canonical_json,
    check_token,
    digest_of,
    format_time,
    open_envelope,
    parse_time,
    seal,
    sha256_digest,
)

SPEC = "sha256:" + "ab" * 32
KEY = "sha256:" + "cd" * 32
UPLOAD: dict[str, Any] = {
    "length": 3,
    "plaintexts": 1,
    "slot_layout": {
        "schema": "PackedSlotLayout/1.0",
        "value_bound": 10,
        "max_sites": 2,
        "key_bits": 512,
        "slot_bits": 6,
        "slots": 85,
    },
    "ciphertexts": "AAEC",
}


def _upload(**changes: Any) -> bytes:
    envelope = seal("upload", round_id="r1", spec_digest=SPEC, key_fingerprint=KEY, sender="A", payload=UPLOAD)
    document = envelope.to_json()
    document.update(changes)
    return json.dumps(document).encode()


def test_seal_then_open_round_trips() -> None:
    sealed = seal("upload", round_id="r1", spec_digest=SPEC, key_fingerprint=KEY, sender="A", payload=UPLOAD)
    opened = open_envelope(sealed.to_bytes(), "upload")
    assert opened == sealed
    assert opened.schema == "SecureUpload/1.0"
    assert opened.content_digest == digest_of(UPLOAD)


def test_canonical_json_is_key_order_independent() -> None:
    assert canonical_json({"b": [1, {"y": 2, "x": 1}], "a": "é"}) == b'{"a":"\\u00e9","b":[1,{"x":1,"y":2}]}'
    assert digest_of({"a": 1, "b": 2}) == digest_of({"b": 2, "a": 1}) == sha256_digest(b'{"a":1,"b":2}')


def test_changed_payload_is_tampered() -> None:
    document = json.loads(_upload())
    document["payload"]["ciphertexts"] = "AAED"
    with pytest.raises(EnvelopeRejected) as caught:
        open_envelope(json.dumps(document).encode(), "upload")
    assert caught.value.reason == "tampered"


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"{}", "expected upload"),
    ],
)
def test_unreadable_envelopes_are_malformed(data: bytes, detail: str) -> None:
    with pytest.raises(EnvelopeRejected, match=detail) as caught:
        open_envelope(data, "upload")
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "changes",
    [
        {"extra": 1},  # closed schema
        {"sender": "../etc"},  # not a safe id
        {"kind": "aggregate"},  # another kind
        {"spec_digest": "md5:00"},  # not a sha256 digest
    ],
)
def test_schema_mismatch_is_malformed(changes: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeRejected) as caught:
        open_envelope(_upload(**changes), "upload")
    assert caught.value.reason == "malformed"


def test_envelopes_refuse_plaintext_fields() -> None:
    document = json.loads(_upload())
    document["payload"]["values"] = [1, 2, 3]
    document["content_digest"] = digest_of(document["payload"])
    with pytest.raises(EnvelopeRejected, match="payload") as caught:
        open_envelope(json.dumps(document).encode(), "upload")
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_closed_schema(kind: str) -> None:
    from privacy_core.schemas import load_schema

    schema = load_schema(KINDS[kind])
    assert schema["additionalProperties"] is False
    assert schema["properties"]["payload"]["additionalProperties"] is False
    assert schema["properties"]["kind"] == {"const": kind}


@pytest.mark.parametrize(("value", "ok"), [("site-A", True), ("r.2025_01", True), ("../x", False), ("", False)])
def test_tokens(value: str, ok: bool) -> None:
    if ok:
        assert check_token(value, "site_id") == value
    else:
        with pytest.raises(ConfigurationError, match="site_id"):
            check_token(value, "site_id")


def test_times_are_utc() -> None:
    moment = parse_time("2025-06-01T20:00:00+02:00")
    assert format_time(moment) == "2025-06-01T18:00:00.000000Z"
    with pytest.raises(ConfigurationError, match="time zone"):
        parse_time("2025-06-01T18:00:00")
    with pytest.raises(ConfigurationError, match="no time zone"):
        format_time(dt.datetime(2025, 1, 1))


# ------------------------------------------------------------------------------------------------- round spec


def _spec_document(tmp_path: Path, open_test_round: Any) -> dict[str, Any]:
    open_test_round(str(tmp_path), "r1")
    document: dict[str, Any] = json.loads((tmp_path / "r1" / "spec.json").read_text())
    return document


def _reseal(document: dict[str, Any]) -> bytes:
    """A doctored spec with valid digests: what a careless or hostile editor could produce."""
    document["content_digest"] = digest_of(document["payload"])
    document["spec_digest"] = digest_of({k: v for k, v in document.items() if k != "spec_digest"})
    return json.dumps(document).encode()


def test_round_spec_reads_back(tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any]) -> None:
    document = _spec_document(tmp_path, open_test_round)
    validate("SecureRound", document)
    spec = RoundSpec.from_envelope(open_envelope(json.dumps(document).encode(), "round"))
    assert spec.key_fingerprint == ceremony["key_fingerprint"] == spec.public_key.fingerprint
    assert spec.allowed_sites == ("A", "B", "C", "D")
    assert (spec.min_sites, spec.collusion, spec.max_sites) == (3, 1, 4)
    assert spec.noise.sigma_site_sq * 2 == spec.noise.sigma_sq == 1
    assert spec.layout.value_bound == 100 + spec.noise.tail_bound
    assert spec.layout.key_bits == 512


def test_spec_digest_covers_every_field(tmp_path: Path, open_test_round: Any) -> None:
    document = _spec_document(tmp_path, open_test_round)
    document["created_at"] = "2020-01-01T00:00:00.000000Z"
    with pytest.raises(EnvelopeRejected, match="spec_digest") as caught:
        open_envelope(json.dumps(document).encode(), "round")
    assert caught.value.reason == "tampered"


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("privacy", "noise", "sigma_site_sq_exact"), "1/8", "per-site noise"),
        (("statistic", "value_bound_data"), 5000, "slot bound"),
        (("sites", "min_sites"), 4, "per-site noise"),
        (("sites", "allowed"), ["A", "B", "C", "D", "E"], "no room"),
    ],
)
def test_inconsistent_specs_are_malformed(
    tmp_path: Path, open_test_round: Any, path: tuple[str, ...], value: Any, problem: str
) -> None:
    document = _spec_document(tmp_path, open_test_round)
    target = document["payload"]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    envelope = open_envelope(_reseal(document), "round")  # the digests match: only the content is wrong
    with pytest.raises(EnvelopeRejected, match=problem) as caught:
        RoundSpec.from_envelope(envelope)
    assert caught.value.reason == "malformed"


def test_spec_with_a_swapped_key_is_malformed(tmp_path: Path, open_test_round: Any, other_ceremony: Any) -> None:
    document = _spec_document(tmp_path, open_test_round)
    document["payload"]["public_key"] = json.loads(Path(other_ceremony["public_key"]).read_text())
    with pytest.raises(EnvelopeRejected, match="key_fingerprint"):
        RoundSpec.from_envelope(open_envelope(_reseal(document), "round"))
