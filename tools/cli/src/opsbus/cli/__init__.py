"""The `opsbus` command line: talks to the gateway, drives the local sandbox."""
