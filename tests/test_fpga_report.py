"""The out-of-context flow's reading of nextpnr reports: fmax over clocks, best of seeds."""

from openslb.sim.fpga import best_run, report_fmax


def _report(**mhz: float) -> dict:
    return {"fmax": {clk: {"achieved": f, "constraint": 156.25} for clk, f in mhz.items()},
            "utilization": {}}


def test_fmax_is_the_slowest_clock():
    assert report_fmax(_report(clk=96.3333, eth=150.0)) == 96.33
    assert report_fmax({"fmax": {}}) is None


def test_best_run_takes_the_fastest_seed_and_keeps_every_figure():
    reports = {1: _report(clk=87.92), 2: _report(clk=96.33), 3: _report(clk=91.0)}
    best, by_seed = best_run(reports)
    assert best == 2
    assert by_seed == {1: 87.92, 2: 96.33, 3: 91.0}


def test_a_run_that_times_nothing_never_wins():
    best, by_seed = best_run({1: {"fmax": {}}, 2: _report(clk=10.0)})
    assert best == 2 and by_seed[1] is None
