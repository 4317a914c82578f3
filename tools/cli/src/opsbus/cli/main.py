"""`opsbus`: the operator's command line for the opsbus gateway and the local sandbox cluster.

Every gateway command finds the gateway and the API key in `--url`/`--api-key`, else `OPSBUS_URL`/
`OPSBUS_API_KEY`, else the file `opsbus login` wrote (default http://127.0.0.1:8000, no key). A first key comes
from `python -m opsbus.gateway create-admin-key`; `opsbus keys create` makes more. Output is a table for
humans; add `--output json` for scripts. Errors print the gateway's explanation and exit non-zero.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from opsbus.cli import apikeys, dev, policies, recommendations, sandbox, secrets
from opsbus.cli.changes import changes
from opsbus.cli.console import Key, Output, Url, call, emit, err, gateway, out
from opsbus.cli.durations import seconds
from opsbus.cli.events import events
from opsbus.cli.login import login, logout, whoami
from opsbus.cli.tailing import tail
from opsbus.cli.why import why

app = typer.Typer(
    name="opsbus",
    help="Operate opsbus: roll out, follow incidents, approve remediations, mute alerts, watch events live.\n\n"
    "Start with `opsbus login --url URL` (or set OPSBUS_URL and OPSBUS_API_KEY).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
silence_app = typer.Typer(help="Mute alerts that match label matchers for a while (Alertmanager silences).")
app.add_typer(silence_app, name="silence")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(dev.app, name="dev")
app.add_typer(policies.app, name="policies")
app.add_typer(recommendations.app, name="recommendations")
app.add_typer(apikeys.app, name="keys")
app.add_typer(secrets.app, name="secrets")
for command in (login, logout, whoami, events, tail, changes, why):
    app.command()(command)


@app.command()
def deploy(  # noqa: PLR0917 - typer: one parameter per option
    workload: Annotated[str, typer.Argument(help="NAMESPACE/NAME of a Deployment (or KIND/NAMESPACE/NAME).")],
    image: Annotated[
        list[str], typer.Option("--image", "-i", help="CONTAINER=IMAGE; repeat for several containers.")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    strategy: Annotated[str, typer.Option(help="rolling, recreate, blue-green, canary or rollback.")] = "rolling",
    cluster: Annotated[str | None, typer.Option(help="Target cluster (default: the gateway's).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why: a change ticket, an incident.")] = None,
    to_revision: Annotated[int | None, typer.Option(help="rollback only: the revision to return to.")] = None,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Request a rollout. Prints the request id; `opsbus rollout ID` follows it.

    Examples:  opsbus deploy payments/checkout -i app=registry/checkout:1.43 --reason CHG-1234
               opsbus deploy payments/checkout --strategy rollback
    """
    parts = workload.split("/")
    if len(parts) == 2:
        parts = ["Deployment", *parts]
    if len(parts) != 3:
        err.print("[red]error[/]: WORKLOAD must be NAMESPACE/NAME or KIND/NAMESPACE/NAME")
        raise typer.Exit(2)
    images = {}
    for pair in image:
        container, sep, ref = pair.partition("=")
        if not sep:
            err.print(f"[red]error[/]: --image {pair!r} must be CONTAINER=IMAGE")
            raise typer.Exit(2)
        images[container] = ref
    body: dict[str, Any] = {
        "workload": {"kind": parts[0], "namespace": parts[1], "name": parts[2]},
        "strategy": strategy,
        "images": images,
    }
    for name, value in (("cluster", cluster), ("reason", reason), ("to_revision", to_revision)):
        if value is not None:
            body[name] = value
    answer = call(gateway(url, api_key), "POST", "/v1/deployments", json=body)
    if output == "json":
        emit(answer, output, None)
    else:
        out.print(f"[green]requested[/] {strategy} of {'/'.join(parts)}: request [bold]{answer['request_id']}[/]")
        out.print(f"follow it: opsbus rollout {answer['request_id']}")


