"""`opsbus tail` reading frames it cannot trust: every shape becomes a line or a notice, never a traceback."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from opsbus.cli.tailing import cloud_event, line, notice

EVENT = {"specversion": "1.0", "id": "e1", "type": "io.opsbus.alert.fired.v1", "subject": "Pod/a/web", "time": "t"}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ({"id": "7", "event": "undecodable", "data": '{"sequence": 7, "reason": "not UTF-8 JSON"}'}, "not UTF-8 JSON"),
        ({"id": "8", "event": "message", "data": "{not json"}, "not JSON"),
        ({"id": "9", "event": "x", "data": "[1, 2]"}, "not a CloudEvent"),
        ({"id": "10", "event": "x", "data": '{"type": 5, "id": "a", "specversion": "1.0"}'}, "not a CloudEvent"),
        ({"id": "11", "event": "undecodable", "data": "[]"}, "undecodable"),
        ({"event": "x"}, "not JSON"),
    ],
)
def test_frames_that_are_not_cloudevents_become_a_notice_with_their_sequence(
    frame: dict[str, str], reason: str
) -> None:
    event, why = cloud_event(frame)
    assert event is None and why == reason
    assert notice(frame, why) == f"event {frame.get('id', '?')}: skipped, {reason}"


def test_odd_cloudevents_print_one_line_and_their_text_is_not_markup() -> None:
    odd = {**EVENT, "data": "a string", "time": 5, "subject": "[red]Pod/a/web[/red]"}
    event, _ = cloud_event({"id": "3", "event": "io.opsbus.alert.fired.v1", "data": json.dumps(odd)})
    assert event is not None
    console = Console(width=200, record=True, color_system=None)
    console.print(line({"id": "3"}, event), highlight=False)
    assert console.export_text().strip() == "3 5 io.opsbus.alert.fired.v1 [red]Pod/a/web[/red]"
    with_data = {**EVENT, "data": {"alertname": "KubePodCrashLooping"}}
    console.print(line({"id": "4"}, with_data), highlight=False)
    assert console.export_text().splitlines()[-1].endswith("Pod/a/web KubePodCrashLooping")
