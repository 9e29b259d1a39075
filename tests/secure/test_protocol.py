"""The file protocol end to end: sites, coordinator and key holders through an exchange folder (and S3).

Exactness is checked through the crypto, with no test switch in the code: the sites' noise draws are
recorded by wrapping the real sampler, and the decrypted total must equal the accepted sites' data plus
exactly those draws.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from privacy_core.dp.ledger import open_ledger
from privacy_core.errors import (
    BudgetExceededError,
    ConfigurationError,
    RoundNotReadyError,
    SecureProtocolError,
    TooFewSitesError,
)
from privacy_core.lineage.record import read_record
from privacy_core.schemas import validate
from privacy_core.secure import roles
from privacy_core.secure.envelopes import KINDS, digest_of, open_envelope, parse_time, seal

LATER = dt.timedelta(hours=2)


@pytest.fixture
def noises(monkeypatch: pytest.MonkeyPatch) -> dict[int, NDArray[np.int64]]:
    """Every site noise draw, in call order: the real exact sampler, observed."""
    drawn: dict[int, NDArray[np.int64]] = {}
    from privacy_core.secure.noise import draw_site_noise as real

    def observed(sigma_site_sq: Fraction, size: int, rng: Any = None) -> NDArray[np.int64]:
        noise = real(sigma_site_sq, size, rng)
        drawn[len(drawn)] = noise.copy()
        return noise

    monkeypatch.setattr("privacy_core.secure.steps.encrypt.draw_site_noise", observed)
    return drawn


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url) as book:
        book.create_dataset("cohort", "zcdp", Fraction(10), delta=1e-6)
    return url


def _data(sites: str, length: int = 10, seed: int = 7) -> dict[str, NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    return {site: rng.integers(0, 60, length) for site in sites}


def _encrypt_all(exchange: str, round_id: str, data: dict[str, Any], fingerprint: str) -> list[dict[str, Any]]:
    return [roles.site_encrypt(exchange, round_id, site, v, key_fingerprint=fingerprint) for site, v in data.items()]


def _deadline(exchange: str, round_id: str) -> dt.datetime:
    spec = json.loads(Path(exchange, round_id, "spec.json").read_text())
    return parse_time(spec["payload"]["deadline"])


def _decrypt(exchange: str, round_id: str, ceremony: dict[str, Any], holders: tuple[int, ...] = (1, 2)) -> None:
    for holder in holders:
        roles.decrypt_share(exchange, round_id, ceremony["shares"][holder - 1])


def _totals(result_path: str) -> NDArray[np.int64]:
    return np.asarray(json.loads(Path(result_path).read_text())["payload"]["totals"], dtype=np.int64)


def _spent(ledger: str) -> Fraction:
    with open_ledger(ledger) as book:
        return book.status("cohort").spent


# ------------------------------------------------------------------------------------------------ full round


def test_dropped_site_still_gives_the_exact_noisy_total(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], ledger: str, noises: dict[int, Any]
) -> None:
    exchange = str(tmp_path / "exchange")
    opened = open_test_round(exchange, "r1", length=400, ledger=ledger)
    data = _data("ABC", length=400)  # site D drops out

    _encrypt_all(exchange, "r1", data, ceremony["key_fingerprint"])
    summary = roles.aggregate(exchange, "r1", now=_deadline(exchange, "r1") + dt.timedelta(seconds=1))
    _decrypt(exchange, "r1", ceremony, holders=(3, 1))
    result = roles.combine_result(exchange, "r1", ledger=ledger)

    assert (summary["arrived"], summary["accepted"], summary["rejected"]) == (3, 3, {})
    totals = _totals(result["result"])
    noise = sum(noises.values())
    np.testing.assert_array_equal(totals, sum(data.values()) + noise)  # exact, through the crypto
    assert len(noises) == 3
    # The sum of three shares of variance 1/2 each: variance 3/2 (the sample variance is within 25%).
    assert float(np.var(noise)) == pytest.approx(1.5, rel=0.25)
    assert result["sites_accepted"] == 3 and result["holders"] == [1, 3]
    assert opened["rho_planned"] >= opened["rho_target"] == 0.5
    assert Fraction(result["rho_exact"]) == _spent(ledger)
    assert result["charged"] is True


def test_sites_and_holders_on_embedded_workers_give_the_same_exact_total(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], ledger: str, noises: dict[int, Any]
) -> None:
    """Encryption and partial decryption spread over an embedded 2-process cluster (``workers=2``) still give
    the accepted sites' data plus exactly their noise, as the in-process steps do."""
    exchange = str(tmp_path / "exchange")
    open_test_round(exchange, "r1", length=300, ledger=ledger)
    data = _data("ABC", length=300)
    for site, values in data.items():
        roles.site_encrypt(exchange, "r1", site, values, key_fingerprint=ceremony["key_fingerprint"], workers=2)
    roles.aggregate(exchange, "r1", now=_deadline(exchange, "r1") + dt.timedelta(seconds=1))
    roles.decrypt_share(exchange, "r1", ceremony["shares"][0], workers=2)
    roles.decrypt_share(exchange, "r1", ceremony["shares"][1])
    result = roles.combine_result(exchange, "r1", ledger=ledger)

    np.testing.assert_array_equal(_totals(result["result"]), sum(data.values()) + sum(noises.values()))
    with pytest.raises(ConfigurationError, match="at least 1"):
        roles.decrypt_share(exchange, "r1", ceremony["shares"][2], workers=0)


