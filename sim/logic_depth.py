"""Logic depth of a synthesised ECP5 netlist: the quick loop for timing work.

A place and route of the core takes half an hour and names one critical path; synthesis takes
about three minutes, and this reads its JSON netlist (``synth_ecp5 -json``) and lists *every* register
input by the deepest combinational path in front of it, with a rough delay estimate, grouped by
block.  It is what picks the next paths to cut; nextpnr (``make bench``) stays the measure.

Usage::

    python -m openslb.sim.logic_depth build/fpga/ecp5_45k-w64/core.json [--over NS] [--top N]
    python -m openslb.sim.logic_depth build/fpga/ecp5_45k-w64/core.json --fanout N
    python -m openslb.sim.logic_depth build/fpga/ecp5_45k-w64/core.json \
        --routed build/fpga/ecp5_45k-w64/report.json [--over NS] [--top N]

``--routed`` takes nextpnr's report of the routed design (written with
``--detailed-timing-report``, as :func:`openslb.sim.fpga.implement` does): the arrival time of
every timed endpoint after routing, which is where the figure comes from.  It counts the
endpoints later than ``--over`` by block and shows the latest ones, each with the deepest path
in front of it from the netlist (nextpnr names only the one critical path).

The delay model (nanoseconds, ECP5 speed grade 6, calibrated loosely on nextpnr's reports):
clock to out 0.5; per LUT4 or carry-chain entry 0.24 plus a net of 0.45 + 0.12 × log2(fan-out);
PFUMX/L6MUX 0.1; along a carry chain 0.06 per CCU2C; through a multiplier without its
registers 3.9.  Block RAMs are built with their output register and count as sources; LUT RAM
(``TRELLIS_DPR16X4``) reads are combinational.  Paths from the top level's inputs are left out
(an out-of-context run does not time them).  The estimate ranks paths; it runs short of
nextpnr's routed figures by 20 to 30 % (routing across the die is not in it).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Endpoint", "analyse", "block_of", "main", "register_fanout", "routed_arrivals",
           "routed_report"]

CLOCK_TO_OUT = 0.5
LUT = 0.24
NET = 0.45
NET_PER_FANOUT_DOUBLING = 0.12
WIDE_MUX = 0.1
CARRY_STEP = 0.06
CARRY_TO_SUM = 0.2
LUT_RAM_READ = 0.4
#: A MULT18X18D without its registers, inputs to product (nextpnr: 3.93 ns at speed grade 6).
MULTIPLIER = 3.9
#: Cells whose outputs start paths (and whose inputs end them), and the inputs that end them.
SINKS = {"TRELLIS_FF": ("DI", "CE", "LSR"), "TRELLIS_DPR16X4": ("DI", "WAD", "WRE")}
CARRY_INPUTS = ("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1")


def block_of(cell: str) -> str:
    """The block a cell is in: the first two levels of its hierarchical name."""
    return ".".join(cell.split(".")[:2])


def _clock_label(over: float) -> str:
    """`` (a N MHz clock)`` for a period of ``over`` ns."""
    return f" (a {1000 / over:.0f} MHz clock)" if over > 0 else ""


@dataclass
class Endpoint:
    """One register (or RAM) input and the deepest path in front of it."""
    delay: float
    levels: int
    cell: str
    port: str
    path: list = field(default_factory=list)    # (cell, output port, fan-out of its input)

    @property
    def block(self) -> str:
        """The block the endpoint is in: the first two levels of its hierarchical name."""
        return block_of(self.cell)


def _registered_multiplier(cell: dict) -> bool:
    """A multiplier whose inputs or output are registered inside it (then it is a path's end
    and start, like a flip-flop)."""
    params = cell.get("parameters", {})
    return any(params.get(name, "NONE") not in ("NONE", "")
               for name in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"))


class _Netlist:
    def __init__(self, module: dict) -> None:
        self.cells = {name: c for name, c in module["cells"].items()
                      if not c["type"].startswith("$")}
        self.driver: dict[int, tuple[str, str]] = {}
        self.fanout: collections.Counter = collections.Counter()
        for name, cell in self.cells.items():
            for port, bits in cell["connections"].items():
                output = cell["port_directions"][port] == "output"
                for bit in bits:
                    if isinstance(bit, int):
                        if output:
                            self.driver[bit] = (name, port)
                        else:
                            self.fanout[bit] += 1
        self.arrival_memo: dict[int, tuple[float, int, list]] = {}

    def net_delay(self, bit: int) -> float:
        return NET + NET_PER_FANOUT_DOUBLING * math.log2(max(self.fanout[bit], 1))

    def _arcs(self, cell: dict, port: str) -> tuple[tuple, float]:
        """The inputs that reach output ``port`` of ``cell`` combinationally, and the delay."""
        kind = cell["type"]
        if kind == "LUT4":
            return ("A", "B", "C", "D"), LUT
        if kind == "PFUMX":
            return ("ALUT", "BLUT", "C0"), WIDE_MUX
        if kind == "L6MUX21":
            return ("D0", "D1", "SD"), WIDE_MUX
        if kind == "CCU2C":
            inputs = CARRY_INPUTS if port in ("COUT", "S1") else CARRY_INPUTS[:4]
            return inputs + ("CIN",), LUT
        if kind == "TRELLIS_DPR16X4":
            return ("RAD",), LUT_RAM_READ
        if kind == "MULT18X18D" and not _registered_multiplier(cell):
            return tuple(f"{ab}{k}" for ab in "AB" for k in range(18)), MULTIPLIER
        return (), 0.0      # flip-flops, block RAMs (output register), registered multipliers

    def arrival(self, bit: int) -> tuple[float, int, list]:
        """Latest arrival at net ``bit`` (from a register), its LUT levels, and the path."""
        memo = self.arrival_memo
        if bit in memo:
            return memo[bit]
        # iterative depth-first walk (netlists have carry chains hundreds of cells long)
        stack = [bit]
        expanding: set[int] = set()     # nets waiting for their inputs (guards against loops)
        while stack:
            net = stack[-1]
            if net in memo:
                stack.pop()
                continue
            if net not in self.driver:            # a top-level input: not timed
                memo[net] = (-math.inf, 0, [])
                stack.pop()
                continue
            name, port = self.driver[net]
            cell = self.cells[name]
            inputs, delay = self._arcs(cell, port)
            pending = [b for p in inputs for b in cell["connections"].get(p, [])
                       if isinstance(b, int) and b not in memo and b not in expanding]
            if pending and net not in expanding:
                expanding.add(net)
                stack.extend(pending)
                continue
            stack.pop()
            expanding.discard(net)
            best = (CLOCK_TO_OUT, 0, [(name, port, 0)]) if not inputs else (-math.inf, 0, [])
            for p in inputs:
                for b in cell["connections"].get(p, []):
                    if not isinstance(b, int):
                        continue
                    at, levels, path = memo.get(b, (-math.inf, 0, []))
                    if p == "CIN":      # the carry chain's own wire
                        t = at + (CARRY_STEP if port == "COUT" else CARRY_TO_SUM)
                        lv = levels
                    else:
                        t = at + self.net_delay(b) + delay
                        lv = levels + (cell["type"] in ("LUT4", "CCU2C"))
                    if t > best[0]:
                        best = (t, lv, path + [(name, port, self.fanout[b])])
            memo[net] = best
        return memo[bit]


def analyse(netlist: dict, top: str) -> list[Endpoint]:
    """Every timed endpoint of module ``top`` of a yosys JSON netlist, deepest first."""
    net = _Netlist(netlist["modules"][top])
    ends = []
    for name, cell in net.cells.items():
        ports = SINKS.get(cell["type"])
        if cell["type"] == "MULT18X18D" and not _registered_multiplier(cell):
            ports = ()          # combinational: its paths go through it
        elif ports is None and cell["type"] in ("DP16KD", "MULT18X18D"):
            ports = tuple(p for p, d in cell["port_directions"].items()
                          if d == "input" and not p.startswith("CLK"))
        for port in ports or ():
            for bit in cell["connections"].get(port, []):
                if isinstance(bit, int):
                    at, levels, path = net.arrival(bit)
                    if at > -math.inf:
                        ends.append(Endpoint(at + net.net_delay(bit), levels, name, port, path))
    ends.sort(key=lambda e: -e.delay)
    return ends


def register_fanout(netlist: dict, top: str) -> list[tuple[int, str]]:
    """Every flip-flop of module ``top`` with the loads on its output, most loaded first.

    The depth report does not show what synthesis merged: registers that agree in inputs,
    enable and initial value become one (yosys' ``opt_merge``), and a copy meant to keep a
    compare's inputs local then hangs off the original with all its loads.  A register with
    far more loads than its design intends is the sign."""
    net = _Netlist(netlist["modules"][top])
    loads = [(sum(net.fanout[b] for b in cell["connections"].get("Q", []) if isinstance(b, int)),
              name) for name, cell in net.cells.items() if cell["type"] == "TRELLIS_FF"]
    return sorted(loads, key=lambda pair: (-pair[0], pair[1]))


def routed_arrivals(report: dict) -> list[tuple[float, str, str]]:
    """Every timed endpoint of a routed design, ``(arrival ns, cell, port)``, latest first.

    ``report`` is nextpnr's JSON report with ``detailed_net_timings``: for each net, the
    arrival time at each of its timed sinks (a list ``[min, max]`` or one number; the latest
    is taken).  Flip-flop data inputs are named ``DI`` as in the netlist (nextpnr may use the
    slice's bypass input ``M``)."""
    if "detailed_net_timings" not in report:
        raise ValueError("the report has no detailed_net_timings: run nextpnr with "
                         "--detailed-timing-report")
    latest: dict[tuple[str, str], float] = {}
    for net in report["detailed_net_timings"]:
        for sink in net["endpoints"]:
            delay = sink["delay"]
            arrival = max(delay) if isinstance(delay, list) else float(delay)
            port = "DI" if sink["port"] == "M" else sink["port"]
            key = (sink["cell"].lstrip("\\"), port)
            latest[key] = max(arrival, latest.get(key, -math.inf))
    return sorted(((t, cell, port) for (cell, port), t in latest.items()),
                  key=lambda end: (-end[0], end[1], end[2]))


def routed_report(arrivals: list[tuple[float, str, str]], netlist: dict | None, top_module: str,
                  over: float, top: int, out=None) -> None:
    """Blocks by routed endpoints later than ``over`` ns, then the ``top`` latest endpoints,
    each with the deepest path in front of it in ``netlist`` (when given)."""
    out = out or sys.stdout
    late = [end for end in arrivals if end[0] > over]
    by_block = collections.Counter(block_of(cell) for _, cell, _ in late)
    clock = _clock_label(over)
    print(f"{len(arrivals)} routed endpoints; latest {arrivals[0][0]:.2f} ns "
          f"({1000 / arrivals[0][0]:.2f} MHz); {len(late)} later than {over} ns{clock}", file=out)
    for block, count in by_block.most_common(top):
        print(f"  {count:6d}  {block}", file=out)
    paths = {}
    if netlist is not None:
        paths = {(e.cell, e.port): e for e in analyse(netlist, top_module)}
    for arrival, cell, port in arrivals[:top]:
        print(f"\n{arrival:.2f} ns -> {cell}.{port}", file=out)
        estimate = paths.get((cell, port))
        for step_cell, step_port, fanout in (estimate.path if estimate else []):
            print(f"    {step_cell[:100]} .{step_port}"
                  + (f"  (fan-out {fanout})" if fanout else ""), file=out)


def report(ends: list[Endpoint], over: float, top: int, out=sys.stdout) -> None:
    """Blocks by endpoints slower than ``over`` ns, a levels histogram, and the worst path of
    the ``top`` worst blocks."""
    slow = [e for e in ends if e.delay >= over]
    by_block = collections.Counter(e.block for e in slow)
    levels = collections.Counter(e.levels for e in ends)
    clock = _clock_label(over)
    print(f"{len(ends)} endpoints; worst {ends[0].delay:.2f} ns; {len(slow)} over {over} ns"
          f"{clock}", file=out)
    print("LUT levels: " + ", ".join(f"{k}: {v}" for k, v in sorted(levels.items())), file=out)
    for block, count in by_block.most_common(top):
        print(f"  {count:6d}  {block}", file=out)
    shown: set[str] = set()
    for e in slow:
        if e.block in shown or len(shown) >= top:
            continue
        shown.add(e.block)
        print(f"\n{e.delay:.2f} ns, {e.levels} LUT levels -> {e.cell}.{e.port}", file=out)
        for cell, port, fanout in e.path:
            print(f"    {cell[:100]} .{port}" + (f"  (fan-out {fanout})" if fanout else ""),
                  file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openslb.sim.logic_depth",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("netlist", type=Path, help="yosys JSON netlist (synth_ecp5 -json)")
    parser.add_argument("--top-module", default="dispatch_core")
    parser.add_argument("--over", type=float, default=6.4,
                        help="list endpoints slower than this many ns (default 6.4: 156.25 MHz)")
    parser.add_argument("--top", type=int, default=12, help="blocks to list")
    parser.add_argument("--fanout", type=int, default=0, metavar="N",
                        help="list the N flip-flops with the most loads instead")
    parser.add_argument("--routed", type=Path, metavar="REPORT",
                        help="nextpnr's report of the routed netlist (--detailed-timing-report): "
                             "list the routed endpoints instead")
    args = parser.parse_args(argv)
    try:
        netlist = json.loads(args.netlist.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.netlist}: {exc}", file=sys.stderr)
        return 2
    if args.top_module not in netlist.get("modules", {}):
        print(f"error: {args.netlist} has no module {args.top_module!r}", file=sys.stderr)
        return 2
    if args.routed:
        try:
            arrivals = routed_arrivals(json.loads(args.routed.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: cannot read {args.routed}: {exc}", file=sys.stderr)
            return 2
        if not arrivals:
            print("no timed endpoints", file=sys.stderr)
            return 1
        routed_report(arrivals, netlist, args.top_module, args.over, args.top)
        return 0
    if args.fanout:
        for loads, name in register_fanout(netlist, args.top_module)[:args.fanout]:
            print(f"{loads:6d}  {name}")
        return 0
    ends = analyse(netlist, args.top_module)
    if not ends:
        print("no timed endpoints", file=sys.stderr)
        return 1
    report(ends, args.over, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
