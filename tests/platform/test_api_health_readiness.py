"""/readyz is unauthenticated and polled often: it must not write to the object store on every call."""

from __future__ import annotations

from api.routes.health import READINESS_PROBE_KEY, READINESS_WRITE_INTERVAL_S
from tests.support.api import api  # noqa: F401 - fixture


class CountingStore:
    """Records the readiness probe's object-store calls, delegating to the real store."""

    def __init__(self, store, *, fail_exists: bool = False) -> None:
        self.store, self.fail_exists = store, fail_exists
        self.puts: list[str] = []
        self.exists_calls = 0

    def put_bytes(self, key, data, *, content_type=None):
        self.puts.append(key)
        return self.store.put_bytes(key, data, content_type=content_type)

    def exists(self, key):
        self.exists_calls += 1
        if self.fail_exists:
            raise ConnectionError("object store unreachable")
        return self.store.exists(key)


def _ready(api) -> dict:
    r = api.client.get("/readyz")
    return {"status": r.status_code, **r.json()["checks"]}


def test_readiness_writes_at_most_once_per_interval_and_checks_cheaply_between(api):
    counting = CountingStore(api.store)
    api.app.state.store = counting
    for _ in range(4):
        assert _ready(api) == {"status": 200, "database": "ok", "object_store": "ok"}
    assert counting.puts == [READINESS_PROBE_KEY] and counting.exists_calls == 3

    api.app.state.readyz_last_write -= READINESS_WRITE_INTERVAL_S + 1  # the last write is now too old
    assert _ready(api)["object_store"] == "ok"
    assert counting.puts == [READINESS_PROBE_KEY] * 2

    api.store.delete(READINESS_PROBE_KEY)  # the probe object vanished: write it again rather than report ready blindly
    assert _ready(api)["object_store"] == "ok"
    assert len(counting.puts) == 3 and api.store.exists(READINESS_PROBE_KEY)


def test_an_unreachable_object_store_between_writes_makes_readiness_fail(api):
    assert _ready(api)["status"] == 200
    api.app.state.store = CountingStore(api.store, fail_exists=True)
    assert _ready(api) == {"status": 503, "database": "ok", "object_store": "error: ConnectionError"}
