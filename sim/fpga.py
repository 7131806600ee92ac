"""Out-of-context synthesis, placement and routing of the dispatch core for an ECP5 with the pip
(YoWASP) toolchain: yosys ``synth_ecp5`` then ``nextpnr-ecp5 --out-of-context``.

Reports LUTs, flip-flops, block RAMs, DSPs and the achieved fmax from nextpnr's JSON report.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from openslb.hw.spec import Params

__all__ = ["implement", "DEVICES"]

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


def implement(params: Params, device: str = "ecp5_45k", freq_mhz: float = 156.25,
              workdir: Path | None = None, seed: int = 1, speed: int | None = None) -> dict:
    """Synthesise, place and route; return resources and fmax (MHz) as a dict.

    ``speed`` is the device's speed grade (nextpnr's default, 6, the slowest, when None; the
    Versa board's LFE5UM-45F is a -8)."""
    from amaranth.back import rtlil

    from openslb.hw.pipeline import DispatchCore

    flag, package = DEVICES[device]
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
    subprocess.run([_tool("nextpnr-ecp5"), flag, "--package", package, "--json", "core.json",
                    "--out-of-context", "--freq", str(freq_mhz), "--seed", str(seed),
                    *(["--speed", str(speed)] if speed else []),
                    "--report", "report.json", "--timing-allow-fail", "--log", "nextpnr.log",
                    "-q"], cwd=workdir, check=True)
    t2 = time.monotonic()
    report = json.loads((workdir / "report.json").read_text())
    util = report["utilization"]

    def used(cell: str) -> dict:
        u = util.get(cell, {"used": 0, "available": 0})
        return {"used": u["used"], "available": u["available"]}

    fmax = {clk: round(v["achieved"], 2) for clk, v in report.get("fmax", {}).items()}
    luts = used("TRELLIS_COMB")
    return {
        "device": device,
        "speed_grade": speed or 6,
        "width": params.width,
        "luts": luts,
        "ffs": used("TRELLIS_FF"),
        "brams": used("DP16KD"),
        "dsps": used("MULT18X18D"),
        "fmax_mhz": min(fmax.values()) if fmax else None,
        "fmax_by_clock": fmax,
        "target_mhz": freq_mhz,
        "synth_s": round(t1 - t0, 1),
        "pnr_s": round(t2 - t1, 1),
        "toolchain": _versions(),
    }


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