def test_result_is_published_with_its_accounting(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], ledger: str
) -> None:
    exchange = str(tmp_path / "exchange")
    open_test_round(exchange, "r1", resolution="1/10", value_bound=1000)
    data = {site: np.linspace(0.0, 9.9, 10) for site in "ABCD"}
    _encrypt_all(exchange, "r1", data, ceremony["key_fingerprint"])
    roles.aggregate(exchange, "r1")  # before the deadline: every allowed site has uploaded
    _decrypt(exchange, "r1", ceremony)

    summary = roles.combine_result(exchange, "r1", ledger=ledger)

    result = open_envelope(Path(summary["result"]).read_bytes(), "result").payload
    noise = result["noise"]
    assert noise["mechanism"] == "distributed discrete Gaussian"
    assert (noise["honest_sites"], noise["collusion_tolerance"]) == (3, 1)
    assert noise["sigma_site_sq_exact"] == "1/2"
    assert noise["rho_exact"] == summary["rho_exact"]
    assert noise["epsilon_delta"] == {"epsilon": summary["epsilon"], "delta": 1e-6}
    assert result["ledger"]["idempotency_key"] == "secure:r1"
    assert result["values"] == pytest.approx([t / 10 for t in result["totals"]])
    np.testing.assert_allclose(result["values"], 4 * np.linspace(0.0, 9.9, 10), atol=3.0)
    assert json.dumps(summary)  # XCom-safe


def test_combine_charges_once_and_a_retry_returns_the_same_result(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], ledger: str
) -> None:
    exchange = str(tmp_path / "exchange")
    open_test_round(exchange, "r1")
    _encrypt_all(exchange, "r1", _data("ABCD"), ceremony["key_fingerprint"])
    roles.aggregate(exchange, "r1")
    _decrypt(exchange, "r1", ceremony)

    first = roles.combine_result(exchange, "r1", ledger=ledger)
    Path(first["result"]).unlink()  # as if the task died after the commit
    again = roles.combine_result(exchange, "r1", ledger=ledger)

    assert (first["charged"], again["charged"]) == (True, False)
    assert again["ledger_commit"] == first["ledger_commit"]
    assert _totals(again["result"]).tolist() == json.loads(json.dumps(_totals(again["result"]).tolist()))
    assert _spent(ledger) == Fraction(first["rho_exact"])
    with open_ledger(ledger) as book:
        commits = [e for e in book.entries("cohort") if e.kind == "commit"]
    assert len(commits) == 1
    assert commits[0].payload["result"]["totals"] == _totals(again["result"]).tolist()


