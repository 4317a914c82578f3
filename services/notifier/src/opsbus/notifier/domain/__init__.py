"""The notifier's pure decisions: configuration, matching, routing, grouping, inhibition, silences, retry
schedules and signatures. Plain data in, plain data out; this package must never import an I/O library
(nats, sqlalchemy, httpx, kubernetes, fastapi), so every rule here is unit-tested with an injected clock."""
