from opsbus.common.store.migrations import run_env
from opsbus.deployer.store import Base

run_env(Base.metadata, schema="deployer")
