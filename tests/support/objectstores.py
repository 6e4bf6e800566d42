"""Object stores for tests: a local directory, and moto's S3 server over real HTTP on 127.0.0.1 (one per session).

Each test gets an ``S3ObjectStore`` under its own key prefix in the one bucket, so tests never
see each other's objects. moto does not verify presigned signatures or expiry (STACK-NOTES).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from resources.objectstore import ObjectStore
from resources.objectstore_local import LocalObjectStore
from resources.objectstore_s3 import MIN_S3_PART_BYTES, S3ObjectStore

BUCKET = "kiln-test"
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **DUMMY_CREDENTIALS).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def raw_s3(moto_endpoint):
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", **DUMMY_CREDENTIALS)


def s3_store_at(endpoint: str) -> S3ObjectStore:
    return S3ObjectStore(
        bucket=BUCKET,
        prefix=f"t-{uuid.uuid4().hex}",
        endpoint_url=endpoint,
        region_name="us-east-1",
        multipart_part_bytes=MIN_S3_PART_BYTES,  # keeps multipart tests at ~11 MiB
        **DUMMY_CREDENTIALS,
    )


@pytest.fixture
def s3_store(moto_endpoint) -> S3ObjectStore:
    return s3_store_at(moto_endpoint)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ObjectStore:
    """The same test against both backends."""
    if request.param == "local":
        return LocalObjectStore(root=str(tmp_path / "objects"))
    return s3_store_at(request.getfixturevalue("moto_endpoint"))
