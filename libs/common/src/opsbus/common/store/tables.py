"""The tables every service's schema holds for the store's common machinery: the inbox and the outbox.

They are defined once, here, and created inside each service's schema by that service's own Alembic
history (its first migration calls `create_inbox_outbox(op, schema)`), so a service never shares tables
with another and its migrations stay the only thing that changes its schema. `store_tables(metadata)`
adds the same tables to a service's MetaData, so autogenerate sees them as the service's own and the
inbox and outbox code has a `Table` bound to the right schema.

Every constraint and index is named explicitly: the names are the same whether the table was made by
`op.create_table` or by `MetaData.create_all`, and a later migration can address them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.schema import SchemaItem

from opsbus.common.store.schema import NAMING_CONVENTION, validate_schema_name

INBOX_TABLE: Final = "opsbus_inbox"
OUTBOX_TABLE: Final = "opsbus_outbox"


def _inbox_items() -> list[SchemaItem]:
    return [
        Column("consumer", String(200), nullable=False, comment="durable consumer (or purpose) that processed it"),
        Column("event_id", String(200), nullable=False, comment="CloudEvents id of the processed event"),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id", name=f"pk_{INBOX_TABLE}"),
    ]


def _inbox_indexes() -> list[tuple[str, list[str], dict[str, Any]]]:
    return [(f"ix_{INBOX_TABLE}_processed_at", ["processed_at"], {})]


def _outbox_items() -> list[SchemaItem]:
    return [
        Column("id", BigInteger, Identity(always=False), nullable=False, comment="relay order"),
        Column("event_id", String(200), nullable=False, comment="CloudEvents id, published as Nats-Msg-Id"),
        Column("event_type", String(200), nullable=False),
        Column("subject", String(300), nullable=False, comment="NATS subject"),
        Column("body", LargeBinary, nullable=False, comment="exact bytes to publish"),
        Column("headers", JSONB, nullable=False, comment="NATS headers, trace context included"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
        PrimaryKeyConstraint("id", name=f"pk_{OUTBOX_TABLE}"),
        UniqueConstraint("event_id", name=f"uq_{OUTBOX_TABLE}_event_id"),
    ]


def _outbox_indexes() -> list[tuple[str, list[str], dict[str, Any]]]:
    return [
        # The relay's queue: only unpublished rows, in order. Stays small however large the table grows.
        (f"ix_{OUTBOX_TABLE}_unpublished", ["id"], {"postgresql_where": text("published_at IS NULL")}),
        (f"ix_{OUTBOX_TABLE}_published_at", ["published_at"], {}),
    ]


_DEFINITIONS: Final[
    dict[str, tuple[Callable[[], list[SchemaItem]], Callable[[], list[tuple[str, list[str], dict[str, Any]]]]]]
] = {
    INBOX_TABLE: (_inbox_items, _inbox_indexes),
    OUTBOX_TABLE: (_outbox_items, _outbox_indexes),
}


@dataclass(frozen=True, slots=True)
class StoreTables:
    inbox: Table
    outbox: Table


def _table(metadata: MetaData, name: str) -> Table:
    key = f"{metadata.schema}.{name}" if metadata.schema else name
    existing = metadata.tables.get(key)
    if existing is not None:
        return existing
    items, indexes = _DEFINITIONS[name]
    table = Table(name, metadata, *items())
    for index_name, columns, options in indexes():
        Index(index_name, *(table.c[c] for c in columns), **options)
    return table


def store_tables(metadata: MetaData) -> StoreTables:
    """The inbox and outbox `Table`s in `metadata`'s schema (added once; later calls return the same)."""
    if metadata.schema is None:
        raise ValueError("store tables belong in a service schema: build the MetaData with make_metadata(schema)")
    return StoreTables(inbox=_table(metadata, INBOX_TABLE), outbox=_table(metadata, OUTBOX_TABLE))


def tables_for_schema(schema: str) -> StoreTables:
    """Store tables for `schema` on a private MetaData (for code that has no service MetaData at hand)."""
    return store_tables(MetaData(schema=validate_schema_name(schema), naming_convention=NAMING_CONVENTION))


class Operations(Protocol):
    """The part of `alembic.op` the helpers use (typed structurally so this module needs no Alembic context)."""

    def create_table(self, table_name: str, *columns: SchemaItem, **kw: Any) -> Table | None: ...

    def drop_table(self, table_name: str, **kw: Any) -> None: ...

    def create_index(self, index_name: str | None, table_name: str, columns: Any, **kw: Any) -> Any: ...


def create_inbox_outbox(op: Operations, schema: str) -> None:
    """Create the inbox and outbox in `schema`; call from a service's first migration's `upgrade()`."""
    validate_schema_name(schema)
    for name, (items, indexes) in _DEFINITIONS.items():
        op.create_table(name, *items(), schema=schema)
        for index_name, columns, options in indexes():
            op.create_index(index_name, name, columns, schema=schema, **options)


def drop_inbox_outbox(op: Operations, schema: str) -> None:
    """Drop the inbox and outbox from `schema` (their indexes go with them); the first migration's `downgrade()`."""
    validate_schema_name(schema)
    for name in reversed(_DEFINITIONS):
        op.drop_table(name, schema=schema)
