"""The gateway's pure decisions: API key format and hashing, who may do what where, Alertmanager's payload
mapped to opsbus events, which stream events a caller may see. No I/O library may be imported here."""
