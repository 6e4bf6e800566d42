"""Engines and sessions for the system-of-record database (SQLite or PostgreSQL).

``tenant_session`` is how request and asset code reaches tenant data: on PostgreSQL it sets
``kiln.workspace_id`` with ``SET LOCAL`` so row-level security scopes every statement as
defense in depth behind the explicit ``workspace_id`` filters in the queries.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_aware(value: datetime | str | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite hands them back naive, or as ISO text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def normalize_url(url: str) -> str:
    # SQLAlchemy's bare postgresql:// picks psycopg2; the application uses psycopg 3.
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://") :]
    return url


DEFAULT_SQLITE_BUSY_TIMEOUT = 30.0  # workers and tools; the API passes KILN_SQLITE_BUSY_TIMEOUT_SECONDS


def make_engine(url: str, *, sqlite_busy_timeout: float = DEFAULT_SQLITE_BUSY_TIMEOUT, **kwargs) -> Engine:
    """An engine; on SQLite a write waits up to ``sqlite_busy_timeout`` seconds for another writer's lock
    (then raises "database is locked", which the API answers as 503 ``database_busy``)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        busy_ms = int(sqlite_busy_timeout * 1000)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout},
                               **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every sqlite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()

        @event.listens_for(engine, "savepoint")
        def _real_transaction_under_savepoint(conn, _name):  # pragma: no cover - every sqlite savepoint
            # pysqlite (legacy transaction control) opens no transaction before a SAVEPOINT, so
            # SQLite's SAVEPOINT starts one of its own and RELEASE commits it: a later rollback of
            # the enclosing transaction would not undo the savepoint's rows. BEGIN first, so the
            # savepoint nests inside the transaction SQLAlchemy thinks it has. Only sessions that
            # take savepoints change, and they were about to hold the same locks anyway.
            dbapi_conn = conn.connection.dbapi_connection
            if not dbapi_conn.in_transaction:
                dbapi_conn.execute("BEGIN")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:  # NullPool (migrations) accepts no pool sizing
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def is_postgres(bind: Engine | Session) -> bool:
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "postgresql"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


_TENANT_INFO_KEY = "kiln.workspace_id"
_SET_TENANT = text("SELECT set_config('kiln.workspace_id', :ws, true)")


def set_tenant(session: Session, workspace_id: uuid.UUID | str) -> None:
    """Scope this session to one workspace (PostgreSQL row-level security), in every transaction.

    ``SET LOCAL`` lasts one transaction; the session remembers the workspace and re-applies it
    when it begins the next one, so a request may end a transaction early (before streaming a long
    upload, to give its connection back) and stay scoped afterwards.
    """
    session.info[_TENANT_INFO_KEY] = str(workspace_id)
    if is_postgres(session):
        session.execute(_SET_TENANT, {"ws": str(workspace_id)})


@event.listens_for(Session, "after_begin")
def _scope_new_transaction(session: Session, _transaction, connection) -> None:
    workspace_id = session.info.get(_TENANT_INFO_KEY)
    if workspace_id is not None and connection.dialect.name == "postgresql":
        connection.execute(_SET_TENANT, {"ws": workspace_id})


@contextmanager
def tenant_session(engine: Engine, workspace_id: uuid.UUID | str) -> Iterator[Session]:
    """One transaction scoped to ``workspace_id``; commits on success, rolls back on error."""
    with session_factory(engine)() as session, session.begin():
        set_tenant(session, workspace_id)
        yield session


@contextmanager
def system_session(engine: Engine) -> Iterator[Session]:
    """One transaction for platform work that spans tenants (dispatch, retention, lineage).

    On PostgreSQL this must run as a role in ``kiln_system``; the API's role is not one.
    """
    with session_factory(engine)() as session, session.begin():
        yield session
