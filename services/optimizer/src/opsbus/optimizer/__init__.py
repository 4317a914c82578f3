"""opsbus optimizer: right-sizes containers and scales workloads from usage, with cost, under guardrails."""