def test_every_step_writes_a_valid_lineage_record(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], ledger: str
) -> None:
    exchange = str(tmp_path / "exchange")
    open_test_round(exchange, "r1")
    _encrypt_all(exchange, "r1", _data("ABC"), ceremony["key_fingerprint"])
    roles.aggregate(exchange, "r1", now=_deadline(exchange, "r1") + dt.timedelta(seconds=1))
    _decrypt(exchange, "r1", ceremony)
    roles.combine_result(exchange, "r1", ledger=ledger)

    records = [read_record(p) for p in sorted((tmp_path / "exchange" / "r1" / "lineage").glob("*.json"))]
    operations = sorted(r["operation"] for r in records)
    assert operations == sorted(
        ["secure-round", *["secure-encrypt"] * 3, "secure-aggregate", *["secure-decrypt-share"] * 2, "secure-combine"]
    )
    for record in records:
        secure = record["privacy"]["secure"]
        assert secure["key_fingerprint"] == ceremony["key_fingerprint"]
        for ref in secure["envelopes_read"] + secure["envelopes_written"]:
            assert ref["digest"].startswith("sha256:")
    combine = next(r for r in records if r["operation"] == "secure-combine")
    assert combine["privacy"]["secure"]["dp"]["charged"] is True
    written = {ref["digest"] for r in records for ref in r["privacy"]["secure"]["envelopes_written"]}
    from privacy_core.secure.envelopes import sha256_digest

    on_disk = {
        sha256_digest(p.read_bytes())
        for p in (tmp_path / "exchange" / "r1").rglob("*.json")
        if "lineage" not in p.parts
    }
    assert on_disk == written  # every envelope in the exchange is named, by the digest of its bytes
    keygen = [read_record(p) for p in Path(ceremony["public_key"]).parent.joinpath("lineage").glob("*.json")]
    assert [r["operation"] for r in keygen] == ["secure-keygen"]


def test_every_envelope_kind_validates_against_its_schema(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], ledger: str
) -> None:
    exchange = tmp_path / "exchange"
    open_test_round(str(exchange), "r1")
    _encrypt_all(str(exchange), "r1", _data("ABCD"), ceremony["key_fingerprint"])
    roles.aggregate(str(exchange), "r1")
    _decrypt(str(exchange), "r1", ceremony)
    roles.combine_result(str(exchange), "r1", ledger=ledger)

    kinds = set()
    for path in (exchange / "r1").rglob("*.json"):
        if "lineage" in path.parts:
            continue
        document = json.loads(path.read_text())
        validate(KINDS[document["kind"]], document)
        kinds.add(document["kind"])
    assert kinds == set(KINDS)
    validate("PaillierPublicKey", json.loads(Path(ceremony["public_key"]).read_text()))
    validate("PaillierKeyShare", json.loads(Path(ceremony["shares"][0]).read_text()))


# ------------------------------------------------------------------------------------------------ rejections


def _forge(exchange: Path, round_id: str, name: str, template: dict[str, Any], **header: Any) -> None:
    """Write uploads/<name> as a validly sealed envelope with ``template``'s payload and a changed header."""
    fields = {
        "round_id": template["round_id"],
        "spec_digest": template["spec_digest"],
        "key_fingerprint": template["key_fingerprint"],
        "sender": template["sender"],
        "created_at": parse_time(template["created_at"]),
    }
    fields.update(header)
    envelope = seal("upload", payload=template["payload"], **fields)
    (exchange / round_id / "uploads" / name).write_bytes(envelope.to_bytes())


