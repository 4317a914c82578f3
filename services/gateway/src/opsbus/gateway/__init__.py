"""opsbus gateway: the HTTP front door (FastAPI) for other systems, teams and operators."""
