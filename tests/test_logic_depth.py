"""The logic-depth report (sim/logic_depth.py) on small hand-made netlists: levels are counted
through LUTs and carry chains, a carry chain's own wire adds no level, top-level inputs are not
timed, and a combinational loop does not hang it; the routed listing reads nextpnr's detailed
timing report."""

from __future__ import annotations

import io
import json

import pytest

from openslb.sim.logic_depth import analyse, main, register_fanout, report, routed_arrivals


def _cell(kind: str, **ports) -> dict:
    """A cell whose ports are given as (direction, [bits])."""
    return {"type": kind, "port_directions": {p: d for p, (d, _) in ports.items()},
            "connections": {p: bits for p, (_, bits) in ports.items()}}


def _ff(name_d: int, q: int) -> dict:
    return _cell("TRELLIS_FF", DI=("input", [name_d]), Q=("output", [q]), CLK=("input", [1]))


def _lut(a: int, z: int, b: int | str = "0") -> dict:
    return _cell("LUT4", A=("input", [a]), B=("input", [b]), Z=("output", [z]))


def _netlist(cells: dict) -> dict:
    return {"modules": {"top": {"cells": cells, "netnames": {}}}}


def test_levels_follow_the_luts_between_registers():
    # src.Q (10) -> lut a (11) -> lut b (12) -> lut c (13) -> dst.DI; and src -> short.DI
    cells = {"blk.src": _ff(99, 10), "blk.a": _lut(10, 11), "blk.b": _lut(11, 12),
             "blk.c": _lut(12, 13), "blk.dst": _ff(13, 20), "other.short": _ff(10, 21),
             "blk.back": _ff(20, 99)}
    ends = analyse(_netlist(cells), "top")
    by_cell = {e.cell: e for e in ends}
    assert by_cell["blk.dst"].levels == 3
    assert by_cell["other.short"].levels == 0
    assert ends[0].cell == "blk.dst"            # deepest first
    assert [step[0] for step in ends[0].path] == ["blk.src", "blk.a", "blk.b", "blk.c"]
    assert by_cell["blk.dst"].block == "blk.dst"


def test_a_carry_chain_adds_one_level_however_long():
    # src -> CCU2C 0 (A0) -> CIN of 1 .. 7 -> S0 of the last -> dst
    cells = {"src": _ff(99, 10), "back": _ff(50, 99)}
    carry_in = None
    for k in range(8):
        ports = {"A0": ("input", [10]), "COUT": ("output", [30 + k]), "S0": ("output", [40 + k])}
        if carry_in is not None:
            ports["CIN"] = ("input", [carry_in])
        cells[f"cc{k}"] = _cell("CCU2C", **ports)
        carry_in = 30 + k
    cells["dst"] = _ff(47, 50)
    ends = {e.cell: e for e in analyse(_netlist(cells), "top")}
    assert ends["dst"].levels == 1
    short = _netlist({"src": _ff(99, 10), "back": _ff(50, 99),
                      "cc0": _cell("CCU2C", A0=("input", [10]), S0=("output", [40])),
                      "dst": _ff(40, 50)})
    one = {e.cell: e for e in analyse(short, "top")}["dst"]
    assert ends["dst"].delay > one.delay        # the chain still costs time


def test_top_level_inputs_are_not_timed_and_loops_end():
    # net 5 has no driver (a top-level input); luts x and y feed each other
    cells = {"from_input": _ff(60, 70), "in_lut": _lut(5, 60),
             "x": _lut(80, 81, b=82), "y": _lut(81, 82), "src": _ff(99, 80),
             "dst": _ff(82, 99)}
    ends = {e.cell: e for e in analyse(_netlist(cells), "top")}
    assert "from_input" not in ends
    assert ends["dst"].levels >= 2
    out = io.StringIO()
    report(sorted(ends.values(), key=lambda e: -e.delay), over=0.5, top=5, out=out)
    assert "dst" in out.getvalue() and "LUT levels" in out.getvalue()


