"""The deployer's pure decisions: plain data in, plans out. Never imports kubernetes, nats, sqlalchemy,
fastapi or httpx (checked by import-linter)."""
