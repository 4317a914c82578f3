from opsbus.common.store.migrations import run_env
from opsbus.gateway.store import SCHEMA, metadata

run_env(metadata, schema=SCHEMA)
