"""The healer's intake batches fired alerts with the shared group commit (`opsbus.common.batching`)."""

from opsbus.common.batching import GroupCommit

__all__ = ["GroupCommit"]
