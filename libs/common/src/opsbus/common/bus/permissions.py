"""What each opsbus service may publish and subscribe to on NATS, and the nats-server configuration for it.

DESIGN.md section 6: every service connects as its own NATS user, restricted to what it does. The allow
lists are computed here, from:

- the event catalogue (`opsbus.common.events.catalog`): a service may publish `<family>.<verb>.>` only for
  the verbs the catalogue names it a producer of (the watcher cannot publish `deploy.requested`);
- the service's durable consumers (`ROLES`, checked against every `ConsumerSpec` in the services' code by
  `tests/deploy/test_nats_permissions.py`): the JetStream API calls for its own consumers only (info, create,
  next message, ack) and the dead-letter subjects of what it consumes (`dlq.<filter subject>`). The consumers
  of per-cluster services are named for their cluster (`healer-alerts-<cluster>`, `bus.clusters`), so the
  block is generated for one cluster (`--cluster`, default the settings' default cluster);
- stream provisioning, which every service runs at start (`ensure_streams`): info/create/update of the
  catalogue's streams, and nothing else of the stream API (no delete, no purge);
- request-reply (`opsbus.common.rpc`): a service that serves endpoints subscribes to
  `opsbus.svc.<service>.>` and to the services framework's discovery (`$SRV.PING|INFO|STATS`), and answers
  on the requester's reply subject (`allow_responses`); a caller publishes to the endpoints it calls;
- every client receives replies (JetStream API answers, publish acknowledgements, pulled messages, RPC
  answers) on `_INBOX.>`.

Run `python -m opsbus.common.bus.permissions --format nats-conf` for the nats-server `authorization` block,
or `--format helm-values` for the chart's per-service user names. Pure: no I/O but the printing in `main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from opsbus.common.bus.clusters import clustered
from opsbus.common.events.catalog import ALL_STREAMS, FAMILIES
from opsbus.common.settings import DEFAULT_CLUSTER

JS_API = "$JS.API"
INBOX = "_INBOX.>"
RPC_PREFIX = "opsbus.svc"  # opsbus.common.rpc.SUBJECT_PREFIX (rpc sits above bus; a unit test keeps them equal)
SRV_VERBS = ("PING", "INFO", "STATS")


@dataclass(frozen=True, slots=True)
class Durable:
    """One durable pull consumer of a service: its stream, name and (cluster-agnostic) filter subjects.

    `per_cluster`: the service runs in each cluster and names the consumer `<name>-<cluster>` (`bus.clusters`).
    """

    stream: str
    name: str
    subjects: tuple[str, ...]
    per_cluster: bool = False

    def on(self, cluster: str) -> Durable:
        """This consumer as the service of `cluster` names it."""
        return Durable(self.stream, clustered(self.name, cluster), self.subjects) if self.per_cluster else self


@dataclass(frozen=True, slots=True)
class Role:
    """What one service does on NATS, beyond publishing (which the catalogue decides)."""

    service: str
    durables: tuple[Durable, ...] = ()
    serves_rpc: bool = False
    calls: tuple[str, ...] = ()
    # Streams read through short-lived consumers (ordered consumers, history pages): their names are random,
    # so the consumer API is granted per stream rather than per consumer.
    reads: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Permissions:
    """The allow lists of one NATS user."""

    service: str
    user: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool


_ALL_STREAM_NAMES = tuple(f.stream for f in ALL_STREAMS)
_DEPLOY_OUTCOMES = ("succeeded", "failed", "rolledback", "superseded", "aborted", "skipped", "rollback_failed")

ROLES: tuple[Role, ...] = (
    # The watcher rebuilds its firing alerts from the ALERT stream at start (an ordered consumer).
    Role("watcher", reads=("ALERT",)),
    Role(
        "healer",
        durables=(
            Durable("ALERT", "healer-alerts", ("alert.fired.>",), per_cluster=True),
            Durable("ALERT", "healer-alert-state", ("alert.resolved.>",), per_cluster=True),
            Durable("DEPLOY", "healer-deploy", tuple(f"deploy.{v}.>" for v in _DEPLOY_OUTCOMES), per_cluster=True),
            Durable("RECOVERY", "healer-decisions", ("recovery.approved.>", "recovery.rejected.>"), per_cluster=True),
            Durable("DIAGNOSIS", "healer-diagnoses", ("diagnosis.made.>", "diagnosis.revised.>"), per_cluster=True),
        ),
        serves_rpc=True,
    ),
    Role(
        "optimizer",
        durables=(Durable("ALERT", "optimizer-oom", ("alert.fired.>",), per_cluster=True),),
        serves_rpc=True,
    ),
    Role(
        "deployer",
        durables=(Durable("DEPLOY", "deployer-requests", ("deploy.requested.>",), per_cluster=True),),
        serves_rpc=True,
    ),
    Role(
        "notifier",
        durables=tuple(
            Durable(stream, f"notifier-{stream.lower()}", (f"{stream.lower()}.>",))
            for stream in ("ALERT", "RECOVERY", "DEPLOY", "SCALE", "DIAGNOSIS")
        ),
        serves_rpc=True,
    ),
    # The analyzer reads alerts, the change timeline and rollouts; it only publishes diagnoses.
    Role(
        "analyzer",
        durables=(
            Durable("ALERT", "analyzer-alerts", ("alert.fired.>",)),
            Durable("CHANGE", "analyzer-changes", ("change.recorded.>",)),
            Durable("DEPLOY", "analyzer-deploys", ("deploy.started.>", "deploy.rolledback.>")),
        ),
    ),
    Role(
        "gateway",
        durables=(
            Durable("AUDIT", "gateway-audit", ("audit.>",)),
            Durable("ALERT", "gateway-alerts", ("alert.>",)),
            Durable("RECOVERY", "gateway-chains-recovery", ("recovery.>",)),
            Durable("RECOVERY", "gateway-zabbix-ack", ("recovery.succeeded.>",)),
            Durable("NOTIFY", "gateway-chains-notify", ("notify.>",)),
            Durable("DIAGNOSIS", "gateway-chains-diagnosis", ("diagnosis.>",)),
            Durable("CHANGE", "gateway-changes", ("change.>",)),
        ),
        calls=("healer", "deployer", "optimizer", "notifier"),
        # Server-Sent Events and the event history read any stream (scoped per caller in the gateway).
        reads=_ALL_STREAM_NAMES,
    ),
)

SERVICES: tuple[str, ...] = tuple(r.service for r in ROLES)


def role(service: str) -> Role:
    for r in ROLES:
        if r.service == service:
            return r
    raise KeyError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")


def user_name(service: str) -> str:
    """The NATS user of a service (the chart's default; any name works if the Secret and server agree)."""
    return f"opsbus-{service}"


def published_subjects(service: str) -> tuple[str, ...]:
    """`<family>.<verb>.>` for every verb the catalogue names `service` a producer of."""
    return tuple(f"{fam.name}.{verb}.>" for fam in FAMILIES for verb in fam.verbs if service in fam.producers_of(verb))


def _dlq(subject: str) -> str:
    return f"dlq.{subject}"


def _durable_api(d: Durable) -> tuple[str, ...]:
    s, n = d.stream, d.name
    return (
        f"{JS_API}.CONSUMER.INFO.{s}.{n}",
        f"{JS_API}.CONSUMER.CREATE.{s}.{n}",
        f"{JS_API}.CONSUMER.CREATE.{s}.{n}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{s}.{n}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{s}.{n}",
        f"$JS.ACK.{s}.{n}.>",
    )


def _read_api(stream: str) -> tuple[str, ...]:
    return (
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.FC.{stream}.>",  # flow-control replies of ordered (push) consumers
    )


def _provisioning() -> tuple[str, ...]:
    return tuple(f"{JS_API}.STREAM.{op}.{s}" for s in _ALL_STREAM_NAMES for op in ("INFO", "CREATE", "UPDATE"))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def permissions_for(r: Role, cluster: str = DEFAULT_CLUSTER) -> Permissions:
    publish: list[str] = [*published_subjects(r.service), *_provisioning()]
    for d in r.durables:
        publish += _durable_api(d.on(cluster))
        if d.per_cluster:  # where its old, cluster-less consumer had got to (`bus.clusters.start_after_legacy`)
            publish.append(f"{JS_API}.CONSUMER.INFO.{d.stream}.{d.name}")
        publish += [_dlq(s) for s in d.subjects]
    for stream in r.reads:
        publish += _read_api(stream)
    publish += [f"{RPC_PREFIX}.{target}.>" for target in r.calls]
    subscribe: list[str] = [INBOX]
    if r.serves_rpc:
        svc = f"opsbus-{r.service}"
        subscribe.append(f"{RPC_PREFIX}.{r.service}.>")
        for verb in SRV_VERBS:
            subscribe += [f"$SRV.{verb}", f"$SRV.{verb}.{svc}", f"$SRV.{verb}.{svc}.*"]
    return Permissions(
        service=r.service,
        user=user_name(r.service),
        publish=_unique(publish),
        subscribe=_unique(subscribe),
        allow_responses=r.serves_rpc,
    )


def all_permissions(cluster: str = DEFAULT_CLUSTER) -> tuple[Permissions, ...]:
    return tuple(permissions_for(r, cluster) for r in ROLES)


def password_variable(service: str) -> str:
    """The nats-server configuration variable (resolved from its environment) holding a service's password."""
    return f"OPSBUS_NATS_PASSWORD_{service.upper()}"


def _list(items: Sequence[str], indent: str) -> str:
    inner = "".join(f"{indent}  {json.dumps(i)}\n" for i in items)
    return f"[\n{inner}{indent}]"


def nats_conf(
    perms: Sequence[Permissions] | None = None,
    *,
    passwords: Mapping[str, str] | None = None,
    nkeys: Mapping[str, str] | None = None,
    cluster: str = DEFAULT_CLUSTER,
) -> str:
    """The nats-server `authorization { users = [...] }` block (of the NATS server of one cluster).

    Each user authenticates with, in order of preference: its public nkey from `nkeys` (service -> `U...`),
    a literal password from `passwords`, or the password in the server's environment variable
    `OPSBUS_NATS_PASSWORD_<SERVICE>` (nats-server resolves `$VARIABLE` at start), so no secret needs to
    be written into the file.
    """
    perms = all_permissions(cluster) if perms is None else perms
    passwords = passwords or {}
    nkeys = nkeys or {}
    out = [
        "# Generated by `python -m opsbus.common.bus.permissions --format nats-conf`; do not edit by hand.",
        "authorization {",
        "  users = [",
    ]
    for p in perms:
        if p.service in nkeys:
            credential = [f"      nkey: {json.dumps(nkeys[p.service])}"]
        elif p.service in passwords:
            credential = [f"      user: {json.dumps(p.user)}", f"      password: {json.dumps(passwords[p.service])}"]
        else:
            credential = [f"      user: {json.dumps(p.user)}", f"      password: ${password_variable(p.service)}"]
        out += [
            f"    # {p.service}",
            "    {",
            *credential,
            "      permissions: {",
            f"        publish: {{ allow: {_list(p.publish, '        ')} }}",
            f"        subscribe: {{ allow: {_list(p.subscribe, '        ')} }}",
        ]
        if p.allow_responses:
            out.append("        allow_responses: true")
        out += ["      }", "    }"]
    out += ["  ]", "}", ""]
    return "\n".join(out)


def helm_values(perms: Sequence[Permissions] | None = None) -> str:
    """The chart's `nats.auth.users` values: the NATS user name of each service (YAML, stable order)."""
    perms = all_permissions() if perms is None else perms
    lines = [
        "# Generated by `python -m opsbus.common.bus.permissions --format helm-values`.",
        "nats:",
        "  auth:",
        "    users:",
    ]
    lines += [f"      {p.service}: {p.user}" for p in perms]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsbus.common.bus.permissions",
        description=(
            "Print the NATS permissions of every opsbus service: a nats-server `authorization` block "
            "(nats-conf; passwords come from the server's environment variables OPSBUS_NATS_PASSWORD_<SERVICE>) "
            "or the chart's per-service user names (helm-values)."
        ),
    )
    parser.add_argument("--format", choices=("nats-conf", "helm-values"), default="nats-conf")
    parser.add_argument(
        "--cluster",
        default=DEFAULT_CLUSTER,
        help="the cluster whose per-cluster consumers (healer-alerts-<cluster>, ...) the block allows",
    )
    parser.add_argument(
        "--nkey",
        action="append",
        default=[],
        metavar="SERVICE=PUBLIC_NKEY",
        help="authenticate SERVICE with this public nkey (U...) instead of a password; repeatable",
    )
    args = parser.parse_args(argv)
    nkeys: dict[str, str] = {}
    for item in args.nkey:
        service, sep, key = item.partition("=")
        if not sep or service not in SERVICES or not key.startswith("U"):
            parser.error(f"--nkey {item!r}: expected SERVICE=U... with SERVICE one of {', '.join(SERVICES)}")
        nkeys[service] = key
    sys.stdout.write(nats_conf(nkeys=nkeys, cluster=args.cluster) if args.format == "nats-conf" else helm_values())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
