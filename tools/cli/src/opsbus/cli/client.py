"""The HTTP side of the CLI: one `httpx.Client` against the gateway, with problem+json turned into a readable
error (`GatewayError`) instead of a traceback. Configured from options, `OPSBUS_URL`/`OPSBUS_API_KEY` or the
file `opsbus login` writes (see `settings`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from opsbus.cli.settings import resolve


class GatewayError(Exception):
    def __init__(self, status: int, title: str, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.retry_after: str | None = None


@dataclass
class Gateway:
    url: str
    key: str | None
    timeout: float = 15.0

    @classmethod
    def resolve(cls, url: str | None = None, key: str | None = None) -> Gateway:
        login = resolve(url, key)
        return cls(url=login.url, key=login.api_key)

    def _client(self, timeout: float | None = None) -> httpx.Client:
        headers = {"User-Agent": "opsbus-cli/0.1"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout or self.timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            with self._client() as client:
                response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(0, "Cannot reach the gateway", f"{self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response.json() if response.content else None

    def stream(self, path: str, params: dict[str, Any], last_event_id: str | None) -> Iterator[dict[str, str]]:
        """SSE events as dicts (id, event, data); reconnects with Last-Event-ID when the server drops us."""
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                with (
                    self._client(timeout=None) as client,
                    client.stream("GET", path, params=params, headers=headers) as response,
                ):
                    if response.status_code >= 400:
                        response.read()
                        raise _error(response)
                    current: dict[str, str] = {}
                    for line in response.iter_lines():
                        if line.startswith(":"):
                            continue
                        if not line:
                            if current.get("event") == "dropped":
                                break  # too slow: reconnect from the last event seen
                            if "data" in current:
                                last_event_id = current.get("id", last_event_id)
                                yield current
                            current = {}
                            continue
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        # SSE: the data lines of one event are joined with newlines
                        current[name] = f"{current[name]}\n{value}" if name == "data" and name in current else value
            except httpx.HTTPError as exc:
                raise GatewayError(0, "Stream interrupted", str(exc)) from exc


def _error(response: httpx.Response) -> GatewayError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = GatewayError(
        response.status_code,
        str(body.get("title") or response.reason_phrase),
        str(body.get("detail") or response.text[:300]),
        body.get("errors"),
    )
    error.retry_after = response.headers.get("retry-after")
    return error
