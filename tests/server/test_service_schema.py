"""Schemathesis against the service's published OpenAPI schema (``/openapi.json``) on a real
``thrifty serve``: generated requests, valid and malformed, to every operation; none may answer
with a 5xx. Run twice: without authentication (every operation reached) and with a write token
of one study (the access checks in the way of each)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from _service import call, serve, token
from hypothesis import HealthCheck, given, settings

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "k": {"type": "int", "low": 1, "high": 5}}
#: Examples per operation: about 15 s for both runs together on two cores.
EXAMPLES = 50


@pytest.fixture(scope="module", params=["open", "token"])
def served(request, tmp_path_factory) -> Iterator[tuple[str, str | None]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('schema') / 'study.db'}"
    auth = request.param == "token"
    bearer = token(url, "s", "admin") if auth else None
    with serve(url, no_auth=not auth, cwd=str(tmp_path_factory.mktemp("cwd"))) as base:
        assert call(base, "POST", "/studies", {"name": "s", "space": SPACE, "strategy": "random"}, bearer)[0] == 201
        assert call(base, "POST", "/studies/s/suggest", {"count": 3, "client_id": "c"}, bearer)[0] == 200
        yield base, bearer


def test_no_input_gives_a_5xx(served):
    base, bearer = served
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    api = schemathesis.openapi.from_url(base + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def no_5xx(case) -> None:
            response = case.call(headers=headers, timeout=30)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
            if response.status_code >= 400:  # every refusal is JSON with a one-line error
                error = response.json().get("error")
                assert isinstance(error, str) and error and "\n" not in error, f"{where}: {response.text}"

        no_5xx()
