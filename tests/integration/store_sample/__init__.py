"""A tiny real service schema (`sample`) with its own Alembic history, to prove the store's migration wiring."""
