"""opsbus deployer: rolls workloads out (rolling, recreate, rollback), follows them to success or deadline,
analyses them against a metrics provider that fails closed, and rolls back by itself on failure."""
