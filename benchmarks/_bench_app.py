"""The API app plus one benchmark-only route that exercises the shared upload helper.

``uvicorn benchmarks._bench_app:create_bench_app --factory`` serves it; products' upload routes
use the same ``api.uploads.stream_upload_to_store``.
"""

from __future__ import annotations

import uuid

from fastapi import Depends, Request

from api.main import create_app
from api.transport import streams_own_body
from api.uploads import stream_upload_to_store


def create_bench_app():
    app = create_app()

    @app.post("/bench/upload", include_in_schema=False, dependencies=[Depends(streams_own_body)])
    async def bench_upload(request: Request) -> dict:
        store = request.app.state.store
        key = f"ws/{uuid.uuid4()}/input/{uuid.uuid4()}/{uuid.uuid4()}/upload"
        result = await stream_upload_to_store(request, store, key, max_bytes=4 * 1024**3)
        store.delete(key)
        return {"sha256": result.sha256, "size_bytes": result.size_bytes}

    return app
