"""opsbus watcher: lists and watches the cluster, detects faults from the watch in seconds, publishes
`cluster.event`, `alert.fired` and `alert.resolved` with evidence.

Layers (checked by import-linter): `service` wires the runtime; `executing` and `watching` do the I/O
(bus, apiserver); `domain` holds every decision as pure functions over plain data and must never import an
I/O library.
"""
