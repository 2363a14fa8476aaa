"""Scan and migrate benchmark: objects/s and CPU per object on SeaweedFS, against the old loop.

One SeaweedFS. Each run stores N XML orders of about 4 KiB (parallel PUTs, not timed), then:

* ``scan``    — ``format-proxy scan --concurrency 16`` over the N objects (HEAD each);
* ``migrate`` — ``format-proxy migrate --to json --concurrency 8`` over the same N objects;
* ``loop``    — the runbook's old ``aws s3 ls | awk | while read key; do aws s3 cp ... - | aws s3
  cp - ...; done`` through a v2 sidecar (``store: json``), on a copy of the first ``--loop-n``
  of the same documents in a second bucket (two aws-cli processes per object make the loop too
  slow for all N: its rate is measured on that sample).

Wall time and CPU (user + system of the process and its children: for the loop, every aws-cli
and the sidecar's share is not counted) per case; figures are medians over the runs.

    .venv/bin/python bench/migrate.py                # N = 10,000, 3 runs (about 15 minutes)
    .venv/bin/python bench/migrate.py --quick        # N = 1,000, 1 run
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import machine, median, run_in_workdir, table, write_json

from tests.datapath.orders import order, orders_route, xml_bytes
from tests.support.backends import Backend, direct_client, isolated_aws_env, start_seaweedfs
from tests.support.clients import CLIENT_CREDENTIALS
from tests.support.proxy import FORMAT_PROXY, ProxyProcess
from tests.transition.conftest import write_config

VENV_BIN = Path(sys.executable).parent


def _items_for(size: int) -> int:
    n = 1
    while len(xml_bytes(order(0, n + 1))) <= size:
        n += 1
    return n


def populate(backend: Backend, bucket: str, n: int, items: int) -> int:
    client = direct_client(backend.endpoint, backend.credentials, max_pool_connections=32)

    def put(i: int) -> int:
        body = xml_bytes(order(i, items))
        client.put_object(
            Bucket=bucket,
            # No spaces: the old loop cuts such keys (awk '{print $4}').
            Key=f"orders/{i:06d}-order.xml",
            Body=body,
            Metadata={"format": "xml"},
            ContentType="application/xml",
        )
        return len(body)

    with ThreadPoolExecutor(32) as pool:
        return sum(pool.map(put, range(n)))


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(argv: list[str], env: dict[str, str], shell: bool = False) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process tree, stdout)."""
    cpu0, t0 = _cpu_children(), time.perf_counter()
    proc = subprocess.run(
        argv if not shell else argv[0],
        env=env,
        capture_output=True,
        text=True,
        shell=shell,
        check=False,
        executable="/bin/bash" if shell else None,
    )
    wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0][:80]} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return wall, cpu, proc.stdout


OLD_LOOP = """set -euo pipefail
aws s3 ls "s3://$BUCKET/orders/" --recursive | awk '{print $4}' | while read -r key; do
  aws s3 cp "s3://$BUCKET/$key" - | aws s3 cp - "s3://$BUCKET/$key"
done"""


def one_run(
    backend: Backend,
    workdir: Path,
    sidecar: ProxyProcess,
    loop_bucket: str,
    n: int,
    loop_n: int,
    items: int,
) -> dict[str, Any]:
    bucket = backend.new_bucket("bench-migrate")
    nbytes = populate(backend, bucket, n, items)
    config = write_config(workdir, backend, bucket)
    env = isolated_aws_env()
    env.update(backend.credentials.env())
    base = [str(FORMAT_PROXY)]
    route = ["--config", str(config), "--route", "orders"]
    scan_wall, scan_cpu, _ = timed([*base, "scan", *route, "--concurrency", "16"], env)
    mig_wall, mig_cpu, out = timed(
        [*base, "migrate", *route, "--to", "json", "--concurrency", "8"], env
    )
    assert f'"rewritten": {n}' in out, out[-500:]

    populate(backend, loop_bucket, loop_n, items)
    loop_env = isolated_aws_env()
    loop_env.update(CLIENT_CREDENTIALS.env())
    loop_env.update(
        AWS_ENDPOINT_URL_S3=sidecar.endpoint,
        BUCKET=loop_bucket,
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
    )
    loop_wall, loop_cpu, _ = timed([OLD_LOOP], loop_env, shell=True)
    return {
        "n": n,
        "bytes": nbytes,
        "scan_per_s": n / scan_wall,
        "scan_cpu_ms_per_object": 1000 * scan_cpu / n,
        "migrate_per_s": n / mig_wall,
        "migrate_cpu_ms_per_object": 1000 * mig_cpu / n,
        "loop_n": loop_n,
        "loop_per_s": loop_n / loop_wall,
        "loop_cpu_ms_per_object": 1000 * loop_cpu / loop_n,
        "loop_bucket": loop_bucket,
    }


async def main(workdir: Path) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--loop-n", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    n = args.n or (1000 if args.quick else 10_000)
    runs = args.runs or (1 if args.quick else 3)
    loop_n = args.loop_n or (20 if args.quick else 60)
    items = _items_for(4096)
    print(f"{n} orders of {len(xml_bytes(order(0, items)))} bytes (XML), {runs} run(s)", flush=True)
    backend = start_seaweedfs(workdir / "seaweedfs", workdir / "logs")
    results = []
    for r in range(runs):
        # The runbook's loop runs through a v2 sidecar storing JSON, routed to its bucket.
        loop_bucket = backend.new_bucket("bench-loop")
        sidecar = ProxyProcess.start(
            workdir / "proxies",
            upstream=backend.endpoint,
            credentials=backend.credentials,
            app_version="v2",
            routes=[orders_route(loop_bucket, store="json")],
            name=f"sidecar-{r}",
        )
        try:
            result = one_run(backend, workdir, sidecar, loop_bucket, n, loop_n, items)
        finally:
            sidecar.stop()
        results.append(result)
        print(
            {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}, flush=True
        )
    keys = ("scan_per_s", "scan_cpu_ms_per_object", "migrate_per_s",
            "migrate_cpu_ms_per_object", "loop_per_s", "loop_cpu_ms_per_object")  # fmt: skip
    med = {k: median([r[k] for r in results]) for k in keys}
    ratio = med["migrate_per_s"] / med["loop_per_s"]
    print()
    print(table(
        ["case", "objects/s", "CPU ms/object"],
        [
            ["scan (HEAD per object, concurrency 16)", f"{med['scan_per_s']:.0f}",
             f"{med['scan_cpu_ms_per_object']:.2f}"],
            ["migrate --to json (concurrency 8)", f"{med['migrate_per_s']:.0f}",
             f"{med['migrate_cpu_ms_per_object']:.2f}"],
            [f"old aws s3 cp loop via a v2 sidecar ({loop_n} objects)",
             f"{med['loop_per_s']:.2f}", f"{med['loop_cpu_ms_per_object']:.0f}"],
        ],
    ))  # fmt: skip
    print(f"\nmigrate / old loop: {ratio:.0f}x objects/s")
    write_json(args.json, {"machine": machine(), "runs": results, "median": med, "ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(run_in_workdir(main, "bench-migrate-"))
