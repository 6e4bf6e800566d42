"""Choosing the object store backend from settings.

Its own module so that the interface (``resources/objectstore.py``) and its backends
(``objectstore_local.py``, ``objectstore_s3.py``) import each other in one direction only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resources.objectstore import ObjectStore
from resources.objectstore_local import LocalObjectStore

if TYPE_CHECKING:
    from resources.settings import Settings


def build_object_store(settings: Settings) -> ObjectStore:
    """The object store the settings ask for: ``KILN_OBJECT_STORE=local`` (default) or ``s3``."""
    if settings.object_store == "s3":
        from resources.objectstore_s3 import S3ObjectStore  # boto3 is only imported where S3 is used

        return S3ObjectStore(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
        )
    return LocalObjectStore(root=str(settings.resolved_objects_dir))
