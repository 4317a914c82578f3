"""Request and response models of the services' request-reply endpoints (`opsbus.svc.<service>.<op>`).

DESIGN.md section 2 puts them in `opsbus.common` so that the gateway (and any other caller) never imports a
service. The healer, deployer and optimizer take theirs from here (`opsbus.healer.api`, `opsbus.deployer.api`
and `opsbus.optimizer.domain.api` re-export them); the notifier still defines its own copy
(`opsbus.notifier.domain.api`, which also validates matcher syntax), so `notifier` here mirrors its wire format
field for field, and a gateway unit test
(`services/gateway/tests/test_problems.py`) checks both copies agree while both exist. Pure pydantic: no I/O
(checked by the `common-api-pure` import contract).
"""
