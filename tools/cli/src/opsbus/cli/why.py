"""`opsbus why INCIDENT`: the analyzer's answer for one incident, read from the gateway's incident view.

Prints the ranked probable causes (kind, confidence, suggested healer action, one sentence each), the evidence of
the top cause, and what the analyzer checked; says so plainly when the outcome is `unknown` or when no diagnosis
has arrived yet. `--output json` prints the incident's diagnosis event as the gateway returns it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from opsbus.cli.console import Key, Output, Url, call, emit, gateway, out


def why(
    incident_id: Annotated[str, typer.Argument(help="The incident id (see `opsbus incidents`).")],
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Why an incident happened: the analyzer's ranked probable causes with their evidence."""
    incident = call(gateway(url, api_key), "GET", f"/v1/incidents/{incident_id}")
    diagnosis: dict[str, Any] | None = incident.get("diagnosis")
    if output == "json":
        emit(diagnosis, output, None)
        return
    out.print(
        f"[bold]{escape(incident['alertname'])}[/] on {escape(incident['subject'])} "
        f"since {str(incident['starts_at'])[:19]} ({incident['status']})"
    )
    if diagnosis is None:
        out.print("no diagnosis yet: the analyzer has not answered for this incident")
        return
    data = diagnosis["data"]
    causes: list[dict[str, Any]] = data.get("causes", [])
    out.print(f"diagnosis revision {data['revision']}, {str(diagnosis['time'])[:19]}: {data['outcome']}")
    if not causes:
        out.print("nothing examined explains this incident; the analyzer offers no cause")
    else:
        table = Table("#", "cause", "confidence", "suggested action", "summary")
        for rank, cause in enumerate(causes, start=1):
            table.add_row(
                str(rank),
                cause["kind"],
                f"{cause['confidence']:.2f}",
                cause["suggested_action"],
                escape(cause["summary"]),
            )
        out.print(table)
        evidence = Table("evidence of #1", "reference", "detail")
        for e in causes[0]["evidence"]:
            evidence.add_row(e["kind"], escape(e["ref"]), escape(e.get("detail") or ""))
        out.print(evidence)
    checked = ", ".join(
        f"{c['source']} {c['count']}" + (f" ({c['detail']})" if c.get("detail") else "") for c in data["checked"]
    )
    out.print(f"checked: {escape(checked)}")
