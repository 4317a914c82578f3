"""problem+json shapes: validation errors as JSON pointers, service errors mapped to HTTP, API models mirror
the services' own copies on the wire."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from opsbus.common.api import deployer as common_deployer
from opsbus.common.api import healer as common_healer
from opsbus.common.api import notifier as common_notifier
from opsbus.common.rpc import RpcError
from opsbus.gateway.problems import Problem, pointer, rpc_problem, validation_errors


def test_pointers_escape_per_rfc_6901() -> None:
    assert pointer(["workload", "name"]) == "#/workload/name"
    assert pointer(["images", "a/b~c"]) == "#/images/a~1b~0c"
    assert pointer([]) == "#"


def test_validation_errors_point_into_the_body_or_name_the_parameter() -> None:
    status, errors = validation_errors(
        [
            {
                "loc": ("body", "workload", "namespace"),
                "msg": "String should match pattern",
                "type": "string_pattern_mismatch",
            },
            {"loc": ("query", "limit"), "msg": "Input should be less than or equal to 500", "type": "less_than_equal"},
        ]
    )
    assert status == 422
    assert errors[0].pointer == "#/workload/namespace" and errors[1].parameter == "limit"
    status, errors = validation_errors(
        [{"loc": ("body", 3), "msg": "JSON decode error", "type": "json_invalid", "ctx": {"error": "Expecting value"}}]
    )
    assert status == 400 and "malformed JSON" in errors[0].detail


@pytest.mark.parametrize(("code", "status"), [(400, 422), (422, 422), (404, 404), (409, 409), (500, 502)])
def test_service_errors_become_gateway_statuses(code: int, status: int) -> None:
    problem = rpc_problem(RpcError(code, "because", service="healer", operation="approve"))
    assert problem.status == status
    if status == 502:
        assert "because" not in problem.detail  # a service's internals never leak


def test_problem_document_shape() -> None:
    body = Problem(title="Not found", status=404, detail="no such key").model_dump(exclude_none=True)
    assert body == {"type": "about:blank", "title": "Not found", "status": 404, "detail": "no such key"}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("description", None)
    schema.pop("title", None)
    return schema


def _pairs() -> list[tuple[type[BaseModel], type[BaseModel]]]:
    pairs: list[tuple[type[BaseModel], type[BaseModel]]] = []
    try:
        from opsbus.deployer import api as deployer_api  # noqa: PLC0415
        from opsbus.healer import api as healer_api  # noqa: PLC0415
        from opsbus.notifier.domain import api as notifier_api  # noqa: PLC0415
    except ImportError:  # a service's copy was removed: the common one is the only one
        return pairs
    for mine, theirs in ((common_healer, healer_api), (common_deployer, deployer_api), (common_notifier, notifier_api)):
        for name in dir(theirs):
            model = getattr(theirs, name)
            ours = isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == theirs.__name__
            if ours and not name.startswith("_"):
                pairs.append((getattr(mine, name), model))
    return pairs


@pytest.mark.parametrize(("mine", "theirs"), _pairs(), ids=lambda m: m.__name__)
def test_common_api_models_mirror_the_services_wire_format(mine: type[BaseModel], theirs: type[BaseModel]) -> None:
    assert set(mine.model_fields) == set(theirs.model_fields)
    for name, field in theirs.model_fields.items():
        assert mine.model_fields[name].is_required() == field.is_required(), name
        assert mine.model_fields[name].alias == field.alias, name
