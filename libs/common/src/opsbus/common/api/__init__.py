"""Request and response models of the services' request-reply endpoints (`opsbus.svc.<service>.<op>`).

DESIGN.md section 2 puts them in `opsbus.common` so that the gateway (and any other caller) never imports a
service. Every service takes its models from here: `opsbus.healer.api`, `opsbus.deployer.api`,
`opsbus.optimizer.domain.api` and `opsbus.notifier.domain.api` re-export them (the notifier only subclasses
`CreateSilenceRequest` to check matcher syntax, which keeps the wire format). A gateway unit test
(`services/gateway/tests/test_problems.py`) checks that any model a service defines itself still mirrors the
common one field for field. Pure pydantic: no I/O (checked by the `common-api-pure` import contract).
"""
