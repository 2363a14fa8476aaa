"""Static checks of the Grafana dashboard (the live ones are in test_dashboard_prometheus.py)."""

from __future__ import annotations

import re

import promql_parser
import pytest

from proxy.relay.metrics import Metrics
from proxy.transition.scan import STORED_BYTES, STORED_OBJECTS
from tests.k8s.dashboard import (
    DASHBOARDS,
    load,
    panels,
    parse_label_values,
    queries,
    substitute,
    variable_queries,
)

QUERIES = queries()
#: Gauges ``format-proxy scan --pushgateway`` pushes (job ``format-proxy-scan``): they carry the
#: Pushgateway's labels, not the sidecars', so they are scoped by job and route.
SCAN_GAUGES = {STORED_OBJECTS, STORED_BYTES}
RANGE_FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets"}


def _exported_names() -> set[str]:
    """Every sample name the proxy can export (the metrics contract)."""
    metrics = Metrics(version="0", app_version="v1")
    names = {"up"}
    for family in metrics.registry.collect():
        kind = family.type
        if kind == "counter":
            names.add(family.name + "_total")
        elif kind == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


def test_every_dashboard_file_is_small_and_has_a_stable_uid():
    uids = set()
    for path in DASHBOARDS:
        assert path.stat().st_size < 256 * 1024, path.name
        dashboard = load(path)
        assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), dashboard["uid"]
        uids.add(dashboard["uid"])
        assert "id" not in dashboard or dashboard["id"] is None  # not tied to one Grafana
    assert len(uids) == len(DASHBOARDS)
    assert load()["uid"] == "format-proxy"


def test_datasource_is_a_variable_used_by_every_panel_and_query():
    dashboard = load()
    (ds,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert ds["name"] == "datasource" and ds["query"] == "prometheus"
    for p in panels(dashboard):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_panel_ids_are_unique_and_the_grid_does_not_overlap():
    ps = panels(load())
    assert len({p["id"] for p in ps}) == len(ps)
    cells: dict[tuple[int, int], str] = {}
    for p in ps:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells.get((x, y))}"
                cells[(x, y)] = p["title"]


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_query_parses_and_uses_rate_interval_and_known_metrics(query):
    expr = query.substituted()
    assert "$" not in expr
    tree = promql_parser.parse(expr)
    ranges = []
    names = []
    calls = []

    def visit(node):
        if isinstance(node, promql_parser.MatrixSelector):
            ranges.append(node.range)
        if isinstance(node, promql_parser.VectorSelector):
            names.append(node.name)
        if isinstance(node, promql_parser.Call):
            calls.append(node.func.name)

    promql_parser.walk(tree, visit)
    # Every range is Grafana's $__rate_interval, never a hard-coded window.
    if ranges:
        assert query.expr.count("[$__rate_interval]") == len(ranges), query.expr
    for func in calls:
        if func in RANGE_FUNCTIONS:
            assert ranges, query.expr
    assert names and set(names) <= _exported_names() | SCAN_GAUGES, names
    # Every selector is scoped to the sidecars' job and the namespace variable (the scan's
    # gauges: to the scan's job and the route variable).
    scan = [n for n in names if n in SCAN_GAUGES]
    sidecar = query.expr.count('job="format-proxy", namespace=~"$namespace"')
    assert sidecar == len(names) - len(scan)
    assert query.expr.count('job="format-proxy-scan", route=~"$route"') == len(scan)


def test_substitution_rejects_unknown_variables():
    with pytest.raises(KeyError, match=r"\$cluster"):
        substitute('up{cluster="$cluster"}', {"namespace": "x"})


def test_variables_are_label_values_queries_that_parse():
    defs = variable_queries()
    assert set(defs) == {"namespace", "route"}
    for name, definition in defs.items():
        selector, label = parse_label_values(definition)
        assert label == name
        assert selector is not None
        promql_parser.parse(substitute(selector, {"namespace": "shop"}))


