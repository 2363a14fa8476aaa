"""Compiling mappings: schema constructs, inline options, and the config errors that name the
exact path of the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxy.errors import MappingError, TranslationError
from proxy.translate import compile_mapping
from tests.translate.helpers import canonical, exact, same_json


def compile_schema(tmp_path: Path, schema: Any, **options: Any) -> Any:
    (tmp_path / "s.json").write_text(json.dumps(schema), encoding="utf-8")
    return compile_mapping(
        {"schema": "s.json", **options}, base_dir=tmp_path, key_path="routes[0].mapping"
    )


def mapping_error(tmp_path: Path, schema: Any, **options: Any) -> MappingError:
    with pytest.raises(MappingError) as info:
        compile_schema(tmp_path, schema, **options)
    return info.value


def obj(props: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "xml": {"name": "r"},
        "additionalProperties": False,
        "properties": props,
        **kw,
    }


# --- errors with paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "options", "key_path", "problem"),
    [
        (
            obj({"items": {"type": "array", "xml": {"wraped": True}, "items": {"type": "string"}}}),
            {},
            "routes[0].mapping.schema#/properties/items/xml",
            "unknown keyword 'wraped' (did you mean 'wrapped'?)",
        ),
        (
            obj({"a": {"type": "string", "maxLenght": 3}}),
            {},
            "routes[0].mapping.schema#/properties/a",
            "unknown keyword 'maxLenght' (did you mean 'maxLength'?)",
        ),
        (
            obj({"a": {"$ref": "#/$defs/nope"}}),
            {},
            "routes[0].mapping.schema#/properties/a/$ref",
            "$ref '#/$defs/nope' does not resolve",
        ),
        (
            obj({"a": {"$ref": "other.json"}}),
            {},
            "routes[0].mapping.schema#/properties/a/$ref",
            "$ref 'other.json' does not resolve",
        ),
        (
            obj({"a": {"prefixItems": [{"type": "string"}]}}),
            {},
            "routes[0].mapping.schema#/properties/a/prefixItems",
            "unsupported construct: tuple arrays",
        ),
        (
            obj({"a": {"anyOf": [{"type": "string"}, {"type": "object"}]}}),
            {},
            "routes[0].mapping.schema#/properties/a/anyOf",
            "unsupported construct: anyOf with 2 alternatives of different shapes",
        ),
        (
            obj({"a": {"type": ["string", "integer"]}}),
            {},
            "routes[0].mapping.schema#/properties/a/type",
            "ambiguous type union",
        ),
        (
            obj({"a": {"type": "object", "xml": {"attribute": True}}}),
            {},
            "routes[0].mapping.schema#/properties/a/xml",
            "property 'a' is an attribute but not a scalar schema",
        ),
        (
            obj({"a": {"type": ["string", "null"], "xml": {"attribute": True}}}),
            {},
            "routes[0].mapping.schema#/properties/a/xml",
            "cannot be null",
        ),
        (
            obj({"t": {"type": "string", "xml": {"nodeType": "text"}}, "e": {"type": "string"}}),
            {},
            "routes[0].mapping.schema#",
            "that is mixed content",
        ),
        (
            obj({"a": {"type": "string"}, "b": {"type": "string", "xml": {"name": "a"}}}),
            {},
            "routes[0].mapping.schema#",
            "properties 'a' and 'b' are both element 'a'",
        ),
        (
            obj({"a": {"type": "string", "xml": {"namespace": "urn:x"}}}),
            {},
            "routes[0].mapping.schema#/properties/a/xml",
            "namespace 'urn:x' has no prefix",
        ),
        (
            obj(
                {
                    "a": {"type": "string", "xml": {"namespace": "urn:x", "prefix": "p"}},
                    "b": {"type": "string", "xml": {"namespace": "urn:y", "prefix": "p"}},
                }
            ),
            {},
            "routes[0].mapping.schema#/properties/b/xml",
            "prefix 'p' is already bound to 'urn:x'",
        ),
        (
            obj({"a": {"type": "string", "xml": {"name": "1x"}}}),
            {},
            "routes[0].mapping.schema#/properties/a/xml/name",
            "not an XML name: '1x'",
        ),
        (
            obj({"a": {"type": "array", "items": {"type": "string"}, "nullable": True}}),
            {},
            "routes[0].mapping.schema#/properties/a",
            "cannot be null",
        ),
        (
            obj({"a": {"type": "string"}}, required=["b"]),
            {},
            "routes[0].mapping.schema#/required",
            "required property 'b' is not declared",
        ),
        (
            {"type": "object", "properties": {}},
            {},
            "routes[0].mapping.root",
            "no root element name",
        ),
        (
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "xml": {"name": "r"},
            },
            {},
            "routes[0].mapping.schema#/$schema",
            "unsupported dialect",
        ),
        (
            obj(
                {"a": {"$ref": "#/$defs/b"}},
                **{"$defs": {"b": {"$ref": "#/$defs/c"}, "c": {"$ref": "#/$defs/b"}}},
            ),
            {},
            "routes[0].mapping.schema#/$defs/b",
            "$ref cycle",
        ),
        (obj({"a": {"type": "string"}}), {"bogus": 1}, "routes[0].mapping.bogus", "unknown key"),
        (
            obj({"a": {"type": "string"}}),
            {"types": {"/a": "integer"}},
            "routes[0].mapping.types./a",
            "the schema already types this property",
        ),
        (
            obj({"a": {"type": "string"}}),
            {"xml": {"/b": {"attribute": True}}},
            "routes[0].mapping.xml./b",
            "no such property in the schema",
        ),
        (
            obj({"a": {"type": "string"}}),
            {"xml": {"/a": {"nodeType": "comment"}}},
            "routes[0].mapping.xml./a/nodeType",
            "must be one of",
        ),
        (
            obj({"a": {"type": "string"}}),
            {"arrays": ["a"]},
            "routes[0].mapping.arrays[0]",
            "not a path",
        ),
        (
            obj({"a": {"type": "string"}}),
            {"comments": "keep"},
            "routes[0].mapping.comments",
            "must be 'reject' or 'drop'",
        ),
        (
            obj({"a": {"type": "string"}}),
            {"namespaces": {"xmlfoo": "urn:x"}},
            "routes[0].mapping.namespaces.xmlfoo",
            "reserved",
        ),
        (
            obj({"a": {"type": "string"}}),
            {"text_key": "value"},
            "routes[0].mapping.text_key",
            "must not be a possible element name",
        ),
        (
            obj({"a": {"type": "string"}}),
            {"root": "p:r"},
            "routes[0].mapping.root",
            "prefix 'p' is not in mapping.namespaces",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("routes") else None,
)
def test_mapping_errors_name_the_path(
    tmp_path: Path, schema: Any, options: dict[str, Any], key_path: str, problem: str
) -> None:
    err = mapping_error(tmp_path, schema, **options)
    assert err.key_path == key_path
    assert problem in err.problem
    assert str(err).startswith(key_path + ": ")


def test_missing_schema_file(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as info:
        compile_mapping({"schema": "nope.json"}, base_dir=tmp_path, key_path="routes[1].mapping")
    assert info.value.key_path == "routes[1].mapping.schema"
    assert "cannot read schema" in info.value.problem


def test_schema_not_json(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(MappingError) as info:
        compile_mapping({"schema": "s.json"}, base_dir=tmp_path, key_path="m")
    assert "is not valid JSON/YAML" in info.value.problem


def test_load_config_reports_mapping_errors(tmp_path: Path) -> None:
    from proxy.config import load_config
    from proxy.datapath.routes import compile_routes
    from proxy.errors import ConfigError

    (tmp_path / "s.json").write_text(
        json.dumps(obj({"a": {"type": "string", "xml": {"atribute": True}}}))
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "app_version: v1\nroutes:\n  - {name: r, bucket: b, formats: {v1: xml}, store: xml,"
        " mapping: {schema: s.json}}\n"
    )
    config = load_config(cfg)  # validation alone does not compile the mapping
    with pytest.raises(ConfigError) as info:
        compile_routes(config)
    assert info.value.key_path == "routes[0].mapping.schema#/properties/a/xml"


# --- constructs that compile and translate --------------------------------------------------


def roundtrip(m: Any, xml: bytes, json_text: str) -> None:
    out = m.xml_to_json(xml)
    assert exact(out) == exact(json_text), out
    back = m.json_to_xml(out)
    assert canonical(back) == canonical(xml)
    assert same_json(m.xml_to_json(m.json_to_xml(json_text.encode())), json_text)


def test_refs_across_files_and_ids(tmp_path: Path) -> None:
    (tmp_path / "money.json").write_text(
        json.dumps(
            {
                "$id": "https://example.com/schemas/money.json",
                "type": "object",
                "required": ["amount"],
                "properties": {
                    "cur": {"type": "string", "xml": {"attribute": True}},
                    "amount": {"type": "number", "xml": {"nodeType": "text"}},
                },
            }
        )
    )
    schema = {
        "$id": "https://example.com/schemas/root.json",
        **obj({"price": {"$ref": "money.json"}, "local": {"$ref": "#/$defs/x"}}),
        "$defs": {"x": {"type": "integer"}},
    }
    m = compile_schema(tmp_path, schema)
    roundtrip(
        m,
        b'<r><price cur="EUR">0.10</price><local>7</local></r>',
        '{"price":{"cur":"EUR","amount":0.10},"local":7}',
    )


def test_recursive_schema(tmp_path: Path) -> None:
    schema = {
        "xml": {"name": "node"},
        "$ref": "#/$defs/node",
        "$defs": {
            "node": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "xml": {"attribute": True}},
                    "children": {
                        "type": "array",
                        "xml": {"wrapped": True},
                        "items": {"$ref": "#/$defs/node", "xml": {"name": "node"}},
                    },
                },
            }
        },
    }
    m = compile_schema(tmp_path, schema)
    roundtrip(
        m,
        b'<node name="a"><children><node name="b"><children><node name="c"/></children></node>'
        b"<node/></children></node>",
        '{"name":"a","children":[{"name":"b","children":[{"name":"c"}]},{}]}',
    )


def test_nullable_forms_and_allof(tmp_path: Path) -> None:
    schema = obj(
        {
            "a": {"anyOf": [{"$ref": "#/$defs/s"}, {"type": "null"}]},
            "b": {"oneOf": [{"type": "null"}, {"type": "integer"}]},
            "c": {"type": "string", "nullable": True},
            "d": {"allOf": [{"$ref": "#/$defs/s"}], "maxLength": 3},
            "e": {"enum": ["x", "y", None]},
        },
        **{"$defs": {"s": {"type": "string", "minLength": 1}}},
    )
    m = compile_schema(tmp_path, schema)
    x = (
        b'<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><a xsi:nil="true"/>'
        b'<b xsi:nil="true"/><c xsi:nil="true"/><d>abc</d><e xsi:nil="true"/></r>'
    )
    roundtrip(m, x, '{"a":null,"b":null,"c":null,"d":"abc","e":null}')
    with pytest.raises(TranslationError) as info:
        m.xml_to_json(b"<r><d>abcd</d></r>")  # allOf branch and local maxLength both apply
    assert info.value.reason == "schema_violation"
    with pytest.raises(TranslationError) as info:
        m.xml_to_json(b"<r><a></a></r>")  # minLength from the $ref target
    assert info.value.reason == "schema_violation"


def test_wrapped_unwrapped_and_nodetype_arrays(tmp_path: Path) -> None:
    schema = obj(
        {
            "plain": {"type": "array", "items": {"type": "string"}},
            "named": {"type": "array", "items": {"type": "integer", "xml": {"name": "n"}}},
            "wrapped": {"type": "array", "xml": {"wrapped": True}, "items": {"type": "boolean"}},
            "element": {
                "type": "array",
                "xml": {"nodeType": "element", "name": "list"},
                "items": {"type": "string", "xml": {"name": "entry"}},
            },
            "none": {"type": "array", "xml": {"nodeType": "none"}, "items": {"type": "string"}},
            "matrix": {
                "type": "array",
                "xml": {"wrapped": True},
                "items": {
                    "type": "array",
                    "xml": {"name": "row"},
                    "items": {"type": "number", "xml": {"name": "v"}},
                },
            },
        },
        required=["plain"],
    )
    m = compile_schema(tmp_path, schema)
    x = (
        b"<r><n>1</n><n>2</n><wrapped><wrapped>true</wrapped></wrapped>"
        b"<list><entry>a</entry></list><none>z</none>"
        b"<matrix><row><v>1.5</v><v>2</v></row><row/></matrix></r>"
    )
    roundtrip(
        m,
        x,
        '{"plain":[],"named":[1,2],"wrapped":[true],"element":["a"],"none":["z"],"matrix":[[1.5,2],[]]}',
    )


def test_cdata_node_type_and_text_next_to_attributes(tmp_path: Path) -> None:
    schema = obj(
        {
            "doc": {
                "type": "object",
                "properties": {
                    "lang": {"type": "string", "xml": {"attribute": True}},
                    "html": {"type": "string", "xml": {"nodeType": "cdata"}},
                },
            }
        }
    )
    m = compile_schema(tmp_path, schema)
    out = m.json_to_xml(b'{"doc":{"lang":"en","html":"<p>a]]>b</p>\\r"}}')
    assert b'<doc lang="en"><![CDATA[<p>a]]]]><![CDATA[>b</p>]]>&#13;</doc>' in out
    assert exact(m.xml_to_json(out)) == exact('{"doc":{"lang":"en","html":"<p>a]]>b</p>\\r"}}')


def test_additional_properties_schema_is_a_map(tmp_path: Path) -> None:
    schema = obj(
        {
            "id": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
        }
    )
    m = compile_schema(tmp_path, schema)
    roundtrip(
        m,
        b"<r><id>x</id><labels><a>1</a><b.c>2</b.c></labels></r>",
        '{"id":"x","labels":{"a":1,"b.c":2}}',
    )
    with pytest.raises(TranslationError) as info:
        m.xml_to_json(b"<r><labels><a>1</a><a>2</a></labels></r>")
    assert (info.value.reason, info.value.location) == ("duplicate_element", "/r/labels/a[2]")


def test_inline_options_in_schema_mode(tmp_path: Path) -> None:
    """The JSON app's schema knows nothing of XML; the options give it its XML shape."""
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                },
            },
            "price": {
                "type": "object",
                "properties": {"cur": {"type": "string"}, "v": {"type": "number"}},
            },
        },
    }
    m = compile_schema(
        tmp_path,
        schema,
        root="o:order",
        namespaces={"o": "urn:o"},
        attributes=["/id", "/lines/sku"],
        xml={
            "/lines": {"wrapped": True},
            "/lines/[]": {"name": "line"},
            "/price/cur": {"attribute": True},
            "/price/v": {"nodeType": "text"},
        },
    )
    roundtrip(
        m,
        b'<o:order xmlns:o="urn:o" id="1"><o:lines><o:line sku="A"><o:qty>2</o:qty></o:line>'
        b"</o:lines>"
        b'<o:price cur="EUR">9.50</o:price></o:order>',
        '{"id":"1","lines":[{"sku":"A","qty":2}],"price":{"cur":"EUR","v":9.50}}',
    )


