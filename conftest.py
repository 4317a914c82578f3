"""Root conftest: loads opsbus's shared fixtures (real NATS and PostgreSQL servers, registries, tracers)."""

pytest_plugins = ["opsbus.common.testing.fixtures"]