def test_bad_uploads_are_rejected_with_their_reasons_and_the_round_completes(
    tmp_path: Path,
    open_test_round: Any,
    ceremony: dict[str, Any],
    other_ceremony: dict[str, Any],
    ledger: str,
    noises: dict[int, Any],
) -> None:
    exchange = tmp_path / "exchange"
    fingerprint = ceremony["key_fingerprint"]
    open_test_round(str(exchange), "r0")  # an earlier round, whose uploads an attacker replays
    roles.site_encrypt(str(exchange), "r0", "D", _data("D")["D"], key_fingerprint=fingerprint)
    open_test_round(str(tmp_path / "twin"), "r1")  # same round id, another spec
    roles.site_encrypt(str(tmp_path / "twin"), "r1", "D", _data("D")["D"], key_fingerprint=fingerprint)
    open_test_round(str(exchange), "r1", sites=["A", "B", "C", "D", "E"])
    data = _data("ABC")
    _encrypt_all(str(exchange), "r1", data, fingerprint)
    uploads = exchange / "r1" / "uploads"
    template = json.loads((uploads / "A.json").read_text())
    deadline = _deadline(str(exchange), "r1")

    roles.site_encrypt(str(exchange), "r1", "D", _data("D")["D"], key_fingerprint=fingerprint)
    tampered = json.loads((uploads / "D.json").read_text())
    text = tampered["payload"]["ciphertexts"]
    tampered["payload"]["ciphertexts"] = ("B" if text[5] != "B" else "C").join([text[:5], text[6:]])
    (uploads / "D.json").write_text(json.dumps(tampered))  # one ciphertext byte flipped
    (uploads / "replayed.json").write_bytes((exchange / "r0" / "uploads" / "D.json").read_bytes())
    (uploads / "twin.json").write_bytes((tmp_path / "twin" / "r1" / "uploads" / "D.json").read_bytes())
    _forge(exchange, "r1", "wrongkey.json", template, sender="E", key_fingerprint=other_ceremony["key_fingerprint"])
    _forge(exchange, "r1", "stranger.json", template, sender="Z")
    _forge(exchange, "r1", "again.json", template, created_at=parse_time(template["created_at"]) + dt.timedelta(1e-3))
    _forge(exchange, "r1", "late.json", template, sender="E", created_at=deadline + dt.timedelta(seconds=1))
    (uploads / "junk.json").write_text("{not json")

    summary = roles.aggregate(str(exchange), "r1", now=deadline + dt.timedelta(seconds=1))

    reasons = {r["file"]: r["reason"] for r in summary["rejections"]}
    assert reasons == {
        "D.json": "tampered",
        "replayed.json": "wrong-round",
        "twin.json": "wrong-spec",
        "wrongkey.json": "wrong-key",
        "stranger.json": "unknown-site",
        "again.json": "duplicate",
        "late.json": "late",
        "junk.json": "malformed",
    }
    assert summary["senders"] == ["A", "B", "C"]
    aggregate = json.loads((exchange / "r1" / "aggregate.json").read_text())["payload"]
    assert {r["file"]: r["detail"] for r in aggregate["rejected"]}["again.json"].startswith("site 'A' already uploaded")
    _decrypt(str(exchange), "r1", ceremony)
    result = roles.combine_result(str(exchange), "r1", ledger=ledger)
    own_noise = [noises[i] for i in (2, 3, 4)]  # draws 0, 1 were the r0 and twin uploads, 5 the tampered D
    np.testing.assert_array_equal(_totals(result["result"]), sum(data.values()) + sum(own_noise))


def test_upload_stored_after_the_deadline_is_late_whatever_it_claims(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any]
) -> None:
    exchange = tmp_path / "exchange"
    open_test_round(str(exchange), "r1")
    _encrypt_all(str(exchange), "r1", _data("ABCD"), ceremony["key_fingerprint"])
    deadline = _deadline(str(exchange), "r1")
    stored = (deadline + roles.MAX_CLOCK_SKEW + dt.timedelta(minutes=1)).timestamp()
    os.utime(exchange / "r1" / "uploads" / "D.json", (stored, stored))  # backdated, written too late

    summary = roles.aggregate(str(exchange), "r1", now=deadline + LATER)

    assert summary["rejected"] == {"late": 1}
    assert summary["senders"] == ["A", "B", "C"]


