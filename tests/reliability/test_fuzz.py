"""Fuzzing both translation directions through the document workers: every input, however
odd, ends in a result or a clean failure reason within its time budget (a worker that takes
longer is stopped: ``too_slow``). Derandomised on CI (``CI=true``); bounded example counts
keep the run under a minute."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import load_config
from proxy.datapath.documents import ClientDigests
from proxy.datapath.engine import DocumentWorker
from proxy.datapath.observe import NullObserver
from proxy.errors import TRANSLATION_REASONS, TranslationError
from tests.datapath.orders import SCHEMA
from tests.reliability.hostile import schemaless_route

pytestmark = pytest.mark.slow

BUDGET = 2.0
#: Time on top of the budget: sending the document, a busy machine.
MARGIN = 3.0

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NAMES = st.sampled_from(["doc", "order", "a", "b", "p:x", "xsi:nil", "id", "customer", "items"])
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


@st.composite
def xml_trees(draw: Any, depth: int = 0) -> str:
    name = draw(NAMES)
    attrs = draw(st.lists(st.tuples(NAMES, TEXT), max_size=4 if depth else 40))
    attr_text = "".join(f' {k}{i}="{_escape(v)}"' for i, (k, v) in enumerate(attrs))
    if depth > 5 or draw(st.booleans()):
        return f"<{name}{attr_text}>{_escape(draw(TEXT))}</{name}>"
    children = draw(st.lists(xml_trees(depth + 1), max_size=4))
    return f"<{name}{attr_text}>{''.join(children)}</{name}>"


@st.composite
def xml_documents(draw: Any) -> bytes:
    body = draw(xml_trees())
    prolog = draw(
        st.sampled_from(
            [
                "",
                '<?xml version="1.0" encoding="UTF-8"?>\n',
                '<?xml version="1.0"?><!DOCTYPE doc [<!ENTITY e "x">]>',
                "<!-- c -->",
            ]
        )
    )
    doc = (prolog + body).encode()
    if draw(st.booleans()):  # a corrupted copy: cut, or bytes spliced in
        cut = draw(st.integers(0, len(doc)))
        doc = doc[:cut] + draw(st.binary(max_size=8)) + doc[cut:]
    return doc


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=30,
)


@st.composite
def json_documents(draw: Any) -> bytes:
    root = draw(st.sampled_from(["doc", "order", "@id", ""]))
    doc = json.dumps({root: draw(JSON_VALUES)}).encode()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(doc)))
        doc = doc[:cut] + draw(st.binary(max_size=8)) + doc[cut:]
    return doc


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, DocumentWorker, Any]]:
    config_file = Path(tmp_path_factory.mktemp("fuzz")) / "proxy.yaml"
    orders = schemaless_route(
        "b", name="orders", prefix="orders/", mapping={"schema": str(SCHEMA), "root": "order"}
    )
    config_file.write_text(
        yaml.safe_dump(
            {
                "app_version": "v2",
                "routes": [schemaless_route("b"), orders],
                "limits": {"translate_timeout": BUDGET},
            }
        )
    )
    cfg = load_config(str(config_file), environ={})
    loop = asyncio.new_event_loop()
    worker = DocumentWorker(NullObserver(), cfg)
    assert worker.pool is not None
    loop.run_until_complete(worker.pool.start())
    yield loop, worker, cfg.routes
    worker.close()
    loop.close()


def check(engine: tuple[Any, DocumentWorker, Any], data: bytes, source: str) -> None:
    loop, worker, routes = engine
    target = "json" if source == "xml" else "xml"
    for route in routes:
        loop.run_until_complete(worker.pool.start())  # the budget runs once a worker has it
        for write in (False, True):
            started = time.monotonic()
            try:
                if write:
                    loop.run_until_complete(
                        worker.prepare_write(
                            route, data, writer=source, store=target, digests=ClientDigests()
                        )
                    )
                else:
                    loop.run_until_complete(worker.render(route, data, source, target))
            except TranslationError as err:
                assert err.reason in TRANSLATION_REASONS
            took = time.monotonic() - started
            assert took < BUDGET + MARGIN, (route.name, source, took, data[:200])


@FUZZ
@given(data=xml_documents())
def test_every_xml_document_ends_in_a_result_or_a_reason(engine: Any, data: bytes) -> None:
    check(engine, data, "xml")


@FUZZ
@given(data=json_documents())
def test_every_json_document_ends_in_a_result_or_a_reason(engine: Any, data: bytes) -> None:
    check(engine, data, "json")


@FUZZ
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_end_in_a_result_or_a_reason(engine: Any, data: bytes) -> None:
    check(engine, data, "xml")
    check(engine, data, "json")
