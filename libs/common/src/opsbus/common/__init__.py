"""opsbus.common: the ground every opsbus service stands on.

Events and their envelope, the JetStream bus, the PostgreSQL store, telemetry, settings and the service runtime.
Nothing here knows about a particular service; services import this package, never each other.
"""
