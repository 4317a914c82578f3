"""The gateway's HTTP routes, one module per resource; every handler authenticates (dependency) and checks
the caller's role and namespace/cluster scope before it reads or changes anything."""
