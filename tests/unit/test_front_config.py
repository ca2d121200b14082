"""The front-proxy recipe sends every route crossrank acts on to crossrank (no false
negatives), generated from the same patterns ``classify`` uses; the committed copy in docker/
is the generator's output."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from crossrank.proxy.front import COMPOSE_TARGETS, nginx_pattern, render_nginx
from crossrank.proxy.routes import RouteKind, classify, front_rules

REPO = Path(__file__).resolve().parents[2]
PATTERNS = [re.compile(nginx_pattern(rule)) for rule in front_rules()]


def to_crossrank(method: str, raw_uri: str) -> bool:
    return any(p.match(f"{method} {raw_uri}") for p in PATTERNS)


METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD")
SEGMENTS = ("idx", "my%2Cidx", "a,b", "_search", "_msearch", "_bulk", "_doc", "_create",
            "_update", "1", "a%2Fb", "_crossrank", "policies", "_cat", "_count", "template",
            "scroll", "_source", "", "x?y", "rerank", "v1", "v2")
QUERIES = ("", "?q=a", "?rerank=false&size=3", "?x=/_search", "?")


@given(st.sampled_from(METHODS), st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4),
       st.booleans(), st.sampled_from(QUERIES))
def test_every_route_crossrank_acts_on_reaches_it(method: str, segments: list[str],
                                                  slash: bool, query: str) -> None:
    path = "/" + "/".join(segments) + ("/" if slash else "")
    if classify(method, path).kind is not RouteKind.PASS_THROUGH:
        assert to_crossrank(method, path + query), (method, path + query)


def test_reads_go_straight_to_opensearch() -> None:
    for method, uri in (("GET", "/_cluster/health"), ("GET", "/_cat/indices?v"),
                        ("GET", "/idx/_doc/1"), ("HEAD", "/idx"), ("GET", "/idx/_mapping"),
                        ("POST", "/idx/_count"), ("GET", "/idx/_search/template/x"),
                        ("PUT", "/_msearch/template"),
                        ("POST", "/_search/scroll"), ("DELETE", "/idx/_doc/1"),
                        ("GET", "/_crossrankx"), ("GET", "/a?b=/_search"),
                        ("GET", "/rerank"), ("PUT", "/rerank"), ("GET", "/v1/rerank"),
                        ("POST", "/v3/rerank")):
        assert not to_crossrank(method, uri), (method, uri)
        assert classify(method, uri.split("?")[0]).kind is RouteKind.PASS_THROUGH


def test_search_templates_are_searches_of_their_indices() -> None:
    route = classify("POST", "/a%2Cb,c/_search/template")
    assert route.kind is RouteKind.SEARCH_TEMPLATE and route.indices == ("a", "b", "c")
    assert classify("GET", "/_search/template/").kind is RouteKind.SEARCH_TEMPLATE
    assert classify("PUT", "/idx/_search/template").kind is RouteKind.PASS_THROUGH
    assert to_crossrank("GET", "/idx/_search/template?rerank=false")
    assert classify("POST", "/idx/_msearch/template").kind is RouteKind.MSEARCH_TEMPLATE
    assert to_crossrank("POST", "/_msearch/template")


def test_the_committed_recipe_is_the_generators_output() -> None:
    committed = (REPO / "docker" / "nginx" / "crossrank.conf").read_text()
    assert committed == render_nginx(COMPOSE_TARGETS), \
        "docker/nginx/crossrank.conf is stale: regenerate it with `crossrank front-config " \
        "--listen 9200 --crossrank crossrank:8080 --opensearch opensearch:9200`"


def test_the_compose_deployment_matches_the_recipes_targets() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    crossrank = yaml.safe_load((REPO / "docker" / "crossrank.yaml").read_text())
    services = compose["services"]
    assert services["front"]["build"]["dockerfile"] == "docker/nginx/Dockerfile"
    assert "docker/nginx/crossrank.conf" in (REPO / "docker/nginx/Dockerfile").read_text()
    assert services["front"]["ports"] == [f"{COMPOSE_TARGETS.listen}:{COMPOSE_TARGETS.listen}"]
    assert COMPOSE_TARGETS.crossrank == (f"crossrank:{crossrank['port']}",)
    assert (f"http://{COMPOSE_TARGETS.opensearch[0]}" == crossrank["upstream"]["url"]
            == services["crossrank"]["environment"]["CROSSRANK_UPSTREAM_URL"])
