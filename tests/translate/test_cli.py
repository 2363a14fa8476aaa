"""``format-proxy translate`` and ``format-proxy check``, run as the real console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.translate.helpers import DATA, REPO, canonical, corpus_pairs, exact

EXE = str(Path(sys.executable).parent / "format-proxy")
EXAMPLE = REPO / "config" / "examples" / "orders.yaml"
SCHEMA = REPO / "config" / "examples" / "schemas" / "order.schema.json"


def run(
    *args: str, stdin: bytes | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [EXE, *args], input=stdin, capture_output=True, cwd=cwd, timeout=60, check=False
    )


def write_config(tmp_path: Path, routes: str, *, app_version: str | None = "v2") -> Path:
    head = f"app_version: {app_version}\n" if app_version else ""
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text(head + "upstream: {endpoint: embedded}\nroutes:\n" + routes, encoding="utf-8")
    return cfg


def route(name: str, mapping: str, prefix: str = "orders/") -> str:
    return (
        f"  - name: {name}\n    bucket: shop-data\n    prefix: {prefix}\n"
        f"    formats: {{v1: xml, v2: json}}\n    store: xml\n    mapping: {mapping}\n"
    )


# --- translate -----------------------------------------------------------------------------


def test_translate_file_to_json() -> None:
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "json",
            str(DATA / "orders" / "full.xml"))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    assert exact(p.stdout) == exact((DATA / "orders" / "full.json").read_bytes())


def test_translate_stdin_to_xml() -> None:
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "xml",
            stdin=(DATA / "orders" / "full.json").read_bytes())  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert canonical(p.stdout) == canonical((DATA / "orders" / "full.xml").read_bytes())


def test_translate_failure_exit_1_with_reason_and_location() -> None:
    bad = (DATA / "orders" / "minimal.xml").read_bytes().replace(b'id="1"', b'id="one"')
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "json", stdin=bad)
    assert p.returncode == 1
    assert p.stdout == b""
    err = p.stderr.decode()
    assert "reason:   type_mismatch" in err
    assert "location: /order/customer/@id" in err
    assert "'one' is not an integer" in err


def test_translate_json_failure_has_a_pointer() -> None:
    bad = (DATA / "orders" / "minimal.json").read_bytes().replace(b'"DKK"', b'"kroner"')
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "xml", stdin=bad)
    assert p.returncode == 1
    assert "schema_violation" in p.stderr.decode()
    assert "location: /total/currency" in p.stderr.decode()


def test_translate_input_already_in_target_format() -> None:
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "json",
            str(DATA / "orders" / "full.json"))  # fmt: skip
    assert p.returncode == 1
    assert b"already JSON" in p.stderr


def test_translate_undetectable_input() -> None:
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "json",
            stdin=b"hello")  # fmt: skip
    assert p.returncode == 1
    assert b"undetectable_format" in p.stderr


def test_translate_unknown_route_is_a_usage_error() -> None:
    p = run("translate", "--config", str(EXAMPLE), "--route", "invoices", "--to", "json",
            stdin=b"<x/>")  # fmt: skip
    assert p.returncode == 2
    assert b"no route named 'invoices'" in p.stderr and b"orders" in p.stderr


def test_translate_missing_file_is_a_usage_error() -> None:
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "json", "/nope.xml")
    assert p.returncode == 2
    assert b"cannot read '/nope.xml'" in p.stderr
    assert b"configuration error" not in p.stderr  # the config is fine; the argument is not


def test_translate_output_ends_with_a_newline() -> None:
    for to, sample in (("json", "minimal.xml"), ("xml", "minimal.json")):
        p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", to,
                str(DATA / "orders" / sample))  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert p.stdout.endswith(b"\n") and not p.stdout.endswith(b"\n\n"), p.stdout


def test_translate_exit_statuses_are_the_documented_ones() -> None:
    """README, ``translate --help`` and the behaviour agree: 1 = the document failed to
    translate, 2 = usage or configuration (unknown route, unreadable FILE, invalid config)."""
    helptext = " ".join(run("translate", "--help").stdout.decode().split())
    assert "Exit 1 with the reason and location on stderr if it cannot be translated" in helptext
    assert "exit 2 for usage or configuration errors (unknown route, unreadable FILE" in helptext
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "exit 1 if the document cannot be translated (reason and location on stderr)" in readme
    assert "2 on usage or configuration errors (unknown route, unreadable FILE" in readme


def test_document_root_is_spelled_the_same_by_translate_and_check(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"id": "DK-1"')
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "xml",
            str(broken))  # fmt: skip
    assert p.returncode == 1
    assert "location: / (the document root)" in p.stderr.decode()
    p = run("check", "--config", str(EXAMPLE), str(broken))
    assert p.returncode == 1
    assert "not_well_formed at / (the document root):" in p.stdout.decode()


def test_translate_bad_arguments() -> None:
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "yaml")
    assert p.returncode == 2
    assert b"invalid choice" in p.stderr


def test_mapping_error_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text(
        '{"type":"object","xml":{"name":"o"},"properties":'
        '{"items":{"type":"array","xml":{"wraped":true},"items":{"type":"string"}}}}'
    )
    cfg = write_config(tmp_path, route("orders", f"{{schema: {schema}}}"))
    p = run("translate", "--config", str(cfg), "--route", "orders", "--to", "json", stdin=b"<o/>")
    assert p.returncode == 2
    err = p.stderr.decode()
    assert "configuration error: routes[0].mapping.schema#/properties/items/xml:" in err
    assert "unknown keyword 'wraped'" in err and "did you mean 'wrapped'" in err


def test_translate_works_without_a_declared_version(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path, route("orders", f"{{schema: {SCHEMA}, root: order}}"), app_version=None
    )
    p = run("translate", "--config", str(cfg), "--route", "orders", "--to", "json",
            str(DATA / "orders" / "minimal.xml"))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert exact(p.stdout) == exact((DATA / "orders" / "minimal.json").read_bytes())


# --- check ---------------------------------------------------------------------------------


def test_check_samples_one_line_each() -> None:
    samples = [
        DATA / "orders" / n for n in ("full.xml", "minimal.xml", "full.json", "coupons.json")
    ]
    p = run("check", "--config", str(EXAMPLE), *map(str, samples))
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout.decode().splitlines()
    assert out[0].startswith("route orders: mapping compiled (schema schemas/order.schema.json")
    lines = [line for line in out if line.startswith(("OK", "FAIL"))]
    assert len(lines) == 4
    assert all(line.startswith("OK ") for line in lines)
    assert "(xml, route orders)" in lines[0] and "(json, route orders)" in lines[2]
    assert out[-1] == "4 of 4 sample(s) OK"


def test_check_without_samples_compiles_and_warns() -> None:
    p = run("check", "--config", str(EXAMPLE))
    assert p.returncode == 0
    assert b"route orders: warning: /coupons: optional unwrapped array" in p.stdout


def test_check_with_nothing_to_check_fails(tmp_path: Path) -> None:
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("upstream: {endpoint: embedded}\nroutes: []\n", encoding="utf-8")
    p = run("check", "--config", str(cfg))
    assert p.returncode == 1
    assert p.stdout == b""
    assert b"nothing to check: the config is valid but has no routes" in p.stderr


def test_check_unknown_route_in_a_sample_names_the_known_routes() -> None:
    p = run("check", "--config", str(EXAMPLE), f"nope={DATA / 'orders' / 'full.xml'}")
    assert p.returncode == 2
    err = p.stderr.decode()
    assert "no route named 'nope'" in err and "(routes: orders)" in err
    assert "cannot read" not in err + p.stdout.decode()
    p = run("check", "--config", str(EXAMPLE), f"orders={DATA / 'orders' / 'full.xml'}")
    assert p.returncode == 0, p.stdout + p.stderr


def test_check_a_file_named_like_route_equals_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "v=2.xml").write_bytes((DATA / "orders" / "full.xml").read_bytes())
    p = run("check", "--config", str(EXAMPLE), "v=2.xml", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert b"OK    v=2.xml (xml, route orders)" in p.stdout


def test_check_failing_sample_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(
        (DATA / "orders" / "minimal.xml").read_bytes().replace(b"<items/>", b"<items/><bogus/>")
    )
    good = DATA / "orders" / "minimal.xml"
    p = run("check", "--config", str(EXAMPLE), str(good), str(bad))
    assert p.returncode == 1
    lines = p.stdout.decode().splitlines()
    assert any(line.startswith("OK") and "minimal.xml" in line for line in lines)
    fail = [line for line in lines if line.startswith("FAIL")]
    assert len(fail) == 1
    assert "bad.xml" in fail[0] and "unknown_element at /order/bogus" in fail[0]
    assert lines[-1] == "1 of 2 sample(s) OK"


def test_check_normalised_sample_ok_unless_strict() -> None:
    variant = str(DATA / "orders" / "variants" / "full.xml")
    p = run("check", "--config", str(EXAMPLE), variant)
    assert p.returncode == 0
    assert b"normalised: same data, spelled differently" in p.stdout
    p = run("check", "--config", str(EXAMPLE), "--strict", variant)
    assert p.returncode == 1
    assert b"FAIL" in p.stdout


def test_check_undetectable_and_unreadable_samples(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"hello")
    p = run("check", "--config", str(EXAMPLE), str(junk), str(tmp_path / "missing.xml"))
    assert p.returncode == 1
    out = p.stdout.decode()
    assert "undetectable_format" in out and "cannot read" in out


def test_check_mapping_error_exit_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, route("orders", "{schema: missing.json}"))
    p = run("check", "--config", str(cfg))
    assert p.returncode == 2
    assert b"routes[0].mapping.schema" in p.stderr and b"cannot read schema" in p.stderr


def test_check_schemaless_route_warns(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, route("inventory", "{root: inventory}"))
    sample = tmp_path / "inv.xml"
    sample.write_bytes(b"<inventory><bin>1</bin><bin>2</bin></inventory>")
    p = run("check", "--config", str(cfg), str(sample))
    assert p.returncode == 0, p.stdout
    out = p.stdout.decode()
    assert "no schema: arrays and scalar types are only as good as each document shows" in out
    assert "OK    " in out


def test_check_several_routes(tmp_path: Path) -> None:
    routes = route("orders", f"{{schema: {SCHEMA}, root: order}}") + route(
        "inventory", "{root: inventory}", prefix="inv/"
    )
    cfg = write_config(tmp_path, routes)
    sample = DATA / "orders" / "minimal.xml"
    p = run("check", "--config", str(cfg), str(sample))
    assert p.returncode == 2
    assert b"give --route NAME or write the sample as NAME=PATH" in p.stderr
    p = run("check", "--config", str(cfg), f"orders={sample}")
    assert p.returncode == 0, p.stdout
    p = run("check", "--config", str(cfg), "--route", "inventory", str(sample))
    assert p.returncode == 1  # the order is not an inventory document
    assert b"wrong_root at /Q{urn:example:shop:orders:1}order" in p.stdout


@pytest.mark.parametrize("name", ["rss", "s3-listing", "maven-pom", "schemaless"])
def test_check_corpus(tmp_path: Path, name: str) -> None:
    mapping = yaml.safe_load((DATA / name / "mapping.yaml").read_text(encoding="utf-8"))
    if "schema" in mapping:
        mapping["schema"] = str(DATA / name / mapping["schema"])
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "app_version": "v2",
                "upstream": {"endpoint": "embedded"},
                "routes": [
                    {
                        "name": name,
                        "bucket": "b",
                        "formats": {"v1": "xml", "v2": "json"},
                        "store": "xml",
                        "mapping": mapping,
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    samples = [str(x) for _, x in corpus_pairs() if x.parent.name == name]
    samples += [s.removesuffix(".xml") + ".json" for s in samples]
    p = run("check", "--config", str(cfg), *samples)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.decode().splitlines()[-1] == f"{len(samples)} of {len(samples)} sample(s) OK"
