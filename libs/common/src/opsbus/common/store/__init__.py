"""PostgreSQL for opsbus services: one schema per service, its own Alembic history, an inbox that makes
handlers idempotent, a transactional outbox and its relay, and retention for tables that grow.

Typical wiring in a service:

    metadata = make_metadata("healer")              # or: Base = make_base("healer")
    tables = store_tables(metadata)                 # inbox + outbox, in the healer schema
    db = Database.from_settings(settings.database, application_name="opsbus-healer")
    await check_schema_current(db.engine, MIGRATIONS, "healer")   # refuse to start on an unknown schema
"""

from opsbus.common.store.engine import Database, create_engine, create_sessionmaker, safe_url
from opsbus.common.store.inbox import Inbox, claim
from opsbus.common.store.migrations import (
    check_schema_current,
    current_revision,
    downgrade,
    head_revisions,
    migrate_main,
    run_env,
    upgrade,
)
from opsbus.common.store.outbox import Outbox, OutboxRelay, RelayOptions, add
from opsbus.common.store.retention import RetentionRule, purge, purge_all
from opsbus.common.store.schema import NAMING_CONVENTION, make_base, make_metadata, validate_schema_name
from opsbus.common.store.tables import (
    INBOX_TABLE,
    OUTBOX_TABLE,
    StoreTables,
    create_inbox_outbox,
    drop_inbox_outbox,
    store_tables,
)

__all__ = [
    "INBOX_TABLE",
    "NAMING_CONVENTION",
    "OUTBOX_TABLE",
    "Database",
    "Inbox",
    "Outbox",
    "OutboxRelay",
    "RelayOptions",
    "RetentionRule",
    "StoreTables",
    "add",
    "check_schema_current",
    "claim",
    "create_engine",
    "create_inbox_outbox",
    "create_sessionmaker",
    "current_revision",
    "downgrade",
    "drop_inbox_outbox",
    "head_revisions",
    "make_base",
    "make_metadata",
    "migrate_main",
    "purge",
    "purge_all",
    "run_env",
    "safe_url",
    "store_tables",
    "upgrade",
    "validate_schema_name",
]