def test_a_multiplier_without_registers_is_in_the_path():
    def mult(params: dict) -> dict:
        cell = _cell("MULT18X18D", A0=("input", [10]), P0=("output", [40]))
        cell["parameters"] = params
        return cell

    def dst_delay(params: dict):
        cells = {"src": _ff(99, 10), "m": mult(params), "dst": _ff(40, 50), "back": _ff(50, 99)}
        return {e.cell: e for e in analyse(_netlist(cells), "top")}

    through = dst_delay({})
    assert through["dst"].delay > 3.9                    # the product waits for the multiply
    assert "m" not in through                            # ... which is not an endpoint itself
    registered = dst_delay({"REG_OUTPUT_CLK": "CLK0"})
    assert registered["dst"].delay < 3.9                 # its own register starts the path
    assert "m" in registered                             # and ends the one in front of it


def test_register_fanout_lists_the_most_loaded_flip_flops_first():
    # "wide" drives three LUTs, "narrow" one, "idle" none
    cells = {"wide": _ff(99, 10), "narrow": _ff(99, 11), "idle": _ff(99, 12),
             "a": _lut(10, 20), "b": _lut(10, 21), "c": _lut(10, 22, b=11)}
    assert register_fanout(_netlist(cells), "top") == [(3, "wide"), (1, "narrow"), (0, "idle")]


def test_the_fanout_listing_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "net.json"
    path.write_text(json.dumps(_netlist({"wide": _ff(99, 10), "a": _lut(10, 20),
                                         "b": _lut(10, 21)})))
    assert main([str(path), "--top-module", "top", "--fanout", "5"]) == 0
    assert capsys.readouterr().out.split() == ["2", "wide"]


def _routed(*sinks: tuple) -> dict:
    """A nextpnr report whose detailed net timings hold ``(net, cell, port, delay)`` sinks."""
    nets: dict[str, list] = {}
    for net, cell, port, delay in sinks:
        nets.setdefault(net, []).append({"cell": cell, "port": port, "delay": delay,
                                         "event": "posedge clk"})
    return {"fmax": {}, "critical_paths": [],
            "detailed_net_timings": [{"net": net, "driver": "d", "port": "F", "endpoints": ends}
                                     for net, ends in nets.items()]}


def test_routed_arrivals_take_each_endpoint_latest_arrival():
    report = _routed(("n1", "blk.a_FF", "DI", [1.0, 7.5]), ("n2", "\\blk.b_FF", "M", 9.25),
                     ("n3", "blk.a_FF", "CE", [0.5, 2.0]), ("n4", "blk.a_FF", "DI", [3.0, 8.0]))
    assert routed_arrivals(report) == [(9.25, "blk.b_FF", "DI"), (8.0, "blk.a_FF", "DI"),
                                       (2.0, "blk.a_FF", "CE")]


def test_routed_arrivals_need_the_detailed_report():
    with pytest.raises(ValueError, match="--detailed-timing-report"):
        routed_arrivals({"fmax": {}, "critical_paths": []})


def test_the_routed_listing_counts_late_endpoints_by_block_with_their_paths(tmp_path, capsys):
    # src -> lut a -> lut b -> slow.dst; src -> fast.dst
    cells = {"blk.src": _ff(99, 10), "blk.a": _lut(10, 11), "blk.b": _lut(11, 12),
             "slow.dst": _ff(12, 20), "fast.dst": _ff(10, 21), "blk.back": _ff(20, 99)}
    net = tmp_path / "net.json"
    net.write_text(json.dumps(_netlist(cells)))
    report = tmp_path / "report.json"
    report.write_text(json.dumps(_routed(("x", "slow.dst", "M", [2.0, 8.5]),
                                         ("y", "fast.dst", "DI", [1.0, 3.0]),
                                         ("z", "blk.back", "DI", [1.0, 6.0]))))
    assert main([str(net), "--top-module", "top", "--routed", str(report), "--over", "5",
                 "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 routed endpoints; latest 8.50 ns (117.65 MHz); 2 later than 5.0 ns" in out
    assert "8.50 ns -> slow.dst.DI" in out
    assert "blk.a .Z" in out and "blk.b .Z" in out       # its path, from the netlist
    assert "fast.dst" not in out                         # not late, not in the top 1
    bad = tmp_path / "plain.json"
    bad.write_text(json.dumps({"fmax": {}, "critical_paths": []}))
    assert main([str(net), "--top-module", "top", "--routed", str(bad)]) == 2
