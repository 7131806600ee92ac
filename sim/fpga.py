"""Out-of-context synthesis, placement and routing of the dispatch core for an ECP5 with the pip
(YoWASP) toolchain: yosys ``synth_ecp5`` then ``nextpnr-ecp5 --out-of-context``.

Reports LUTs, flip-flops, block RAMs, DSPs and the achieved fmax from nextpnr's JSON report.
Placement decides much of the fmax of a core this size (its nets cross the die), and it moves by
several MHz from one seed to the next: ``implement`` can run several seeds side by side and
reports the best with every seed's figure beside it.  Each report has nextpnr's detailed net
timings: every timed endpoint's arrival after routing, which
``python -m openslb.sim.logic_depth core.json --routed report.json`` lists by block.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from openslb.hw.spec import Params

__all__ = ["implement", "best_run", "fmax_by_clock", "report_fmax", "DEVICES",
           "PLACER_TIMING_WEIGHT"]

#: nextpnr device flag and a package that exists for it.
DEVICES = {"ecp5_45k": ("--45k", "CABGA381"), "ecp5_85k": ("--85k", "CABGA381"),
           "ecp5_25k": ("--25k", "CABGA381")}


class Ecp5Target:
    """The platform as the gateware sees it when built out of context for an ECP5: block RAMs
    become ``DP16KD`` with their output register (:mod:`openslb.hw.bram`)."""
    family = "ecp5"


def _tool(name: str) -> str:
    venv_bin = str(Path(sys.executable).parent)
    path = (shutil.which(f"yowasp-{name}", path=venv_bin) or shutil.which(f"yowasp-{name}")
            or shutil.which(name))
    if path is None:
        raise SystemExit(f"error: {name} not found; install the FPGA extra: "
                         f"pip install -e '.[fpga]' (make bench does this)")
    return path


#: nextpnr's analytic placer weighs timing against wire length by this (its default is 10).  At
#: 30 one netlist of the 64-bit core (03cef27) reached 96.33 and 95.36 MHz on the ECP5-45F at
#: seeds 1 and 2, against 87.92 and 90.24 at 10; docs/pipeline.md, "The third round".
PLACER_TIMING_WEIGHT = 30


def implement(params: Params, device: str = "ecp5_45k", freq_mhz: float = 156.25,
              workdir: Path | None = None, seeds: tuple[int, ...] = (1,),
              speed: int | None = None) -> dict:
    """Synthesise once, then place and route with each of ``seeds``; return resources and
    fmax (MHz) of the best run as a dict, with every seed's fmax in ``fmax_by_seed``.

    The seeds run side by side, one per core.  ``speed`` is the device's speed grade
    (nextpnr's default, 6, the slowest, when None; the Versa board's LFE5UM-45F is a -8)."""
    from amaranth.back import rtlil

    from openslb.hw.pipeline import DispatchCore

    workdir = workdir or Path("build") / "fpga" / f"{device}-w{params.width}"
    workdir.mkdir(parents=True, exist_ok=True)
    # RTLIL, not Verilog: the Maglev RAM's initial contents stay one constant instead of
    # 131072 assignments that take yosys' Verilog front end many minutes to read.
    (workdir / "core.il").write_text(rtlil.convert(DispatchCore(params), name="dispatch_core",
                                                   emit_src=False, platform=Ecp5Target()))
    t0 = time.monotonic()
    subprocess.run([_tool("yosys"), "-q", "-l", "yosys.log", "-p",
                    "read_rtlil core.il; synth_ecp5 -top dispatch_core -json core.json"],
                   cwd=workdir, check=True)
    t1 = time.monotonic()
    workers = max(1, min(len(seeds), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        reports = dict(zip(seeds, pool.map(
            lambda seed: _place_and_route(workdir, device, freq_mhz, seed, speed, len(seeds) > 1),
            seeds)))
    t2 = time.monotonic()
    best, by_seed = best_run(reports)
    util = reports[best]["utilization"]

    def used(cell: str) -> dict:
        u = util.get(cell, {"used": 0, "available": 0})
        return {"used": u["used"], "available": u["available"]}

    return {
        "device": device,
        "speed_grade": speed or 6,
        "width": params.width,
        "luts": used("TRELLIS_COMB"),
        "ffs": used("TRELLIS_FF"),
        "brams": used("DP16KD"),
        "dsps": used("MULT18X18D"),
        "fmax_mhz": by_seed[best],
        "fmax_by_clock": fmax_by_clock(reports[best]),
        "seed": best,
        "fmax_by_seed": {str(seed): f for seed, f in by_seed.items()},
        "placer_timing_weight": PLACER_TIMING_WEIGHT,
        "target_mhz": freq_mhz,
        "synth_s": round(t1 - t0, 1),
        "pnr_s": round(t2 - t1, 1),
        "toolchain": _versions(),
    }


def _place_and_route(workdir: Path, device: str, freq_mhz: float, seed: int,
                     speed: int | None, own_dir: bool) -> dict:
    """One nextpnr run of ``workdir/core.json``; its ``--report`` JSON.  With ``own_dir`` the
    report and the log go to ``workdir/seed<N>/`` (runs side by side must not share them)."""
    flag, package = DEVICES[device]
    out = Path(f"seed{seed}") if own_dir else Path(".")
    (workdir / out).mkdir(exist_ok=True)
    subprocess.run([_tool("nextpnr-ecp5"), flag, "--package", package, "--json", "core.json",
                    "--out-of-context", "--freq", str(freq_mhz), "--seed", str(seed),
                    "--placer-heap-timingweight", str(PLACER_TIMING_WEIGHT),
                    *(["--speed", str(speed)] if speed else []),
                    "--report", str(out / "report.json"), "--detailed-timing-report",
                    "--timing-allow-fail", "--log", str(out / "nextpnr.log"), "-q"],
                   cwd=workdir, check=True)
    return json.loads((workdir / out / "report.json").read_text())


def fmax_by_clock(report: dict) -> dict[str, float]:
    """The achieved fmax (MHz, to 0.01) of each clock of a nextpnr ``--report`` JSON."""
    return {clk: round(v["achieved"], 2) for clk, v in report.get("fmax", {}).items()}


def report_fmax(report: dict) -> float | None:
    """The lowest achieved fmax (MHz) over the clocks of a nextpnr ``--report`` JSON (None
    when it times none)."""
    return min(fmax_by_clock(report).values(), default=None)


def best_run(reports: dict[int, dict]) -> tuple[int, dict[int, float | None]]:
    """The seed whose report has the highest fmax (a run that times no clock counts as the
    worst), and every seed's fmax."""
    by_seed = {seed: report_fmax(report) for seed, report in reports.items()}

    def rank(seed: int) -> float:
        return -1.0 if by_seed[seed] is None else by_seed[seed]
    return max(by_seed, key=rank), by_seed


def _versions() -> dict:
    out = {}
    for name in ("yosys", "nextpnr-ecp5"):
        try:
            run = subprocess.run([_tool(name), "--version"], capture_output=True, text=True,
                                 timeout=120)
            text = (run.stdout or run.stderr).strip()
            out[name] = re.sub(r"\s+", " ", text)[:80]
        except (subprocess.SubprocessError, OSError, SystemExit):
            out[name] = "unknown"
    return out


if __name__ == "__main__":
    width = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    print(json.dumps(implement(Params(width=width)), indent=2))
