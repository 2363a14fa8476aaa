"""The Grafana dashboard's queries, with Grafana's template variables substituted."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s.manifests import K8S

DASHBOARDS = sorted((K8S / "monitoring" / "dashboards").glob("*.json"))
MAIN = K8S / "monitoring" / "dashboards" / "format-proxy.json"

#: What the tests substitute for each variable: the labels of the test's scrape target, and
#: a range long enough to hold several 1 s scrapes of the traffic the tests drive.
VARIABLES = {"namespace": "shop", "route": "orders", "__rate_interval": "20s"}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.panel} [{self.ref}]"

    def substituted(self, variables: dict[str, str] | None = None) -> str:
        return substitute(self.expr, variables or VARIABLES)


def substitute(expr: str, variables: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise KeyError(f"unknown template variable ${name} in {expr!r}")
        return variables[name]

    return _VAR.sub(repl, expr)


def load(path: Path = MAIN) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows keep their panels inside
    return out


def queries(dashboard: dict[str, Any] | None = None) -> list[Query]:
    dashboard = dashboard or load()
    return [
        Query(p["title"], t["refId"], t["expr"])
        for p in panels(dashboard)
        for t in p.get("targets", [])
    ]


def variable_queries(dashboard: dict[str, Any] | None = None) -> dict[str, str]:
    """Query variables: name → ``label_values(...)`` definition."""
    dashboard = dashboard or load()
    out = {}
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]
            out[v["name"]] = q["query"] if isinstance(q, dict) else q
    return out


_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def parse_label_values(definition: str) -> tuple[str | None, str]:
    """``label_values(sel, label)`` → (sel, label)."""
    m = _LABEL_VALUES.match(definition.strip())
    if not m:
        raise ValueError(f"not a label_values() query: {definition!r}")
    return m.group("selector"), m.group("label")
