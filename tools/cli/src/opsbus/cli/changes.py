"""`opsbus changes`: the change timeline through the gateway (`GET /v1/changes`), newest first, page after page."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from opsbus.cli.console import Key, Output, Url, call, emit, gateway
from opsbus.cli.events import since_param


def changes(  # noqa: PLR0917 - typer: one parameter per option
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace.")] = None,
    cluster: Annotated[str | None, typer.Option(help="Only this cluster.")] = None,
    workload: Annotated[str | None, typer.Option(help="Only this workload (or object) name.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="Only this kind: image, env, command, resources, config, replicas, hpa, ...")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this long ago (30m, 2h, 1d) or this time.")] = None,
    until: Annotated[str | None, typer.Option(help="Before this long ago (30m, 2h, 1d) or this time.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many changes.")] = 50,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """What changed in your namespaces (images, env, resources, ConfigMap/Secret digests, replicas, HPAs, nodes,
    opsbus's own writes), newest first."""
    gw = gateway(url, api_key)
    params: dict[str, Any] = {}
    for name, value in (("namespace", namespace), ("cluster", cluster), ("workload", workload), ("kind", kind)):
        if value:
            params[name] = value
    if since:
        params["since"] = since_param(since)
    if until:
        params["until"] = since_param(until)
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(items) < limit:
        page = call(gw, "GET", "/v1/changes", params={**params, "limit": min(500, limit - len(items)), **(
            {"cursor": cursor} if cursor else {})})  # fmt: skip
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    table = Table("time", "cluster", "object", "kinds", "origin", "summary")
    for item in items:
        obj = item["change"]["object"]
        where = f"{obj['namespace']}/" if obj.get("namespace") else ""
        table.add_row(
            str(item["time"])[:19],
            item["cluster"],
            f"{obj['kind']}/{where}{obj['name']}",
            ",".join(item["kinds"]),
            item["origin"],
            item["summary"],
        )
    emit({"items": items}, output, table)
