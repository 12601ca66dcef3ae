"""The OpenAPI document is true: it covers every route and error, and a
schemathesis run against a live server finds no 500 and no undocumented answer."""

from __future__ import annotations

import json
import re

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tornado.web import RequestHandler

from packrat.core import errors, keys
from packrat.frontend import app as frontend_app
from packrat.frontend.handlers import OPENAPI_PATH
from packrat.frontend.webdav import DAVHandler

DOCUMENT = json.loads(OPENAPI_PATH.read_text())
EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _documented_statuses() -> set[int]:
    return {
        int(status)
        for item in DOCUMENT["paths"].values()
        for operation in item.values()
        for status in operation["responses"]
    }


def test_every_route_is_documented():
    application = frontend_app.make_app(frontend=None)  # routing only
    documented = set(DOCUMENT["paths"])
    for rule in application.default_router.rules[0].target.rules:
        pattern = rule.matcher.regex.pattern.rstrip("$")
        if "static" in pattern or rule.target is DAVHandler:
            continue  # the status page's files, and WebDAV (docs/webdav.md)
        as_path = re.sub(r"\(\.\+\)", "{key}", pattern).replace("\\.", ".")
        assert as_path in documented, pattern
        for method in ("get", "head", "post", "put", "delete"):
            answered = getattr(rule.target, method) is not getattr(RequestHandler, method)
            assert answered == (method in DOCUMENT["paths"][as_path]), (as_path, method)


def test_every_error_code_and_status_is_documented():
    codes = set(DOCUMENT["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    statuses = _documented_statuses()
    for code in errors.ErrorCode:
        assert code in codes, code
        # 405 answers exactly the operations the document does not list.
        if code != errors.ErrorCode.METHOD_NOT_ALLOWED:
            assert errors.STATUS[code] in statuses, code
    description = DOCUMENT["info"]["description"]
    for prefix in keys.RESERVED_PREFIXES:
        assert f"`{prefix}`" in description


def test_document_is_served(packrat_server):
    reply = requests.get(packrat_server.url + "/api/openapi.json", timeout=10)
    assert reply.status_code == 200
    assert reply.json() == DOCUMENT
    assert reply.headers["Content-Type"].startswith("application/json")


@pytest.mark.slow
def test_schemathesis_finds_no_500_and_no_undocumented_answer(make_server):
    server = make_server(cache={"max_size": "8M", "max_file_size": "1M"})
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    session = requests.Session()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(item) for item in DOCUMENT["paths"].values())
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            _fuzz(operation, mode, server.url, session, failures)
    assert not failures, "\n\n".join(failures[:5])
    assert "Traceback" not in server.log()


def _fuzz(operation, mode, base_url: str, session: requests.Session, failures: list[str]) -> None:
    """Send ``EXAMPLES_PER_OPERATION`` generated requests; note every failed check."""
    label = f"{operation.label} {mode.name}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(base_url=base_url, session=session, timeout=10)
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as e:  # collect, so one run reports every problem
            failures.append(f"{label}: {e}"[:2000])

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # Nothing to get wrong in an operation without parameters or body.
        assert mode is schemathesis.GenerationMode.NEGATIVE, label


def test_the_docs_document_every_route_error_and_option():
    from packrat.core import settings as config

    docs = OPENAPI_PATH.parents[2] / "docs"
    api = (docs / "api.md").read_text()
    configuration = (docs / "configuration.md").read_text()
    for path, item in DOCUMENT["paths"].items():
        shown = path.replace("{key}", "<key>").replace("{hash}", "<hash>")
        for method in item:
            assert f"`{method.upper()} {shown}" in api, (method, path)
    for code in DOCUMENT["components"]["schemas"]["Error"]["properties"]["error"]["enum"]:
        assert f"`{code}`" in api, code
    for status in _documented_statuses():
        assert f"| {status} " in api or f"{status} with" in api or f"{status}" in api, status
    for header in DOCUMENT["components"]["headers"]:
        assert f"`{header}" in api, header
    # [objectstore]'s options have their table in docs/objectstore.md, README a link to it.
    objectstore_doc = (docs / "objectstore.md").read_text()
    assert "docs/objectstore.md" in (OPENAPI_PATH.parents[2] / "README.md").read_text()
    for section, option in config._OPTIONS:
        if section == "objectstore":
            assert f"\n| {option} |" in objectstore_doc, option
        else:
            assert f"| {section} | {option} |" in configuration, (section, option)
