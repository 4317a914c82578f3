"""Schema-per-service declarative bases: every table a service owns lives in that service's PostgreSQL schema,
with constraint names that follow one convention (so Alembic can drop and alter them by name).

mypy cannot subclass a base returned by a function, so strictly typed services write

    class Base(DeclarativeBase):
        metadata = make_metadata("healer")

while scripts and tests may use `Base = make_base("healer")`.
"""

from __future__ import annotations

import re
from typing import Final, cast

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def validate_schema_name(schema: str) -> str:
    """A schema name opsbus will interpolate into DDL: a lower-case SQL identifier, nothing to quote."""
    if not _SCHEMA.match(schema) or schema.startswith("pg_") or schema in {"public", "information_schema"}:
        raise ValueError(f"schema name {schema!r} must be a lower-case identifier owned by one service")
    return schema


def make_metadata(schema: str) -> MetaData:
    """MetaData whose tables default to `schema`, with opsbus's constraint naming convention."""
    return MetaData(schema=validate_schema_name(schema), naming_convention=NAMING_CONVENTION)


def make_base(schema: str) -> type[DeclarativeBase]:
    """A fresh declarative base for one service's schema."""
    name = "".join(part.title() for part in schema.split("_")) + "Base"
    base = type(name, (DeclarativeBase,), {"metadata": make_metadata(schema), "__module__": __name__})
    return cast(type[DeclarativeBase], base)
