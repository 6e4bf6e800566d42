"""Typed errors of the video notes product."""

from __future__ import annotations

from pipelines.errors import PermanentError


class InvalidMedia(PermanentError):
    """The bytes are not a media container PyAV can open, or it holds nothing we can use.

    Permanent: retrying the same bytes cannot help. The upload is kept; the job fails with this message.
    """

    code = "invalid_media"
    title = "Not a readable video or audio file"
    http_status = 422
