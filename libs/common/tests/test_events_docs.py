"""The generated event docs: current in the repository, complete, deterministic, and loud when stale."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from opsbus.common.events import EventPayload, docs
from opsbus.common.events.catalog import DLQ, FAMILIES
from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import opsbus_payload_types

REPO_DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_checked_in_event_docs_are_current() -> None:
    stale = docs.check(REPO_DOCS)
    assert stale == [], f"stale generated docs: {[str(p) for p in stale]}; run `make docs` and commit"


def test_every_event_type_has_a_schema_file_whose_data_is_its_payload() -> None:
    for event_type, model in opsbus_payload_types().items():
        path = REPO_DOCS / docs.SCHEMAS_DIR / f"{event_type}.json"
        schema = json.loads(path.read_text())
        assert schema["properties"]["type"] == {"const": event_type, "description": "CloudEvents type."}
        assert schema["properties"]["data"] == {"$ref": f"#/$defs/{model.__name__}"}
        payload_schema = schema["$defs"][model.__name__]
        assert set(payload_schema["properties"]) == set(model.model_fields)
        assert payload_schema["additionalProperties"] is False
        assert all("description" in prop for prop in payload_schema["properties"].values())


def test_schema_examples_are_the_real_example_events() -> None:
    events = example_events()
    for event_type in opsbus_payload_types():
        schema = json.loads((REPO_DOCS / docs.SCHEMAS_DIR / f"{event_type}.json").read_text())
        (example,) = schema["examples"]
        assert example == json.loads(events[event_type].to_json())
        assert set(schema["required"]) <= set(example)
        for name, prop in schema["properties"].items():
            if "pattern" in prop and name in example:
                assert re.search(prop["pattern"], example[name]), (event_type, name)
            if "const" in prop:
                assert example[name] == prop["const"], (event_type, name)


def test_asyncapi_has_one_channel_per_family_and_verb_with_stream_and_operations() -> None:
    doc = yaml.safe_load((REPO_DOCS / docs.ASYNCAPI_PATH).read_text())
    assert doc["asyncapi"] == "3.0.0"
    expected = {f"{fam.name}.{verb}" for fam in FAMILIES for verb in fam.verbs}
    assert set(doc["channels"]) == expected | {"dlq"}

    for fam in FAMILIES:
        for verb in fam.verbs:
            channel = doc["channels"][f"{fam.name}.{verb}"]
            assert channel["address"] == f"{fam.name}.{verb}.{{cluster}}.{{namespace}}"
            assert set(channel["parameters"]) == {"cluster", "namespace"}
            assert channel["x-opsbus-stream"]["stream"] == fam.stream
            assert channel["x-opsbus-stream"]["maxAgeSeconds"] == int(fam.retention.total_seconds())
            assert f"stream `{fam.stream}`" in channel["description"]
            (message_ref,) = channel["messages"].values()
            message = doc["components"]["messages"][message_ref["$ref"].rsplit("/", 1)[1]]
            assert message["contentType"] == "application/cloudevents+json"
            assert message["payload"]["$ref"].startswith("#/components/schemas/io.opsbus.")
            senders = {
                op_id.split(".", 1)[0]
                for op_id, op in doc["operations"].items()
                if op["action"] == "send" and op["channel"]["$ref"] == f"#/channels/{fam.name}.{verb}"
            }
            assert senders == set(fam.producers_of(verb))

    assert doc["channels"]["dlq"]["x-opsbus-stream"]["stream"] == DLQ.stream
    assert doc["operations"]["deployer.receive.deploy.requested"]["action"] == "receive"
    assert "deployer.send.deploy.requested" not in doc["operations"]


def test_every_ref_in_the_asyncapi_document_resolves() -> None:
    doc = yaml.safe_load((REPO_DOCS / docs.ASYNCAPI_PATH).read_text())
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in set(refs):
        target: object = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and part in target, f"dangling $ref {ref}"
            target = target[part]


def test_rendering_is_deterministic() -> None:
    fresh = docs._render.__wrapped__  # bypass the cache: two independent renders must be identical
    assert fresh() == fresh() == docs.render()


def test_check_lists_stale_missing_and_obsolete_files(tmp_path: Path) -> None:
    assert docs.check(tmp_path) == [tmp_path / rel for rel in docs.render()]  # nothing written yet

    written = docs.write(tmp_path)
    assert len(written) == len(opsbus_payload_types()) + 1
    assert docs.check(tmp_path) == []

    schema = tmp_path / docs.SCHEMAS_DIR / "io.opsbus.alert.fired.v1.json"
    schema.write_text(schema.read_text().replace("critical", "fatal"))
    obsolete = tmp_path / docs.SCHEMAS_DIR / "io.opsbus.alert.exploded.v1.json"
    obsolete.write_text("{}\n")
    assert docs.check(tmp_path) == [schema, obsolete]

    docs.write(tmp_path)
    assert docs.check(tmp_path) == []
    assert not obsolete.exists()


def test_main_check_exits_1_and_says_to_run_make_docs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docs.main(["--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "event docs are stale" in err
    assert "asyncapi.yaml" in err
    assert "run `make docs`" in err

    assert docs.main(["--write", str(tmp_path)]) == 0
    assert docs.main(["--check", str(tmp_path)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_dlq_header_names_match_the_bus() -> None:
    consuming = pytest.importorskip("opsbus.common.bus.consuming")
    bus_headers = {
        value for name, value in vars(consuming).items() if name.startswith("DLQ_") and isinstance(value, str)
    }
    assert bus_headers == set(docs.DLQ_HEADERS)


def test_events_md_lists_every_type_with_a_link_that_exists() -> None:
    text = (REPO_DOCS / "EVENTS.md").read_text()
    for event_type in opsbus_payload_types():
        link = f"(events/schemas/{event_type}.json)"
        assert link in text, f"docs/EVENTS.md has no row for {event_type}"
        assert (REPO_DOCS / "events" / "schemas" / f"{event_type}.json").is_file()
    assert "(events/asyncapi.yaml)" in text


class _ProbePayload(EventPayload):
    """A type registered by a test or tool, not part of opsbus's catalogue (like the bus tests' probe)."""

    event_type = "io.opsbus.probe.happened.v1"


def test_types_registered_outside_opsbus_do_not_leak_into_the_docs() -> None:
    assert EventPayload.registry["io.opsbus.probe.happened.v1"] is _ProbePayload
    assert "io.opsbus.probe.happened.v1" not in opsbus_payload_types()
    assert all(m.__module__.startswith("opsbus.common.events.payloads.") for m in docs.payload_types())
    assert docs.check(REPO_DOCS) == []
