"""Where studies live: embedded SQLite by default, any database URL Optuna takes, or a journal file.

Workers on one storage share a study through two atomic operations of the storage: creating a
study name (only one creator succeeds) and switching a trial from WAITING to RUNNING (only one
claimant succeeds). PostgreSQL and MySQL make the second atomic with SELECT ... FOR UPDATE, the
journal file with its lock; SQLite ignores FOR UPDATE, so its transactions here start with
BEGIN IMMEDIATE, which takes the database's write lock first.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from bench.errors import UsageError

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)  # bench prints its own line per trial

TUNING_ROOT = Path("results") / "tuning"
MAX_RETRIES = 3  # a trial whose worker died is queued again at most this many times
# Queues a copy (same parameters, same user attributes, so the same slot and seed) of a dead trial.
RETRY_DEAD = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
SCHEMA_RACE_TRIES = 5  # workers started together on a new database: see _create_rdb


def default_url() -> str:
    return f"sqlite:///{(TUNING_ROOT / 'optuna.db').resolve()}"


def open_storage(setting: str | None, heartbeat_seconds: int) -> tuple[BaseStorage, str]:
    """The storage for `storage=SETTING` (None: results/tuning/optuna.db) and how to name it."""
    if setting and setting.startswith("journal:"):
        path = Path(setting.removeprefix("journal:"))
        if not path.name:
            raise UsageError("storage=journal:PATH needs a file path, e.g. journal:results/t.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path))), setting
    url = setting or default_url()
    is_sqlite = url.startswith("sqlite:")
    if is_sqlite and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine_kwargs = {"connect_args": {"timeout": 120, "isolation_level": None}} if is_sqlite else {}
    try:
        storage = _create_rdb(url, engine_kwargs, heartbeat_seconds)
    except Exception as exc:  # bad URL, missing driver, server unreachable
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"storage={url}: cannot be opened ({first}); give a database URL Optuna accepts "
            "(sqlite:///PATH, postgresql://USER@HOST/DB) or journal:PATH"
        ) from None
    if is_sqlite:
        from sqlalchemy import event

        @event.listens_for(storage.engine, "begin")
        def _begin_immediate(conn) -> None:  # noqa: ANN001 (SQLAlchemy's connection)
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return storage, url


def _create_rdb(url: str, engine_kwargs: dict, heartbeat_seconds: int) -> RDBStorage:
    """RDBStorage, tried again while another worker is creating the same database's tables.

    Optuna creates its tables and its version row without a lock, so workers started together
    on a new database collide ("table studies already exists", "UNIQUE constraint failed:
    alembic_version.version_num"); the loser finds the schema complete on its next try.
    """

    def create() -> RDBStorage:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_seconds,
            grace_period=2 * heartbeat_seconds,
            heartbeat_stale_trial_callback=RETRY_DEAD,
        )

    for attempt in range(1, SCHEMA_RACE_TRIES):
        try:
            return create()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as exc:
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if not racing:
                raise
            time.sleep(0.2 * attempt)
    return create()