def test_fewer_than_min_sites_is_refused_with_the_counts(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any]
) -> None:
    exchange = tmp_path / "exchange"
    open_test_round(str(exchange), "r1")
    _encrypt_all(str(exchange), "r1", _data("AB"), ceremony["key_fingerprint"])
    (exchange / "r1" / "uploads" / "junk.json").write_text("[]")

    with pytest.raises(TooFewSitesError) as caught:
        roles.aggregate(str(exchange), "r1", now=_deadline(str(exchange), "r1") + LATER)

    error = caught.value
    assert (error.arrived, error.accepted, error.minimum) == (3, 2, 3)
    assert "3 uploads arrived and 2 were accepted (rejected: 1 malformed)" in str(error)
    assert "at least 3" in str(error) and "noise" in str(error)
    assert not (exchange / "r1" / "aggregate.json").exists()


def test_before_the_deadline_the_round_waits_for_missing_sites(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any]
) -> None:
    exchange = tmp_path / "exchange"
    open_test_round(str(exchange), "r1")
    _encrypt_all(str(exchange), "r1", _data("ABC"), ceremony["key_fingerprint"])

    with pytest.raises(RoundNotReadyError, match="3 of 4 allowed sites"):
        roles.aggregate(str(exchange), "r1")
    _encrypt_all(str(exchange), "r1", _data("D"), ceremony["key_fingerprint"])
    summary = roles.aggregate(str(exchange), "r1")  # everyone is in: no need to wait
    assert summary["accepted"] == 4
    assert roles.aggregate(str(exchange), "r1")["already_aggregated"] is True


# ------------------------------------------------------------------------------------------------- sites


def test_site_refuses_a_round_under_another_key(
    tmp_path: Path, open_test_round: Any, other_ceremony: dict[str, Any]
) -> None:
    exchange = str(tmp_path / "exchange")
    open_test_round(exchange, "r1")
    with pytest.raises(SecureProtocolError, match="not the key this site trusts"):
        roles.site_encrypt(exchange, "r1", "A", _data("A")["A"], key_fingerprint=other_ceremony["key_fingerprint"])
    assert not (tmp_path / "exchange" / "r1" / "uploads").exists()


@pytest.mark.parametrize(
    ("site", "vector", "now", "match"),
    [
        ("Z", np.zeros(10), None, "not allowed"),
        ("A", np.zeros(9), None, "9 values"),
        ("A", np.full(10, 187.25), None, "10 of 10 values exceed ±100"),
        ("A", np.zeros(10), "later", "deadline"),
    ],
)
def test_site_refusals(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], site: str, vector: Any, now: str | None, match: str
) -> None:
    exchange = str(tmp_path / "exchange")
    open_test_round(exchange, "r1")
    when = _deadline(exchange, "r1") + LATER if now else None
    with pytest.raises(SecureProtocolError, match=match) as caught:
        roles.site_encrypt(exchange, "r1", site, vector, key_fingerprint=ceremony["key_fingerprint"], now=when)
    if float(np.max(vector, initial=0)) > 100:
        assert "187" not in str(caught.value)  # counts, never values


def test_site_retry_keeps_its_upload_and_draws_no_new_noise(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], noises: dict[int, Any]
) -> None:
    exchange = str(tmp_path / "exchange")
    open_test_round(exchange, "r1")
    first = roles.site_encrypt(exchange, "r1", "A", _data("A")["A"], key_fingerprint=ceremony["key_fingerprint"])
    again = roles.site_encrypt(exchange, "r1", "A", _data("A")["A"], key_fingerprint=ceremony["key_fingerprint"])
    assert (first["already_uploaded"], again["already_uploaded"]) == (False, True)
    assert again["envelope_digest"] == first["envelope_digest"]
    assert len(noises) == 1


def test_site_reads_npy_and_json_vectors(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.arange(4))
    (tmp_path / "v.json").write_text("[0, 1.5, 2]")
    assert roles.load_vector(tmp_path / "v.npy").tolist() == [0, 1, 2, 3]
    assert roles.load_vector(tmp_path / "v.json").tolist() == [0, 1.5, 2]
    with pytest.raises(ConfigurationError, match="NaN"):
        roles.load_vector([1.0, float("nan")])
    with pytest.raises(ConfigurationError, match="1-D"):
        roles.load_vector(np.zeros((2, 2)))


