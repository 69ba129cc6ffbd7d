"""Route selection, checked against the example table of AWS's "Routing API requests" guide."""

from __future__ import annotations

import pytest

from localgw.routes import RouteTable
from localgw.template import Route


def _table(*keys: str) -> RouteTable:
    routes = []
    for key in keys:
        if key == "$default":
            routes.append(Route("ANY", "$default", "Fn"))
        else:
            method, path = key.split(" ")
            routes.append(Route(method, path, "Fn"))
    return RouteTable(routes)


AWS_EXAMPLE = _table(
    "GET /pets/dog/1",
    "GET /pets/dog/{id}",
    "GET /pets/{proxy+}",
    "ANY /{proxy+}",
    "$default",
)


@pytest.mark.parametrize(
    ("method", "path", "route_key", "params"),
    [
        ("GET", "/pets/dog/1", "GET /pets/dog/1", {}),
        ("GET", "/pets/dog/2", "GET /pets/dog/{id}", {"id": "2"}),
        ("GET", "/pets/cat/1", "GET /pets/{proxy+}", {"proxy": "cat/1"}),
        ("POST", "/pets/dog/1", "ANY /{proxy+}", {"proxy": "pets/dog/1"}),
        ("GET", "/", "$default", {}),
    ],
)
def test_route_table_picks_most_specific_route_as_aws_example(
    method: str, path: str, route_key: str, params: dict[str, str]
) -> None:
    match = AWS_EXAMPLE.match(method, path)
    assert match is not None
    assert match.route.route_key == route_key
    assert match.path_parameters == params


def test_route_table_prefers_method_route_over_any_for_same_path() -> None:
    table = _table("ANY /items/{id}", "GET /items/{id}")
    get, delete = table.match("GET", "/items/7"), table.match("DELETE", "/items/7")
    assert get is not None
    assert get.route.route_key == "GET /items/{id}"
    assert delete is not None
    assert delete.route.route_key == "ANY /items/{id}"


def test_route_table_greedy_variable_needs_at_least_one_segment() -> None:
    table = _table("ANY /tickets/{proxy+}")
    assert table.match("GET", "/tickets") is None
    match = table.match("GET", "/tickets/a/b/c")
    assert match is not None
    assert match.path_parameters == {"proxy": "a/b/c"}


def test_route_table_without_default_answers_none_for_unknown_path() -> None:
    table = _table("GET /a")
    assert table.match("GET", "/b") is None
    assert table.match("POST", "/a") is None


def test_route_table_decodes_path_parameters_and_keeps_trailing_slash_distinct() -> None:
    table = _table("GET /users/{name}")
    match = table.match("GET", "/users/j%C3%BCrgen%20x")
    assert match is not None
    assert match.path_parameters == {"name": "jürgen x"}
    assert table.match("GET", "/users/") is None
    assert table.match("GET", "/users/a/") is None
