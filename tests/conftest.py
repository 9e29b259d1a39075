"""Shared fixtures: pydicom's bundled real files, a test secret, and generated PHI corpora."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback, with dummy credentials and no proxy in the way."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        yield f"http://{host}:{port}"
    server.stop()