def test_schemaless_defaults_without_options(tmp_path: Path) -> None:
    m = compile_mapping({}, base_dir=tmp_path)
    assert any("no schema" in w for w in m.warnings)
    x = b'<a x="1"><b>t</b><b>u</b><c/><d y="2">txt</d></a>'
    j = '{"a":{"@x":"1","b":["t","u"],"c":"","d":{"@y":"2","#text":"txt"}}}'
    roundtrip(m, x, j)


def test_schemaless_custom_keys(tmp_path: Path) -> None:
    m = compile_mapping({"root": "a", "text_key": "$t", "attribute_prefix": "-"}, base_dir=tmp_path)
    roundtrip(m, b'<a x="1"><d y="2">txt</d></a>', '{"-x":"1","d":{"-y":"2","$t":"txt"}}')


def test_comments_and_pis_dropped_when_allowed(tmp_path: Path) -> None:
    strict = compile_mapping({"root": "a"}, base_dir=tmp_path)
    lax = compile_mapping(
        {"root": "a", "comments": "drop", "processing_instructions": "drop"}, base_dir=tmp_path
    )
    x = (
        b"<?xml version='1.0'?><!-- head --><a><!-- c --><b>x<!-- in -->y</b><?pi data?></a>"
        b"<!-- tail -->"
    )
    with pytest.raises(TranslationError) as info:
        strict.xml_to_json(x)
    assert info.value.reason == "comment_forbidden"
    assert exact(lax.xml_to_json(x)) == exact('{"b":"xy"}')


