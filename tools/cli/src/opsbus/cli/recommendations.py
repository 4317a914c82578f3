"""`opsbus recommendations list|apply`: the optimizer's right-sizing and scaling advice, through the gateway."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from opsbus.cli.console import Key, Output, Url, call, emit, gateway, out

app = typer.Typer(help="Right-sizing and scaling recommendations from the optimizer: list them, apply one.")
MI = 2**20


def change(rec: dict[str, Any]) -> str:
    """`app: cpu 1000m->150m, mem 1024Mi->256Mi; replicas 4->2` from a ScaleRecommended payload."""
    parts = []
    for c in rec.get("containers") or []:
        now, then = c["current"]["requests"], c["recommended"]["requests"]
        cpu = f"cpu {now.get('cpu_millicores')}m->{then.get('cpu_millicores')}m"
        mem = f"mem {_mi(now.get('memory_bytes'))}->{_mi(then.get('memory_bytes'))}"
        parts.append(f"{c['container']}: {cpu}, {mem}")
    replicas = rec.get("replicas")
    if replicas:
        parts.append(f"replicas {replicas.get('current')}->{replicas.get('recommended')}")
    return "; ".join(parts) or "-"


def _mi(value: int | None) -> str:
    return "?" if value is None else f"{round(value / MI)}Mi"


@app.command("list")
def list_(  # noqa: PLR0917 - typer: one parameter per option
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace.")] = None,
    workload: Annotated[str | None, typer.Option(help="Only this workload (its name).")] = None,
    status: Annotated[str | None, typer.Option(help="open, applied or superseded.")] = "open",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Recommendations in your namespaces (open ones unless --status says otherwise), newest first."""
    params: dict[str, Any] = {"limit": limit}
    for name, value in (("namespace", namespace), ("workload", workload), ("status", status)):
        if value:
            params[name] = value
    answer = call(gateway(url, api_key), "GET", "/v1/recommendations", params=params)
    table = Table("id", "workload", "status", "change", "monthly", "confidence", "created")
    for r in answer["recommendations"]:
        rec = r["recommendation"]
        w = rec["workload"]
        delta = (rec.get("cost") or {}).get("monthly_delta")
        table.add_row(
            r["id"],
            f"{w['kind']}/{w['namespace']}/{w['name']}",
            r["status"],
            change(rec),
            "-" if delta is None else f"{delta:+.2f}",
            f"{rec.get('confidence', 0):.2f}",
            str(r["created_at"])[:19],
        )
    emit(answer, output, table)


@app.command("apply")
def apply(  # noqa: PLR0917 - typer: one parameter per option
    recommendation_id: Annotated[str, typer.Argument(help="The id from `opsbus recommendations list`.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and simulate; change nothing.")] = False,
    comment: Annotated[str | None, typer.Option(help="Why; recorded in the audit trail.")] = None,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Apply an open recommendation as recommended (operator of its namespace). Refused during a rollout."""
    body = {"dry_run": dry_run, "comment": comment}
    answer = call(gateway(url, api_key), "POST", f"/v1/recommendations/{recommendation_id}/apply", json=body)
    if output == "json":
        emit(answer, output, None)
    elif answer["dry_run"]:
        out.print(f"[yellow]dry run[/] of {answer['recommendation_id']}: nothing changed ({answer['reason']})")
    else:
        out.print(f"[green]applied[/] {answer['recommendation_id']} (resourceVersion {answer['resource_version']})")
