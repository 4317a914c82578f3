from opsbus.common.store.migrations import run_env
from opsbus.optimizer.store import SCHEMA, metadata

run_env(metadata, schema=SCHEMA)