def test_safe_integers_option(tmp_path: Path) -> None:
    schema = obj({"n": {"type": "integer"}, "f": {"type": "number"}})
    m = compile_schema(tmp_path, schema, safe_integers=True)
    assert exact(m.xml_to_json(b"<r><n>9007199254740991</n><f>1e400</f></r>")) == exact(
        '{"n":9007199254740991,"f":1e400}'
    )
    with pytest.raises(TranslationError) as info:
        m.xml_to_json(b"<r><f>9007199254740992</f></r>")
    assert info.value.reason == "number_out_of_range"


def test_extra_keywords_and_vendor_extensions(tmp_path: Path) -> None:
    schema = obj({"a": {"type": "string", "javaType": "String", "x-note": 1}})
    with pytest.raises(MappingError):
        compile_schema(tmp_path, schema)
    compile_schema(tmp_path, schema, extra_keywords=["javaType"])


def test_fallback_keywords_use_jsonschema(tmp_path: Path) -> None:
    schema = obj({"a": {"type": "string", "not": {"const": "forbidden"}}, "b": {"type": "integer"}})
    m = compile_schema(tmp_path, schema)
    assert m.fallback and any("jsonschema" in w for w in m.warnings)
    assert exact(m.xml_to_json(b"<r><a>ok</a></r>")) == exact('{"a":"ok"}')
    with pytest.raises(TranslationError) as info:
        m.xml_to_json(b"<r><a>forbidden</a></r>")
    assert (info.value.reason, info.value.location) == ("schema_violation", "/a")
    with pytest.raises(TranslationError) as info:
        m.json_to_xml(b'{"a":"forbidden"}')
    assert (info.value.reason, info.value.location) == ("schema_violation", "/a")