REQUIRED_PANELS = {
    "Request rate by operation": ["format_proxy_requests_total"],
    "Error ratio by operation": ["format_proxy_requests_total"],
    "Latency (whole request)": ["format_proxy_request_duration_seconds_bucket"],
    "In-flight requests by pod": ["format_proxy_inflight_requests"],
    "Refusals and client timeouts by reason": [
        "format_proxy_refused_total",
        "format_proxy_client_timeouts_total",
    ],
    "Bytes/s": ["format_proxy_request_bytes_total", "format_proxy_response_bytes_total"],
    "Translations/s by route and direction": ["format_proxy_translations_total"],
    "Share of reads translated vs native, per route": ["format_proxy_route_objects_total"],
    "Translation failures by reason": ["format_proxy_translation_failures_total"],
    "Pods per declared version": ["format_proxy_build_info"],
    "Objects left in the old format": [STORED_OBJECTS, STORED_BYTES],
    "Shadow checks by outcome": ["format_proxy_shadow_checks_total"],
    "Shadow failures by reason": ["format_proxy_shadow_failures_total"],
    "Shadow checks skipped by reason": ["format_proxy_shadow_skipped_total"],
}


def _row_of(title: str) -> str:
    """The title of the row a panel sits under (rows are laid out top to bottom)."""
    ps = panels(load())
    y = next(p["gridPos"]["y"] for p in ps if p["title"] == title)
    rows = sorted((p["gridPos"]["y"], p["title"]) for p in ps if p["type"] == "row")
    return [row for row_y, row in rows if row_y < y][-1]


@pytest.mark.parametrize(
    ("title", "row"),
    [
        ("Refusals and client timeouts by reason", "Traffic"),
        ("Objects left in the old format", "Transition"),
        ("Shadow checks by outcome", "Shadow"),
        ("Shadow failures by reason", "Shadow"),
        ("Shadow checks skipped by reason", "Shadow"),
    ],
)
def test_panel_sits_in_its_row(title: str, row: str) -> None:
    assert _row_of(title) == row


@pytest.mark.parametrize("title", sorted(REQUIRED_PANELS))
def test_required_panel_is_there(title):
    by_title = {p["title"]: p for p in panels(load())}
    assert title in by_title
    exprs = " ".join(t["expr"] for t in by_title[title]["targets"])
    for metric in REQUIRED_PANELS[title]:
        assert metric in exprs


def test_specific_panel_semantics():
    by_title = {p["title"]: p for p in panels(load())}
    latency = [t["expr"] for t in by_title["Latency (whole request)"]["targets"]]
    for q in ("0.50", "0.95", "0.99"):
        assert any(e.startswith(f"histogram_quantile({q},") for e in latency), q
    curve = by_title["Share of reads translated vs native, per route"]["targets"][0]["expr"]
    assert 'outcome="translated"' in curve and 'outcome=~"native|translated"' in curve
    assert curve.count('operation="get"') == 2 and "sum by (route)" in curve
    failures = by_title["Translation failures by reason"]["targets"][0]["expr"]
    assert "sum by (route, direction, reason)" in failures
    versions = by_title["Pods per declared version"]["targets"][0]["expr"]
    assert versions.startswith("count by (app_version) (format_proxy_build_info")
    errors = by_title["Error ratio by operation"]["targets"]
    assert {t["legendFormat"].split()[0] for t in errors} == {"5xx", "4xx"}
    for unit_panel, unit in (("Error ratio by operation", "percentunit"), ("Bytes/s", "Bps")):
        assert by_title[unit_panel]["fieldConfig"]["defaults"]["unit"] == unit
    left = by_title["Objects left in the old format"]
    assert [t["expr"].split(" (")[0] for t in left["targets"]] == ["max by", "max by"]
    assert all("by (route, format)" in t["expr"] for t in left["targets"])
    (bytes_override,) = left["fieldConfig"]["overrides"]
    assert bytes_override["matcher"] == {"id": "byFrameRefID", "options": "B"}
    assert {"id": "unit", "value": "bytes"} in bytes_override["properties"]
    shadow = by_title["Shadow checks by outcome"]["targets"][0]["expr"]
    assert "sum by (route, outcome)" in shadow
    reasons = by_title["Shadow failures by reason"]["targets"][0]["expr"]
    assert "sum by (route, direction, reason)" in reasons
