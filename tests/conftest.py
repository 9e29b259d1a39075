"""Shared fixtures: pydicom's bundled real files, a test secret, and generated PHI corpora."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from privacy_core.keys import PseudonymKey

#: pydicom's 86 real test files. Listed directly: get_testdata_files() tries to download and hangs here.
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
TEST_SECRET = "test-secret-0123456789abcdef-not-for-production"


@pytest.fixture(scope="session")
def pydicom_files() -> Path:
    return PYDICOM_FILES


@pytest.fixture(scope="session")
def key() -> PseudonymKey:
    return PseudonymKey.from_text(TEST_SECRET)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.key"
    path.write_text(TEST_SECRET + "\n")
    return path


@pytest.fixture
def real_corpus(tmp_path: Path) -> Path:
    """A copy of every pydicom bundled file, in its folder structure."""
    root = tmp_path / "real"
    shutil.copytree(PYDICOM_FILES, root)
    return root