def test_yaml_schema_file(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "type: object\nxml: {name: r}\nproperties:\n  a: {type: integer}\n"
    )
    m = compile_mapping({"schema": "s.yaml"}, base_dir=tmp_path)
    assert exact(m.xml_to_json(b"<r><a>1</a></r>")) == exact('{"a":1}')


def test_nodetype_none_object_is_flattened(tmp_path: Path) -> None:
    schema = obj(
        {
            "id": {"type": "string", "xml": {"attribute": True}},
            "dims": {
                "type": "object",
                "xml": {"nodeType": "none"},
                "required": ["w"],
                "properties": {
                    "unit": {"type": "string", "xml": {"attribute": True}},
                    "w": {"type": "number"},
                    "h": {"type": "number"},
                },
            },
            "after": {"type": "string"},
        }
    )
    m = compile_schema(tmp_path, schema)
    assert any("nodeType none" in w for w in m.warnings)
    roundtrip(
        m,
        b'<r id="1" unit="cm"><w>2.0</w><h>3</h><after>x</after></r>',
        '{"id":"1","after":"x","dims":{"unit":"cm","w":2.0,"h":3}}',
    )
    roundtrip(m, b"<r><after>x</after></r>", '{"after":"x"}')
    with pytest.raises(TranslationError) as info:
        m.xml_to_json(b'<r unit="cm"/>')  # a member without the group's required one
    assert (info.value.reason, info.value.location) == ("missing_element", "/r")
    with pytest.raises(TranslationError) as info:
        m.xml_to_json(b"<r><after>x</after><w>1</w></r>")  # the group's place is before 'after'
    assert (info.value.reason, info.value.location) == ("out_of_order", "/r/w")
    for bad, where in (
        (b'{"dims":{"h":1}}', "/dims"),
        (b'{"dims":{"w":1,"z":1}}', "/dims/z"),
        (b'{"dims":null}', "/dims"),
        (b'{"dims":{"w":"wide"}}', "/dims/w"),
    ):
        with pytest.raises(TranslationError) as info:
            m.json_to_xml(bad)
        assert info.value.location == where, bad


@pytest.mark.parametrize(
    ("group", "problem"),
    [
        ({"type": ["object", "null"], "properties": {"a": {"type": "string"}}}, "cannot be null"),
        ({"type": "string"}, "only arrays and objects"),
        (
            {
                "type": "object",
                "properties": {"t": {"type": "string", "xml": {"nodeType": "text"}}},
            },
            "plain elements and attributes",
        ),
    ],
)
def test_nodetype_none_errors(tmp_path: Path, group: dict[str, Any], problem: str) -> None:
    group = {**group, "xml": {"nodeType": "none"}}
    err = mapping_error(tmp_path, obj({"g": group}))
    assert problem in err.problem
    assert err.key_path == "routes[0].mapping.schema#/properties/g/xml"
