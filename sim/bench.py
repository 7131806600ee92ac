"""``make bench``: management figures (``management.json``), emulator speed (``emulator.json``),
pipeline figures from the RTL simulation and a real yosys + nextpnr-ecp5 run, connection-table
figures (``conntable.json``, :mod:`openslb.sim.bench_conntable`).

Writes ``bench/results/pipeline.json``:
- ``cycles_per_packet_64B`` / ``cycles_per_packet_1500B``: output cycles per frame with the input
  saturated and the output always ready (the minimum at 64 bits is 8 and 188);
- ``latency_cycles``: first beat in to first beat out for a 64-byte VIP frame, idle core;
- ``ecp5_45k``: LUTs, FFs, BRAMs, DSPs and fmax of the 64-bit core, out of context.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from openslb.hw.spec import Params

__all__ = ["main", "pipeline_figures", "bench_scenario"]

RESULTS = Path("bench") / "results"


def bench_scenario(params: Params, scenario: str) -> dict:
    """Run a benchmark scenario of ``sim/tb_core.py`` on the core; the JSON it writes."""
    from openslb.sim.runner import run_testbench
    out = (Path("build") / "bench" / f"{scenario}-w{params.width}.json").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    tests, failed, test_dir = run_testbench(
        "openslb.sim.tb_core", params, "core",
        {"OPENSLB_SCENARIO": scenario, "OPENSLB_OUT": str(out)}, name=scenario)
    if failed or not out.exists():
        raise SystemExit(f"error: the benchmark testbench '{scenario}' failed; see {test_dir}")
    return json.loads(out.read_text())


def pipeline_figures(width: int) -> dict:
    return bench_scenario(Params(width=width), "bench")


def main(skip_fpga: bool = False) -> int:
    from openslb.sim.fpga import implement
    from openslb.sim.runner import source_commit
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    path = RESULTS / "pipeline.json"
    last = json.loads(path.read_text()) if path.exists() else {}
    result: dict = {"command": "make bench", "commit": source_commit(),
                    "machine": platform.machine(),
                    "python": platform.python_version()}
    from openslb.sim.bench_management import management_figures
    management = {"command": "make bench", "commit": result["commit"], **management_figures()}
    (RESULTS / "management.json").write_text(json.dumps(management, indent=2, default=str) + "\n")
    print(json.dumps(management, indent=2, default=str), flush=True)
    from openslb.sim.bench_emulator import emulator_figures
    emulator = {"command": "make bench", "commit": result["commit"], **emulator_figures()}
    (RESULTS / "emulator.json").write_text(json.dumps(emulator, indent=2) + "\n")
    print(json.dumps(emulator, indent=2), flush=True)
    result.update(pipeline_figures(64))
    result["w8"] = pipeline_figures(8)
    print(json.dumps(result, indent=2), flush=True)
    if not skip_fpga:
        # two seeds side by side (one per core: the same wall time as one), the best reported
        result["ecp5_45k"] = implement(Params(width=64), "ecp5_45k", seeds=(1, 2))
        result["ecp5_45k_commit"] = result["commit"]
        print(json.dumps(result["ecp5_45k"], indent=2), flush=True)
        # the same at speed grade 8, the grade of the Versa board's LFE5UM-45F
        result["ecp5_45k_speed8"] = implement(
            Params(width=64), "ecp5_45k", speed=8, seeds=(1, 2),
            workdir=Path("build") / "fpga" / "ecp5_45k-w64-speed8")
        print(json.dumps(result["ecp5_45k_speed8"], indent=2), flush=True)
        from openslb.sim.bench_fpga import fpga_figures
        print(json.dumps(fpga_figures(), indent=2), flush=True)
    from openslb.sim.bench_conntable import conntable_figures
    if "ecp5_45k" not in result and "ecp5_45k" in last:
        # --skip-fpga: the last measured run is kept, with the commit it was made at
        result["ecp5_45k"] = last["ecp5_45k"]
        result["ecp5_45k_commit"] = last.get("ecp5_45k_commit", "unknown")
        if "ecp5_45k_speed8" in last:
            result["ecp5_45k_speed8"] = last["ecp5_45k_speed8"]
    brams = result.get("ecp5_45k", {}).get("brams", {}).get("used")
    conn = {"command": "make bench", "commit": result["commit"], **conntable_figures(brams)}
    (RESULTS / "conntable.json").write_text(json.dumps(conn, indent=2) + "\n")
    print(json.dumps(conn, indent=2), flush=True)
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main("--skip-fpga" in sys.argv))