@app.command()
def rollout(
    request_id: Annotated[str, typer.Argument(help="The request id printed by `opsbus deploy`.")],
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Show a rollout's state (requested, running, succeeded, failed, rolledback...)."""
    answer = call(gateway(url, api_key), "GET", f"/v1/deployments/{request_id}")
    table = Table(show_header=False)
    rollout = answer.get("rollout") or {}
    for key, value in (
        ("request", answer["request_id"]),
        ("workload", answer["workload"]),
        ("state", answer["state"]),
        ("phase", rollout.get("phase")),
        ("revision", rollout.get("revision")),
        ("message", rollout.get("message") or rollout.get("reason")),
    ):
        table.add_row(key, str(value) if value is not None else "-")
    emit(answer, output, table)


@app.command()
def incidents(  # noqa: PLR0917 - typer: one parameter per option
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace.")] = None,
    status: Annotated[str | None, typer.Option(help="firing or resolved.")] = None,
    severity: Annotated[str | None, typer.Option(help="critical, warning or info.")] = None,
    limit: Annotated[int, typer.Option(help="How many (newest first).")] = 20,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """List incidents: alerts with their probable cause, what the healer did and who was notified, newest first."""
    params = {k: v for k, v in (("namespace", namespace), ("status", status), ("severity", severity)) if v}
    answer = call(gateway(url, api_key), "GET", "/v1/incidents", params={**params, "limit": limit})
    table = Table("started", "status", "severity", "alert", "object", "cause", "recoveries", "notified", "id")
    for i in answer["items"]:
        colour = "red" if i["status"] == "firing" else "green"
        table.add_row(
            i["starts_at"][:19],
            f"[{colour}]{i['status']}[/]",
            i["severity"],
            i["alertname"],
            i["subject"],
            _cause(i.get("diagnosis")),
            str(len(i["recoveries"])),
            str(len(i["notifications"])),
            i["id"],
        )
    emit(answer, output, table)


def _cause(diagnosis: dict[str, Any] | None) -> str:
    """The top cause's kind for the incidents table (`opsbus why ID` tells the rest)."""
    if diagnosis is None:
        return "-"
    causes = diagnosis["data"].get("causes") or []
    return f"{causes[0]['kind']} {causes[0]['confidence']:.2f}" if causes else "unknown"


def _decide(verb: str, recovery_id: str, step: int, body: dict[str, Any], *, url: str | None, key: str | None) -> None:
    answer = call(gateway(url, key), "POST", f"/v1/recoveries/{recovery_id}/steps/{step}/{verb}", json=body)
    out.print(f"recovery {answer['recovery_id']} step {answer['step']}: [bold]{answer['status']}[/]")


@app.command()
def approve(
    recovery_id: Annotated[str, typer.Argument(help="The recovery waiting for approval (see `opsbus pending`).")],
    step: Annotated[int, typer.Option(help="The ladder step to approve.")] = 1,
    comment: Annotated[str | None, typer.Option(help="Recorded in the audit trail.")] = None,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Approve a disruptive remediation step (for example a node drain) the healer planned."""
    _decide("approve", recovery_id, step, {"comment": comment}, url=url, key=api_key)


@app.command()
def reject(
    recovery_id: Annotated[str, typer.Argument(help="The recovery waiting for approval.")],
    reason: Annotated[str, typer.Option(help="Why not; recorded in the audit trail.")],
    step: Annotated[int, typer.Option(help="The ladder step to reject.")] = 1,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Reject a planned remediation step; the healer escalates to humans instead."""
    _decide("reject", recovery_id, step, {"reason": reason}, url=url, key=api_key)


@app.command()
def pending(url: Url = None, api_key: Key = None, output: Output = "table") -> None:
    """Remediation steps waiting for an approval in your namespaces."""
    answer = call(gateway(url, api_key), "GET", "/v1/recoveries/pending")
    table = Table("recovery", "step", "action", "target", "why", "expires")
    for p in answer["items"]:
        t = p["action"]["target"]
        table.add_row(
            p["recovery_id"],
            str(p["step"]),
            p["action"]["kind"],
            f"{t['kind']}/{t.get('namespace') or '_'}/{t['name']}",
            p["reason"],
            p["expires_at"][:19],
        )
    emit(answer, output, table)


@silence_app.command("create")
def silence_create(  # noqa: PLR0917 - typer: one parameter per option
    matcher: Annotated[
        list[str], typer.Argument(help='Label matchers, e.g. namespace="payments" alertname=~"Kube.*".')
    ],
    duration: Annotated[str, typer.Option(help="How long: 30m, 2h, 1d.")] = "2h",
    comment: Annotated[str, typer.Option(help="Why (required by policy: say who and what for).")] = "",
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Mute alerts matching all MATCHERs for DURATION. A scoped key must include namespace="..."."""
    if not comment:
        err.print("[red]error[/]: --comment is required: say why you silence these alerts")
        raise typer.Exit(2)
    body = {"matchers": matcher, "duration_seconds": seconds(duration), "comment": comment}
    answer = call(gateway(url, api_key), "POST", "/v1/silences", json=body)
    if output == "json":
        emit(answer, output, None)
    else:
        out.print(f"[green]silence {answer['id']}[/] until {answer['ends_at'][:19]} ({', '.join(answer['matchers'])})")


@silence_app.command("list")
def silence_list(
    state: Annotated[str | None, typer.Option(help="pending, active or expired.")] = None,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """List silences you can see."""
    answer = call(gateway(url, api_key), "GET", "/v1/silences", params={"state": state} if state else None)
    table = Table("id", "state", "matchers", "until", "by", "comment")
    for s in answer["silences"]:
        table.add_row(s["id"], s["state"], ", ".join(s["matchers"]), s["ends_at"][:19], s["created_by"], s["comment"])
    emit(answer, output, table)


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="The silence to end now.")], url: Url = None, api_key: Key = None
) -> None:
    """End a silence now: matching alerts notify again."""
    answer = call(gateway(url, api_key), "DELETE", f"/v1/silences/{silence_id}")
    out.print(f"silence {answer['id']}: {answer['state']}")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
