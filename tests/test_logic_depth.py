"""The logic-depth report (sim/logic_depth.py) on small hand-made netlists: levels are counted
through LUTs and carry chains, a carry chain's own wire adds no level, top-level inputs are not
timed, and a combinational loop does not hang it."""

from __future__ import annotations

import io
import json

from openslb.sim.logic_depth import analyse, main, register_fanout, report


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
