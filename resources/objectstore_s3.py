"""The S3 backend of the object store (any S3-compatible endpoint: AWS, MinIO, R2, moto).

Streams uploads as multipart parts while hashing, reads ranges, and signs SigV4 presigned
downloads that carry ``Content-Disposition: attachment``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import Field, PrivateAttr

from pipelines.errors import ObjectMissing, StorageKeyError
from resources.objectstore import (
    CHUNK_SIZE,
    MAX_PRESIGN_SECONDS,
    IncompleteWritesReport,
    ObjectInfo,
    ObjectStore,
    ObjectWriter,
    _check_range,
    as_utc,
    content_disposition,
    validate_key,
    validate_prefix,
)

MIN_S3_PART_BYTES = 5 * 1024 * 1024  # S3 refuses smaller multipart parts (except the last)
DEFAULT_S3_PART_BYTES = 8 * 1024 * 1024


_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ObjectStore(ObjectStore):
    """Objects in an S3 bucket through a boto3 client; presigned downloads."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region_name: str | None = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)  # None: the standard AWS chain
    # Objects of at least one part go up as multipart; S3 refuses parts under 5 MiB.
    multipart_part_bytes: int = Field(default=DEFAULT_S3_PART_BYTES, ge=MIN_S3_PART_BYTES)

    _client: Any = PrivateAttr(default=None)
    _presign_client: Any = PrivateAttr(default=None)

    def _boto_client(self, config: Config) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            config=config,
        )

    def _s3(self) -> Any:
        if self._client is None:  # boto3 clients are thread-safe; a racing duplicate is harmless
            # The client dagster-aws' S3Resource built (5 attempts), without loading Dagster in the API.
            self._client = self._boto_client(Config(retries={"max_attempts": 5}))
        return self._client

    def _presigner(self) -> Any:
        # The default client may presign SigV2-style in us-east-1; presigned links must be SigV4.
        if self._presign_client is None:
            self._presign_client = self._boto_client(Config(signature_version="s3v4"))
        return self._presign_client

    def _object_key(self, key: str) -> str:
        validate_key(key)
        return self._bucket_prefix() + key

    def open_writer(self, key: str, *, max_bytes: int | None = None,
                    content_type: str | None = None) -> ObjectWriter:
        return _S3Writer(self, key, max_bytes, content_type)

    def iter_range(self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        _check_range(start, end)
        object_key = self._object_key(key)
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = self._s3().get_object(Bucket=self.bucket, Key=object_key, **extra)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _MISSING_CODES:
                raise ObjectMissing(f"no object at {key!r}") from None
            if code == "InvalidRange":  # start at or past the end: nothing to send, as locally
                return iter(())
            raise
        return _iter_body(response["Body"], chunk_size)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self._s3().head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return None
            raise

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise ObjectMissing(f"no object at {key!r}")
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def delete(self, key: str) -> None:
        self._s3().delete_object(Bucket=self.bucket, Key=self._object_key(key))  # S3 delete is idempotent

    def presigned_url(self, key: str, *, expires_in: int, filename: str, content_type: str) -> str | None:
        if not 0 < expires_in <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_in must be within 1..{MAX_PRESIGN_SECONDS} seconds")
        return self._presigner().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._object_key(key),
                "ResponseContentDisposition": content_disposition(filename),
                "ResponseContentType": content_type,
            },
            ExpiresIn=expires_in,
        )


    def _bucket_prefix(self) -> str:
        """The bucket-side prefix every logical key lives under ("" or "<prefix>/")."""
        prefix = self.prefix.strip("/")
        if prefix:
            validate_key(prefix)
        return f"{prefix}/" if prefix else ""

    def list_objects(self, prefix: str, *, older_than: datetime | None = None) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)  # here, not in the generator: a bad prefix fails at the call
        cutoff = None if older_than is None else as_utc(older_than)
        return self._listing(self._bucket_prefix(), prefix, cutoff)

    def _listing(self, bucket_prefix: str, prefix: str, cutoff: datetime | None) -> Iterator[ObjectInfo]:
        pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=bucket_prefix + prefix)
        for page in pages:
            for item in page.get("Contents", ()):
                modified = as_utc(item["LastModified"])
                if cutoff is not None and modified >= cutoff:
                    continue
                key = item["Key"][len(bucket_prefix) :]
                try:
                    validate_key(key)
                except StorageKeyError:  # written by something else than put_*: not ours to judge
                    continue
                yield ObjectInfo(key=key, size_bytes=int(item["Size"]), modified_at=modified)

    def remove_incomplete_writes(self, older_than: datetime) -> IncompleteWritesReport:
        """Abort multipart uploads started before ``older_than`` (a crash mid-upload leaves them, billed)."""
        client, cutoff = self._s3(), as_utc(older_than)
        removed = failed = 0
        paginator = client.get_paginator("list_multipart_uploads")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._bucket_prefix())
        for page in pages:
            for upload in page.get("Uploads", ()):
                if as_utc(upload["Initiated"]) >= cutoff:
                    continue
                try:
                    client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                except ClientError as exc:
                    if _error_code(exc) != "NoSuchUpload":  # finished or aborted meanwhile
                        failed += 1
                    continue
                removed += 1
        return IncompleteWritesReport(removed=removed, failed=failed)


class _S3Writer(ObjectWriter):
    """Buffers up to one part; a small object is one PutObject, a larger one a multipart upload."""

    def __init__(self, store: S3ObjectStore, key: str, max_bytes: int | None, content_type: str | None) -> None:
        super().__init__(key, max_bytes)
        self._client, self._bucket = store._s3(), store.bucket
        self._object_key = store._object_key(key)
        self._part_bytes = store.multipart_part_bytes
        self._extra = {"ContentType": content_type} if content_type else {}
        self._buffer = bytearray()  # at most one part plus one incoming chunk
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._object_key, **self._extra)["UploadId"]
        number = len(self._parts) + 1
        response = self._client.upload_part(Bucket=self._bucket, Key=self._object_key, UploadId=self._upload_id,
                                            PartNumber=number, Body=body)
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    def _write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= self._part_bytes:
            body = bytes(self._buffer[: self._part_bytes])
            del self._buffer[: self._part_bytes]
            self._send_part(body)

    def _commit(self) -> None:
        if self._upload_id is None:
            self._client.put_object(Bucket=self._bucket, Key=self._object_key, Body=bytes(self._buffer), **self._extra)
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))
            self._client.complete_multipart_upload(Bucket=self._bucket, Key=self._object_key,
                                                   UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
        self._buffer = bytearray()

    def _abort(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is not None:  # otherwise the parts linger (and are billed) until a lifecycle rule
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._object_key,
                                                    UploadId=self._upload_id)


def _iter_body(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


