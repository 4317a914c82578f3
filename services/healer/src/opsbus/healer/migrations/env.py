from opsbus.common.store.migrations import run_env
from opsbus.healer.store import Base

run_env(Base.metadata, schema="healer")
