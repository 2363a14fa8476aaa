"""Translation engine benchmark: format-proxy's engine against xmltodict, in one run.

For orders documents of ≈ 100 KB, ≈ 1 MB and ≈ 20 MB (XML size; valid against
``config/examples/schemas/order.schema.json``) it measures, in MB/s of XML:

* XML → JSON: ``mapping.xml_to_json(x)`` vs ``json.dumps(xmltodict.parse(x))``
* JSON → XML: ``mapping.json_to_xml(j)`` vs ``xmltodict.unparse(json.loads(j'))`` (``j'`` is
  xmltodict's own JSON of the same document, so each tool reads the JSON it writes)

and, for the 20 MB case, the peak RSS of each operation in a fresh process (``VmHWM``, reset
after the input is loaded),
also as a multiple of the XML document's size. The engine does everything it always does:
schema validation, exact numbers, namespaces, nil, every check; xmltodict does none of it.

Each run measures all four operations, alternating their order; figures are medians over
runs, ratios are the median of per-run ratios (engine MB/s ÷ xmltodict MB/s).

    .venv/bin/python bench/translate.py              # full run (about 3-5 minutes)
    .venv/bin/python bench/translate.py --quick      # smoke run
    .venv/bin/python bench/translate.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ORDERS_NS = "urn:example:shop:orders:1"
SHIP_NS = "urn:example:shop:shipping:1"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAPPING = {"schema": "schemas/order.schema.json", "root": "order"}
SIZES = {"100 KB": 100_000, "1 MB": 1_000_000, "20 MB": 20_000_000}

_WORDS = ["Widget", "Gadget", "Sprocket", "Flange", "Doohickey", "Gizmo", "Kettle", "Lamp"]
_ADJ = ["large", "small", "blue", "matte", "çafé", "naïve", "grün", "日本", "超"]


def orders_xml(target_bytes: int, seed: int = 7) -> bytes:
    """A realistic order of about ``target_bytes`` of XML: namespaces, attributes, nils,
    decimals (``0.10``), unicode and escapes, optional elements, one-item and empty lists."""
    rng = random.Random(seed)
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<order xmlns="{ORDERS_NS}" xmlns:ship="{SHIP_NS}" xmlns:xsi="{XSI}" '
        'id="SE-20240501" status="paid" priority="3">\n'
        "  <placedAt>2024-05-01T12:00:00Z</placedAt>\n"
        '  <customer id="42" vip="true">\n    <name>Zoë Ågård &amp; Co</name>\n'
        '    <email xsi:nil="true"/>\n    <phones>\n      <phone>+46 8 123 456</phone>\n'
        "    </phones>\n  </customer>\n"
        "  <ship:shipTo>\n    <ship:street>Storgatan 1</ship:street>\n"
        "    <ship:street>c/o Lund</ship:street>\n    <ship:city>Malmö</ship:city>\n"
        "    <ship:postalCode>211 34</ship:postalCode>\n    <ship:country>SE</ship:country>\n"
        '  </ship:shipTo>\n  <ship:billTo xsi:nil="true"/>\n  <items>\n'
    )
    tail = (
        "  </items>\n  <coupon>SPRING10</coupon>\n  <note></note>\n  <giftWrap>false</giftWrap>\n"
        '  <total currency="EUR">12345.60</total>\n'
        "  <loyaltyPoints>123456789012345678901234567890</loyaltyPoints>\n</order>\n"
    )
    parts = [head]
    size = len(head) + len(tail)
    line = 0
    while size < target_bytes:
        line += 1
        w, a = rng.choice(_WORDS), rng.choice(_ADJ)
        discount = (
            '<discount xsi:nil="true"/>'
            if line % 3 == 0
            else f"<discount>0.{rng.randrange(10, 99)}</discount>"
        )
        tags = "".join(f"<tag>t{k}</tag>" for k in range(line % 3))
        item = (
            f'    <item sku="SKU-{rng.randrange(100000):05d}" line="{line}">\n'
            f'      <description>{w} &lt;{a}&gt; &amp; "{w.lower()}" #{line}</description>\n'
            f"      <quantity>{rng.randrange(1, 20)}</quantity>\n"
            f'      <unitPrice currency="EUR">{rng.randrange(1000)}.{rng.randrange(100):02d}'
            "</unitPrice>\n"
            f"      {discount}\n"
            f"      <weightKg>{rng.randrange(1, 50)}.{rng.randrange(1000):03d}</weightKg>\n"
            f"      <tags>{tags}</tags>\n"
            f"      <backordered>{'true' if line % 5 == 0 else 'false'}</backordered>\n"
            "    </item>\n"
        )
        parts.append(item)
        size += len(item.encode())
    parts.append(tail)
    return "".join(parts).encode("utf-8")


def compile_orders() -> Any:
    from proxy.translate import compile_mapping

    return compile_mapping(MAPPING, base_dir=REPO / "config" / "examples", limits=None)


def _time(fn: Callable[[], Any], repeat: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def throughput(runs: int, sizes: dict[str, int]) -> dict[str, Any]:
    import xmltodict

    m = compile_orders()
    out: dict[str, Any] = {}
    for label, target in sizes.items():
        x = orders_xml(target)
        j = m.xml_to_json(x)
        xd_json = json.dumps(xmltodict.parse(x))
        assert m.xml_to_json(m.json_to_xml(j)) == j
        mb = len(x) / 1e6
        repeat = max(1, int(3_000_000 // len(x)))  # keep each timed slice ≥ ~0.1 s
        ops: dict[str, Callable[[], Any]] = {
            "engine xml→json": lambda x=x: m.xml_to_json(x),
            "xmltodict xml→json": lambda x=x: json.dumps(xmltodict.parse(x)),
            "engine json→xml": lambda j=j: m.json_to_xml(j),
            "xmltodict json→xml": lambda s=xd_json: xmltodict.unparse(json.loads(s)),
        }
        names = list(ops)
        rates: dict[str, list[float]] = {n: [] for n in names}
        for r in range(runs):
            order = names if r % 2 == 0 else names[::-1]
            for n in order:
                rates[n].append(mb / _time(ops[n], repeat))
        x2j = [
            a / b
            for a, b in zip(rates["engine xml→json"], rates["xmltodict xml→json"], strict=True)
        ]
        j2x = [
            a / b
            for a, b in zip(rates["engine json→xml"], rates["xmltodict json→xml"], strict=True)
        ]
        out[label] = {
            "xml_bytes": len(x),
            "json_bytes": len(j),
            "runs": runs,
            "repeat": repeat,
            "mb_per_s": {n: statistics.median(v) for n, v in rates.items()},
            "ratio_xml_to_json": statistics.median(x2j),
            "ratio_json_to_xml": statistics.median(j2x),
            "ratios_xml_to_json": x2j,
            "ratios_json_to_xml": j2x,
        }
        print(
            f"{label:>7}: xml→json {out[label]['mb_per_s']['engine xml→json']:6.1f} MB/s vs "
            f"xmltodict {out[label]['mb_per_s']['xmltodict xml→json']:5.1f} "
            f"(×{out[label]['ratio_xml_to_json']:.2f}); json→xml "
            f"{out[label]['mb_per_s']['engine json→xml']:6.1f} MB/s vs xmltodict "
            f"{out[label]['mb_per_s']['xmltodict json→xml']:5.1f} "
            f"(×{out[label]['ratio_json_to_xml']:.2f})",
            flush=True,
        )
    return out


# --- peak RSS, one fresh process per operation ---------------------------------------------


def _child(op: str, path: str) -> None:
    """Runs in a fresh interpreter: load the input, note RSS, translate once, report peak."""
    from tests.support.peakrss import reset_peak, status_kib

    data = Path(path).read_bytes()
    if op.startswith("engine"):
        m = compile_orders()
        fn = m.xml_to_json if op.endswith("xml→json") else m.json_to_xml
        # warm the code paths on a small document so the peak is the document's, not imports'
        small = orders_xml(20_000)
        (m.xml_to_json(small) if op.endswith("xml→json") else m.json_to_xml(m.xml_to_json(small)))
    else:
        import xmltodict

        def fn(d: bytes) -> Any:
            if op.endswith("xml→json"):
                return json.dumps(xmltodict.parse(d))
            return xmltodict.unparse(json.loads(d))

    reset_peak()
    base = status_kib("VmRSS") * 1024
    t0 = time.perf_counter()
    result = fn(data)
    seconds = time.perf_counter() - t0
    peak = status_kib("VmHWM") * 1024
    print(json.dumps({"base": base, "peak": peak, "seconds": seconds, "out": len(result)}))


def peak_rss(target: int) -> dict[str, Any]:
    import xmltodict

    m = compile_orders()
    x = orders_xml(target)
    j = m.xml_to_json(x)
    xd = json.dumps(xmltodict.parse(x)).encode()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        files = {"xml": Path(d) / "o.xml", "json": Path(d) / "o.json", "xd": Path(d) / "xd.json"}
        files["xml"].write_bytes(x)
        files["json"].write_bytes(j)
        files["xd"].write_bytes(xd)
        for op, f in (
            ("engine xml→json", files["xml"]),
            ("xmltodict xml→json", files["xml"]),
            ("engine json→xml", files["json"]),
            ("xmltodict json→xml", files["xd"]),
        ):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", op, str(f)],
                capture_output=True,
                check=True,
                cwd=REPO,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            r = json.loads(proc.stdout.decode().strip().splitlines()[-1])
            growth = r["peak"] - r["base"]
            results[op] = {
                "input_bytes": f.stat().st_size,
                "xml_bytes": len(x),
                "base_mib": r["base"] / 2**20,
                "peak_mib": r["peak"] / 2**20,
                "growth_mib": growth / 2**20,
                "growth_x_doc": growth / len(x),
                "seconds": r["seconds"],
            }
            print(
                f"  20 MB {op:<20} peak RSS {r['peak'] / 2**20:7.1f} MiB (process before: "
                f"{r['base'] / 2**20:6.1f} MiB incl. the {f.stat().st_size / 2**20:.1f} MiB input; "
                f"growth {growth / 2**20:6.1f} MiB = {growth / len(x):.2f}× the XML) in "
                f"{r['seconds']:.2f} s",
                flush=True,
            )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs (smoke)")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--child", nargs=2, metavar=("OP", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    runs = args.runs or (2 if args.quick else 7)
    load = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load[0]:.2f}")
    report: dict[str, Any] = {"load_start": load, "runs": runs}
    report["throughput"] = throughput(runs, SIZES)
    report["peak_rss_20mb"] = peak_rss(SIZES["20 MB"])
    report["load_end"] = os.getloadavg()
    print(f"load average at the end {report['load_end'][0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