# ------------------------------------------------------------------------------------------------ coordinator


def test_open_round_is_idempotent_and_refuses_a_different_spec(tmp_path: Path, open_test_round: Any) -> None:
    exchange = str(tmp_path / "exchange")
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    first = open_test_round(exchange, "r1", deadline=deadline)
    again = open_test_round(exchange, "r1", deadline=deadline)
    assert again["already_open"] is True and again["spec_digest"] == first["spec_digest"]
    with pytest.raises(ConfigurationError, match="another spec"):
        open_test_round(exchange, "r1", deadline=deadline, rho="1/4")


def test_open_round_refuses_what_the_budget_cannot_pay(tmp_path: Path, open_test_round: Any) -> None:
    ledger = f"sqlite:///{tmp_path / 'small.db'}"
    with open_ledger(ledger) as book:
        book.create_dataset("cohort", "zcdp", Fraction(1, 2))
    with pytest.raises(BudgetExceededError, match="rho"):
        open_test_round(str(tmp_path / "exchange"), "r1", ledger=ledger)  # worst case charges more than 1/2
    assert not (tmp_path / "exchange" / "r1" / "spec.json").exists()


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"min_sites": 5}, "min_sites"),
        ({"max_sites": 3}, "max_sites"),
        ({"sites": ["A", "A"]}, "sites"),
        ({"collusion": 3}, "collusion"),
        ({"deadline": "2000-01-01T00:00:00Z"}, "deadline"),
        ({"delta": 1.5}, "delta"),
        ({"value_bound": 0}, "value_bound"),
    ],
)
def test_open_round_bad_settings(tmp_path: Path, open_test_round: Any, overrides: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_test_round(str(tmp_path / "exchange"), "r1", **overrides)
    assert caught.value.setting == setting


# ------------------------------------------------------------------------------------------------ key holders


def _aggregated(tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], sites: str = "ABCD") -> Path:
    exchange = tmp_path / "exchange"
    open_test_round(str(exchange), "r1")
    _encrypt_all(str(exchange), "r1", _data(sites), ceremony["key_fingerprint"])
    roles.aggregate(str(exchange), "r1", now=_deadline(str(exchange), "r1") + LATER)
    return exchange


def test_too_few_shares_refuse_and_charge_nothing(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], ledger: str
) -> None:
    exchange = _aggregated(tmp_path, open_test_round, ceremony)
    _decrypt(str(exchange), "r1", ceremony, holders=(2,))
    with pytest.raises(SecureProtocolError, match="1 valid decryption shares of the 2 needed"):
        roles.combine_result(str(exchange), "r1", ledger=ledger)
    assert _spent(ledger) == 0
    assert not (exchange / "r1" / "result.json").exists()
    _decrypt(str(exchange), "r1", ceremony, holders=(3,))
    assert roles.combine_result(str(exchange), "r1", ledger=ledger)["charged"] is True


def test_a_forged_share_does_not_count(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], ledger: str
) -> None:
    exchange = _aggregated(tmp_path, open_test_round, ceremony)
    _decrypt(str(exchange), "r1", ceremony, holders=(1, 2))
    path = exchange / "r1" / "shares" / "holder-2.json"
    document = json.loads(path.read_text())
    share = document["payload"]["share"]
    share["proofs"][0][1] = str(int(share["proofs"][0][1]) + 1)
    document["content_digest"] = digest_of(document["payload"])  # resealed: only the proof is wrong
    path.write_text(json.dumps(document))
    with pytest.raises(SecureProtocolError, match=r"holder-2\.json: fails its proof"):
        roles.combine_result(str(exchange), "r1", ledger=ledger)


