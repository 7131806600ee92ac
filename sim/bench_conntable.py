"""``make bench``: connection-table figures, ``bench/results/conntable.json``.

- ``bits_per_flow``: one way of a bucket (:func:`~openslb.hw.spec.conn_entry_fields`), and the
  block-RAM bits a flow takes once the bucket is padded to the DP16KD widths;
- ``flows_ecp5_45k`` / ``flows_ecp5_85k``: the largest table (a power of two of buckets, 4 ways)
  whose block RAMs fit beside the rest of the design, whose block RAM count comes from the real
  yosys + nextpnr run of the 64-bit core (``pipeline.json``);
- from the RTL simulation (cocotb, default table of 4096 flows): ``latency_cycles`` and
  ``cycles_per_packet_64B`` with every frame tracked (and ``…_long_run`` over the 40960-frame
  flood), ``new_flows_per_cycle`` at saturation, and
  ``established_kept_under_syn_flood``: the share of established connections still found (and
  on their real) after a SYN flood of 10x the table.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from openslb.hw.bram import ecp5_layout
from openslb.hw.spec import Params, conn_entry_bits
from openslb.sim.bench import bench_scenario

__all__ = ["conntable_figures", "table_brams", "flows_that_fit"]

#: DP16KD block RAMs of each device.
DEVICE_BRAMS = {"ecp5_45k": 108, "ecp5_85k": 208}


def table_brams(p: Params) -> int:
    """DP16KD primitives the connection table of ``p`` takes."""
    lay = ecp5_layout(conn_entry_bits(p) * p.conn_ways, p.conn_buckets)
    return lay.count


def flows_that_fit(free_brams: int, p: Params) -> tuple[int, int]:
    """(flows, buckets) of the largest table that fits in ``free_brams``."""
    best = (0, 0)
    buckets = 16
    while buckets <= 16384:
        q = dataclasses.replace(p, conn_buckets=buckets)
        if table_brams(q) <= free_brams:
            best = (q.conn_flows, buckets)
        buckets *= 2
    return best


def conntable_figures(design_brams: int | None, p: Params = Params()) -> dict:
    """All figures; ``design_brams`` is the measured DP16KD count of the whole 64-bit core."""
    lay = ecp5_layout(conn_entry_bits(p) * p.conn_ways, p.conn_buckets)
    out: dict = {
        "bits_per_flow": conn_entry_bits(p),
        "bram_bits_per_flow": round(lay.width * lay.count / p.conn_ways, 1),
        "default_flows": p.conn_flows,
        "default_table_brams": table_brams(p),
    }
    if design_brams is not None:
        rest = design_brams - table_brams(p)
        out["design_brams_without_table"] = rest
        for device, total in DEVICE_BRAMS.items():
            flows, buckets = flows_that_fit(total - rest, p)
            out[f"flows_{device}"] = flows
            out[f"buckets_{device}"] = buckets
    out.update(bench_scenario(p, "conn_bench"))
    return out


if __name__ == "__main__":
    brams = json.loads(Path("bench/results/pipeline.json").read_text())["ecp5_45k"]["brams"]["used"]
    print(json.dumps(conntable_figures(brams), indent=2))
