"""`opsbus policies get|validate|put`: the healer's remediation policies as one YAML document, versioned.

Editing is optimistic: `get` prints the version, `put` must name it, and the gateway refuses (409) when
someone else changed the policies since; fetch again, reapply your change, retry.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from opsbus.cli.console import Key, Output, Url, call, emit, err, gateway, out

app = typer.Typer(help="The healer's remediation policies: read, check and replace them (YAML, versioned).")

Document = Annotated[str, typer.Argument(help="The policy YAML file, or - for standard input.")]


def read_document(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        err.print(f"[red]error[/]: cannot read {name}: {exc.strerror}")
        raise typer.Exit(2) from None


def print_issues(issues: list[dict[str, Any]]) -> None:
    for issue in issues:
        where = f"line {issue['line']}" if issue.get("line") else ""
        if issue.get("column"):
            where += f", column {issue['column']}"
        err.print(f"  {issue.get('path') or '<document>'} {f'({where})' if where else ''}: {issue['message']}")


@app.command("get")
def get(
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Write the YAML here instead of printing.")] = None,
    url: Url = None,
    api_key: Key = None,
    output: Output = "yaml",
) -> None:
    """Print the policies in force (YAML; `-o json` adds the version and policy names)."""
    answer = call(gateway(url, api_key), "GET", "/v1/policies")
    if output == "json":
        emit(answer, output, None)
        return
    if file is not None:
        file.write_text(answer["document"], encoding="utf-8")
        out.print(f"version {answer['version']} written to {file}")
        out.print(f"after editing: opsbus policies put {file} --expected-version {answer['version']}")
        return
    err.print(f"# version {answer['version']}: {', '.join(answer['policies']) or 'no policies'}")
    sys.stdout.write(answer["document"] if answer["document"].endswith("\n") else answer["document"] + "\n")


@app.command("validate")
def validate(document: Document, url: Url = None, api_key: Key = None, output: Output = "table") -> None:
    """Check a policy YAML without applying it; exits 1 and lists every problem when it is not valid."""
    answer = call(gateway(url, api_key), "POST", "/v1/policies/validate", json={"document": read_document(document)})
    if output == "json":
        emit(answer, output, None)
    elif answer["valid"]:
        out.print(f"[green]valid[/]: {', '.join(answer.get('policies') or []) or 'no policies'}")
    else:
        err.print(f"[red]not valid[/]: {len(answer['issues'])} problem(s)")
        print_issues(answer["issues"])
    if not answer["valid"]:
        raise typer.Exit(1)


@app.command("put")
def put(  # noqa: PLR0917 - typer: one parameter per option
    document: Document,
    expected_version: Annotated[
        int, typer.Option("--expected-version", help="The version you edited (from `opsbus policies get`).")
    ],
    comment: Annotated[str | None, typer.Option(help="Why; recorded with the version and in the audit.")] = None,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Replace the policies (admin). Refused when they changed since EXPECTED_VERSION or are not valid."""
    body = {"document": read_document(document), "expected_version": expected_version, "comment": comment}
    answer = call(gateway(url, api_key), "PUT", "/v1/policies", json=body)
    if output == "json":
        emit(answer, output, None)
    else:
        out.print(f"[green]policies version {answer['version']}[/] in force: {', '.join(answer['policies'])}")
