"""The secret: loading, strength, and that it never shows in a repr, str, or error."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from privacy_core.errors import SecretError
from privacy_core.keys import PseudonymKey

SECRET = "correct-horse-battery-staple-0123"


def test_repr_and_str_show_fingerprint_only() -> None:
    key = PseudonymKey.from_text(SECRET)
    assert SECRET not in repr(key)
    assert SECRET not in str(key)
    assert key.fingerprint in repr(key)


def test_fingerprint_depends_on_secret() -> None:
    assert PseudonymKey.from_text(SECRET).fingerprint != PseudonymKey.from_text(SECRET + "x").fingerprint


def test_mac_is_domain_separated() -> None:
    key = PseudonymKey.from_text(SECRET)
    assert key.mac(b"uid", b"1.2.3") != key.mac(b"patient", b"1.2.3")


@pytest.mark.parametrize("text", ["", "short", " " * 40])
def test_weak_secret_refused_with_a_fix(text: str) -> None:
    with pytest.raises(SecretError, match=r"secrets\.token_hex"):
        PseudonymKey.from_text(text)


def test_from_file_strips_newline(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text(SECRET + "\n")
    assert PseudonymKey.from_file(path) == PseudonymKey.from_text(SECRET)


def test_missing_file_error_names_path_not_content(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="is not a readable file"):
        PseudonymKey.from_file(tmp_path / "absent")


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGING_PRIVACY_SECRET", SECRET)
    assert PseudonymKey.from_env() == PseudonymKey.from_text(SECRET)
    monkeypatch.delenv("IMAGING_PRIVACY_SECRET")
    with pytest.raises(SecretError, match="is not set"):
        PseudonymKey.from_env()


def test_pickles_for_worker_processes() -> None:
    key = PseudonymKey.from_text(SECRET)
    assert pickle.loads(pickle.dumps(key)) == key
