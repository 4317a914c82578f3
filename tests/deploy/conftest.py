"""Cluster fixtures for the deploy tests: the shared sandbox and a namespace per test, from tests/cluster."""

from tests.cluster.conftest import api_client, cluster, sandbox

__all__ = ["api_client", "cluster", "sandbox"]
