"""Amaranth's own simulator for the block-level tests (``tests/test_*.py``): one clock, the
given async testbenches, run to their end."""

from __future__ import annotations

from amaranth.sim import Simulator

__all__ = ["run_clocked"]

#: Clock period of the block-level simulations (the value does not matter to the blocks).
PERIOD = 1e-8


def run_clocked(dut, *testbenches) -> None:
    """Simulate ``dut`` with a clock on its ``sync`` domain until every testbench returns."""
    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    for bench in testbenches:
        sim.add_testbench(bench)
    sim.run()
