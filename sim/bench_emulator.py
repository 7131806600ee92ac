"""``make bench`` (emulator part): writes ``bench/results/emulator.json``.

Packets per second of the Verilator emulator on one core, full appliance design (core, UART,
bridge; configured over the UART; model check off), for 64-byte VIP frames and for the simple
IMIX (7 x 64 B, 4 x 594 B, 1 x 1518 B), and the same for a one-register pass-through design built
the same way in the same run, so the cost of the design itself is visible.
"""

from __future__ import annotations

import json
import random
import time

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from openslb.firmware.slb import default_slb_config
from openslb.sim.emulate import attach
from openslb.sim.emulator import Emulator

__all__ = ["emulator_figures"]


def _frame(size: int, rng: random.Random) -> bytes:
    f = bytes(Ether(dst="02:00:5e:00:00:01", src="02:00:00:00:00:99")
              / IP(src=f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}", dst="10.0.0.100")
              / TCP(sport=rng.randrange(1024, 65536), dport=80, flags="A"))
    return f + bytes(size - 4 - len(f))      # sizes count the FCS, which the core never sees


def _mix(kind: str, n: int) -> list[bytes]:
    rng = random.Random(1)
    sizes = [64] if kind == "64B" else [64] * 7 + [594] * 4 + [1518]
    return [_frame(rng.choice(sizes), rng) for _ in range(n)]


def _rate(emu: Emulator, frames: list[bytes]) -> dict:
    emu.process(frames[:2000])                          # warm up
    c0, t0 = emu.cycles, time.perf_counter()
    out = emu.process(frames)
    dt = time.perf_counter() - t0
    return {"frames": len(frames), "out": len(out), "mpps": round(len(frames) / dt / 1e6, 4),
            "cycles_per_second": round((emu.cycles - c0) / dt), "wall_s": round(dt, 2)}


def live_http(requests: int = 400, workers: int = 8) -> dict:
    """HTTP requests/s from the client namespace through the emulated VIP (DSR), and straight
    to the four reals at once (same clients, same total) for comparison; ``None`` figures where
    live mode cannot run."""
    import json as _json

    from openslb.sim.live import LiveRun, can_go_live
    reason = can_go_live()
    if reason:
        return {"live_http_rps": None, "live_note": reason}
    run = LiveRun(default_slb_config())
    try:
        time.sleep(1)

        def rps(targets: list[str]) -> tuple[float, int]:
            """All targets loaded at once, ``requests`` in all; answered requests per second."""
            procs = []
            for target in targets:
                run.vip, vip = target, run.vip
                try:
                    procs.append(run.load(requests // len(targets), max(1, workers // len(targets))))
                finally:
                    run.vip = vip
            rows = []
            for proc in procs:
                out, _ = proc.communicate(timeout=300)
                rows += [_json.loads(line) for line in out.splitlines()]
            ok = [r for r in rows if r["ok"]]
            span = max(r["t"] for r in rows) - min(r["t"] - r["ms"] / 1000 for r in rows)
            return round(len(ok) / span, 1), len(rows) - len(ok)
        through, failed = rps([run.vip])
        direct, failed_direct = rps([r.rip for r in default_slb_config().reals.values()])
    finally:
        run.close()
    return {"live_http_rps": through, "live_failed": failed, "direct_http_rps": direct,
            "direct_failed": failed_direct, "requests": requests, "workers": workers}


def emulator_figures(n: int = 100_000) -> dict:
    result = {}
    for design in ("appliance", "passthrough"):
        emu = Emulator(design=design)
        if design == "appliance":
            attach(emu, default_slb_config())
        result[design] = {kind: _rate(emu, _mix(kind, n)) for kind in ("64B", "imix")}
    app, ref = result["appliance"], result["passthrough"]
    return {
        "emulator_mpps_64B": app["64B"]["mpps"], "emulator_mpps_imix": app["imix"]["mpps"],
        "cycles_per_second": app["64B"]["cycles_per_second"], "target_mpps_64B": 1.0,
        "passthrough_mpps_64B": ref["64B"]["mpps"], "passthrough_mpps_imix": ref["imix"]["mpps"],
        "passthrough_cycles_per_second": ref["64B"]["cycles_per_second"],
        "design_cost_ratio": round(ref["64B"]["cycles_per_second"] / app["64B"]["cycles_per_second"], 2),
        **live_http(),
        "detail": result,
    }


if __name__ == "__main__":
    print(json.dumps(emulator_figures(), indent=2))
