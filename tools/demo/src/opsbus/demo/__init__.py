"""opsbus on one machine: the process supervisor behind `make demo` and the end-to-end tests.

`python -m opsbus.demo up` starts nats-server, PostgreSQL, Jaeger and the seven services as separate processes against
the sandbox cluster and seeds a demo namespace; `python -m opsbus.demo down` stops a running demo. It never imports a
service: services are started as processes and reached over HTTP and the bus, as in production.
"""
