from opsbus.analyzer.store import SCHEMA, metadata
from opsbus.common.store.migrations import run_env

run_env(metadata, schema=SCHEMA)