def test_holder_refuses_an_aggregate_that_is_not_the_sum_it_claims(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any]
) -> None:
    exchange = _aggregated(tmp_path, open_test_round, ceremony)
    path = exchange / "r1" / "aggregate.json"
    document = json.loads(path.read_text())
    upload = json.loads((exchange / "r1" / "uploads" / "A.json").read_text())
    document["payload"]["ciphertexts"] = upload["payload"]["ciphertexts"]  # one site's upload, dressed as the sum
    document["content_digest"] = digest_of(document["payload"])
    path.write_text(json.dumps(document))
    with pytest.raises(SecureProtocolError, match="not the sum of the uploads it lists"):
        roles.decrypt_share(str(exchange), "r1", ceremony["shares"][0])
    assert not (exchange / "r1" / "shares").exists()


def test_holder_refuses_an_aggregate_of_too_few_sites(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any]
) -> None:
    exchange = _aggregated(tmp_path, open_test_round, ceremony)
    path = exchange / "r1" / "aggregate.json"
    document = json.loads(path.read_text())
    document["payload"]["accepted"] = document["payload"]["accepted"][:2]
    document["content_digest"] = digest_of(document["payload"])
    path.write_text(json.dumps(document))
    with pytest.raises(SecureProtocolError, match="fewer than min_sites=3"):
        roles.decrypt_share(str(exchange), "r1", ceremony["shares"][0])


def test_holder_decrypts_one_aggregate_per_round(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any]
) -> None:
    exchange = _aggregated(tmp_path, open_test_round, ceremony)
    journal = tmp_path / "journal.json"
    first = roles.decrypt_share(str(exchange), "r1", ceremony["shares"][0], journal=journal)
    assert roles.decrypt_share(str(exchange), "r1", ceremony["shares"][0], journal=journal)["already_shared"]
    # The coordinator replaces the aggregate with the sum of three of the four uploads and asks again.
    (exchange / "r1" / "shares" / "holder-1.json").unlink()
    (exchange / "r1" / "aggregate.json").unlink()
    (exchange / "r1" / "uploads" / "D.json").unlink()
    second = roles.aggregate(str(exchange), "r1", now=_deadline(str(exchange), "r1") + LATER)
    assert second["aggregate_digest"] != first["aggregate_digest"]
    with pytest.raises(SecureProtocolError, match="already decrypted another aggregate"):
        roles.decrypt_share(str(exchange), "r1", ceremony["shares"][0], journal=journal)


def test_holder_refuses_a_share_of_another_key(
    tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], other_ceremony: dict[str, Any]
) -> None:
    exchange = _aggregated(tmp_path, open_test_round, ceremony)
    with pytest.raises(SecureProtocolError, match="this share is for key"):
        roles.decrypt_share(str(exchange), "r1", other_ceremony["shares"][0])


def test_holder_refuses_a_share_file_others_can_read(tmp_path: Path, ceremony: dict[str, Any]) -> None:
    leaky = tmp_path / "share.json"
    leaky.write_bytes(Path(ceremony["shares"][0]).read_bytes())
    leaky.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        roles.decrypt_share(str(tmp_path / "exchange"), "r1", leaky)


# ------------------------------------------------------------------------------------------------ keygen


def test_keygen_writes_private_shares_and_never_overwrites(ceremony: dict[str, Any]) -> None:
    folder = Path(ceremony["public_key"]).parent
    assert sorted(p.name for p in folder.glob("*.json") if not p.name.endswith(".journal.json")) == [
        "key-share-1.json",
        "key-share-2.json",
        "key-share-3.json",
        "public-key.json",
    ]
    for share in ceremony["shares"]:
        assert Path(share).stat().st_mode & 0o777 == 0o600
    assert "secret" not in json.dumps(ceremony)
    with pytest.raises(ConfigurationError, match="already holds a key"):
        roles.keygen(folder, holders=3, threshold=2, bits=512)
    with pytest.raises(ConfigurationError, match="local folder"):
        roles.keygen("s3://bucket/keys", holders=3, threshold=2, bits=512)


# ------------------------------------------------------------------------------------------------ secrets


def _secret_strings(ceremony: dict[str, Any]) -> list[str]:
    out = []
    for path in ceremony["shares"]:
        secret = int(json.loads(Path(path).read_text())["secret"])
        out += [str(secret), format(secret, "x"), format(secret, "X"), str(secret)[:40]]
    return out


