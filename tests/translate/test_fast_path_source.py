"""The generated fast paths are visible: their source is in linecache under a pseudo-filename,
so ``inspect.getsource`` and tracebacks show it, and ``--dump-fast-path`` prints it."""

from __future__ import annotations

import inspect
import traceback

from tests.translate.helpers import load_mapping
from tests.translate.test_cli import EXAMPLE, run


def test_getsource_of_a_generated_function_names_its_schema_location() -> None:
    m = load_mapping("orders")
    fast = m._reader.fast
    assert fast is not None and fast.root is not None
    source = inspect.getsource(fast.root)
    assert source.startswith(f"def {fast.root.__name__}(elem, depth, out):")
    assert "# schema: " in source
    assert fast.filename.startswith("<format-proxy fast path ")
    assert fast.filename.endswith("/xml_to_json>")
    writer_fast = m._writer.fast
    assert writer_fast is not None and writer_fast.root is not None
    assert "def " in inspect.getsource(writer_fast.root)
    assert writer_fast.filename.endswith("/json_to_xml>")


def test_a_traceback_through_generated_code_shows_its_lines() -> None:
    m = load_mapping("orders")
    fast = m._reader.fast
    assert fast is not None and fast.root is not None
    try:
        fast.root(None, 1, [])  # not an element: fails inside the generated function
    except AttributeError:
        text = traceback.format_exc()
    else:  # pragma: no cover - the call above always raises
        raise AssertionError("expected an AttributeError")
    assert f'File "{fast.filename}"' in text
    assert "elem." in text  # the failing source line itself, not just a location


def test_dump_fast_path_prints_the_generated_code() -> None:
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--dump-fast-path")
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "def " in out
    assert "/xml_to_json>" in out and "/json_to_xml>" in out
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", "--to", "xml",
            "--dump-fast-path")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "/json_to_xml>" in p.stdout.decode() and "/xml_to_json>" not in p.stdout.decode()


def test_translate_without_to_is_a_usage_error() -> None:
    p = run("translate", "--config", str(EXAMPLE), "--route", "orders", stdin=b"<a/>")
    assert p.returncode == 2
    assert b"--to" in p.stderr
