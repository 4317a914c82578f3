"""Request and response models of the services' request-reply endpoints (`opsbus.svc.<service>.<op>`).

DESIGN.md section 2 puts them in `opsbus.common` so that the gateway (and any other caller) never imports a
service. The healer, deployer and notifier defined their own copies in their packages first
(`opsbus.healer.api`, `opsbus.deployer.api`, `opsbus.notifier.domain.api`); these mirror that wire format
field for field, and a gateway unit test checks the JSON Schemas agree while both copies exist. Pure pydantic:
no I/O (checked by the `common-api-pure` import contract).
"""
