"""Run a bench protocol (``inrkit bench``'s protocols, ``inrkit/api/protocols/*.json``) and write its table,
wall time and an HTML report's size and build time into a BENCHMARKS.md section.

Every setting of the fits (signals, preprocessing, models, steps, lr, batch) comes from the protocol file; this
script only adds the machine, the wall times and the report. It replaces ``scripts/bench_image.py`` (whose options
are now the ``finer-div2k`` protocol's). Interrupt it and run it again: finished cells are kept.

    flock /tmp/inrkit-bench.lock python scripts/bench_protocol.py finer-div2k --scale cpu --data ../shared/data
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from bench_common import ROOT, write_section

sys.path.insert(0, str(ROOT))

from inrkit.api.bench import run_bench
from inrkit.api.protocols import load_protocol
from inrkit.api.report import build_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("protocol", help="protocol name or .json file")
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--out", help="bench directory (default: /tmp/inrkit-bench-PROTOCOL-SCALE)")
    parser.add_argument("--note", default="", help="a sentence on the machine's load, for the section")
    args = parser.parse_args()
    protocol = load_protocol(args.protocol, args.scale)
    out = Path(args.out or f"/tmp/inrkit-bench-{protocol.name}-{protocol.scale}")
    began = time.perf_counter()
    result = run_bench(protocol, args.data, out, args.models, echo=print)
    wall = time.perf_counter() - began
    began = time.perf_counter()
    report = build_report([out], out / "report.html")
    report_seconds = time.perf_counter() - began
    cells = [r for r in result.records.values() if r.get("status") == "done"]
    lines = [
        f"## Bench `{protocol.name}` at scale `{protocol.scale}` (`scripts/bench_protocol.py`)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, Python "
        f"{platform.python_version()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}. {args.note}",
        f"Command: `inrkit bench {protocol.name} --scale {protocol.scale} --data DATA` "
        f"(here through `python scripts/bench_protocol.py {args.protocol} --scale {protocol.scale}`); "
        f"{len(cells)} cells, wall time {wall:.0f} s (cells run in this session; cells kept from an earlier run cost 0 s), "
        f"sum of the cells' own wall times {sum(r.get('wall_s', 0) for r in cells):.0f} s.",
        f"Full protocol: `inrkit bench {protocol.name} --scale full --data DATA` (a GPU).",
        "",
        f"Protocol: {protocol.title}. Scale {protocol.scale}: {protocol.factors or 'none'}.",
        "",
        *result.table().splitlines()[2:],
        "",
        f"`inrkit report {out.name}`: {report.stat().st_size / 1e6:.2f} MB, built in {report_seconds:.1f} s.",
    ]
    write_section("\n".join(lines), f"bench-{protocol.name}-{protocol.scale}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
