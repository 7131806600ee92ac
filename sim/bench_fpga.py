"""``make bench`` (FPGA part): writes ``bench/results/fpga.json``.

For every board, the ``make build`` report (resources, fmax per clock); and the 64-bit and
128-bit cores out of context on an ECP5-85F.  The packet rate for 64-byte frames is fmax over
the cycles such a frame needs: its beats (8 at 64 bits, 4 at 128), but at least the selector's
cycles per VIP lookup (``Selector.CYCLES_VIP``).  On a board the Ethernet line (1.488 Mpps at
1 Gb/s) is the limit.
Each ECP5 place and route takes about half an hour on 2 cores; ``python -m
openslb.sim.bench_fpga NAME...`` runs some of them (names: the boards, ``ecp5_85k_w64``,
``ecp5_85k_w128``) and merges them into the JSON; ``--collect BOARD...`` records the last
``make build`` of those boards (``build/boards/<board>/summary.json``) without building again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from openslb.hw.spec import Params

__all__ = ["fpga_figures", "RUNS"]

RESULTS = Path("bench") / "results" / "fpga.json"
LINE_RATE_1G_MPPS = 1e9 / ((64 + 20) * 8) / 1e6
RUNS = ("versa_ecp5", "colorlight_5a75b", "icebreaker", "ecp5_85k_w64", "ecp5_85k_w128")


def _cycles_64B(width: int) -> int:
    from openslb.hw.selector import Selector
    return max(64 * 8 // width, Selector.CYCLES_VIP)


def run(name: str) -> dict:
    if name.startswith("ecp5_85k"):
        from openslb.sim.runner import source_commit
        from openslb.sim.fpga import implement
        width = int(name.split("_w")[1])
        commit = source_commit()        # (taken before a run of half an hour)
        r = implement(Params(width=width), "ecp5_85k")
        r["mpps_64B"] = round(r["fmax_mhz"] / _cycles_64B(width), 2) if r["fmax_mhz"] else None
        r["commit"] = commit
        return r
    from openslb.sim.board_build import build
    rc = build(name)
    return board_entry(name) or {"error": f"build failed (exit {rc})"}


def board_entry(name: str) -> dict | None:
    """The figures of board ``name``'s last build (None if it left no summary)."""
    from openslb.sim.runner import REPO
    summary_path = REPO / "build" / "boards" / name / "summary.json"
    if not summary_path.exists():
        return None
    s = json.loads(summary_path.read_text())
    core = [c["achieved_mhz"] for n, c in s["clocks"].items() if "eth" not in n]
    if core and name != "icebreaker":
        s["mpps_64B_core"] = round(min(core) / _cycles_64B(64), 2)
        s["mpps_64B"] = round(min(s["mpps_64B_core"], LINE_RATE_1G_MPPS), 3)
    return s


def fpga_figures(names=RUNS, collect: bool = False) -> dict:
    """Run (or with ``collect``, read the last builds of) ``names`` and merge them into the
    JSON."""
    results = {}
    for name in names:
        entry = board_entry(name) if collect else run(name)
        if entry is None:
            raise SystemExit(f"error: {name} has no build to collect (make build BOARD={name})")
        # read the file again now: a run takes half an hour, and other runs may have written it
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[name] = entry
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    args = sys.argv[1:]
    collect = "--collect" in args
    names = [a for a in args if a != "--collect"]
    print(json.dumps(fpga_figures(names or RUNS, collect=collect), indent=2))
