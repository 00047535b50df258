"""Schemathesis against the API's own OpenAPI schema: generated requests (valid and invalid) to
every operation never get a 5xx, and every response matches the schema (its status code is
documented, its body has the documented shape, invalid input is refused with a 4xx). The app is
the real one over a real published folder, called in process (ASGI).

The operations are driven with schemathesis' Hypothesis strategies (`APIOperation.as_strategy`)
and `@given`, one run per operation: its pytest plugin (`from_fixture`) does not work with this
pytest (`'Function' object has no attribute '_nodeid'`)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (content_type_conformance, negative_data_rejection, not_a_server_error,
                                 response_schema_conformance, status_code_conformance)
from schemathesis.generation import GenerationMode

from apikit import published_folder

from epochal.api.app import ApiConfig, create_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
OPERATIONS = ["/health", "/nodes", "/nodes/{node_id}", "/epochs", "/epochs/{reward_epoch}", "/wallets/{wallet}/rewards"]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    data = published_folder(tmp_path_factory)
    app = create_app(ApiConfig(published=data["root"]))
    app.state.api.start()
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.api.stop()


def test_the_schema_lists_every_operation(api_schema):
    assert sorted(api_schema.raw_schema["paths"]) == sorted(OPERATIONS)


@pytest.mark.parametrize("path,mode", [(p, m) for p in OPERATIONS for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                                        if not (p == "/health" and m == GenerationMode.NEGATIVE)])  # no parameter to spoil
def test_no_server_error_and_every_answer_matches_the_schema(api_schema, path, mode):
    op = api_schema[path]["GET"]

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        case.call_and_validate(checks=CHECKS)

    run()