def test_no_secret_or_site_vector_leaves_its_owner(
    tmp_path: Path,
    open_test_round: Any,
    ceremony: dict[str, Any],
    ledger: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    noises: dict[int, Any],
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    exchange = str(tmp_path / "exchange")
    summaries = [open_test_round(exchange, "r1", length=12, value_bound=2000, ledger=ledger)]
    data = {site: np.arange(12) * (index + 7) + 1000 for index, site in enumerate("ABC")}
    summaries += _encrypt_all(exchange, "r1", data, ceremony["key_fingerprint"])
    summaries.append(roles.aggregate(exchange, "r1", now=_deadline(exchange, "r1") + LATER))
    summaries += [roles.decrypt_share(exchange, "r1", path) for path in ceremony["shares"]]
    summaries.append(roles.combine_result(exchange, "r1", ledger=ledger))
    print(json.dumps(summaries))  # what an operator pushes to XCom and logs

    texts = [p.read_text() for p in (tmp_path / "exchange").rglob("*") if p.is_file()]
    texts += [p.read_text() for p in Path(ceremony["public_key"]).parent.joinpath("lineage").glob("*.json")]
    texts += [json.dumps(summaries), json.dumps(ceremony), capsys.readouterr().out, caplog.text]
    with open_ledger(ledger) as book:
        texts += [json.dumps([e.record() for e in book.entries("cohort")])]
    plain = []
    for index, (site, vector) in enumerate(data.items()):
        noisy = vector + noises[index]
        from privacy_core.secure.packing import SlotLayout

        layout = SlotLayout.from_json(
            json.loads(Path(exchange, "r1", "spec.json").read_text())["payload"]["slot_layout"]
        )
        plain += [str(p) for p in layout.pack(noisy)]  # the packed plaintexts
        for values in (vector, noisy):
            plain += [json.dumps(values.tolist()), ", ".join(map(str, values)), ",".join(map(str, values))]
        assert site
    secrets = _secret_strings(ceremony)
    assert len(texts) > 15
    for text in texts:
        assert [s for s in secrets if s in text] == []
        assert [p for p in plain if p in text] == []
    # the check itself can see a leak: the share files do hold their secrets
    assert any(s in Path(ceremony["shares"][0]).read_text() for s in secrets)


# ------------------------------------------------------------------------------------------------ S3


def test_s3_exchange_round(
    s3_endpoint: str, open_test_round: Any, ceremony: dict[str, Any], ledger: str, noises: dict[int, Any]
) -> None:
    import s3fs

    options: dict[str, Any] = {"endpoint_url": s3_endpoint, "key": "x", "secret": "x"}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("exchange")
    exchange = "s3://exchange/rounds"
    fingerprint = ceremony["key_fingerprint"]
    opened = open_test_round(exchange, "r1", storage_options=options)
    data = _data("ABC")
    for site, vector in data.items():
        roles.site_encrypt(exchange, "r1", site, vector, key_fingerprint=fingerprint, storage_options=options)
    fs.pipe_file("exchange/rounds/r1/uploads/junk.json", b"{")
    deadline = parse_time(opened["deadline"])

    summary = roles.aggregate(exchange, "r1", now=deadline + LATER, storage_options=options)
    for path in ceremony["shares"][:2]:
        roles.decrypt_share(exchange, "r1", path, storage_options=options)
    result = roles.combine_result(exchange, "r1", ledger=ledger, storage_options=options)

    assert summary["rejected"] == {"malformed": 1} and summary["accepted"] == 3
    assert result["result"] == "s3://exchange/rounds/r1/result.json"
    totals = json.loads(fs.cat_file("exchange/rounds/r1/result.json"))["payload"]["totals"]
    assert totals == (sum(data.values()) + sum(noises.values())).tolist()
    assert len(fs.ls("exchange/rounds/r1/lineage")) == 8  # round, 3 sites, aggregate, 2 holders, combine
