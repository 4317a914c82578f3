from opsbus.common.store.migrations import run_env
from tests.integration.store_sample.models import Base

run_env(Base.metadata, schema="sample")
