"""``make fuzz``: millions of random and mutated frames through the emulator, checked against
the reference model: every output frame and counter equal, no hang, and frames in = frames out
+ counted drops.  ``python -m openslb.sim.fuzz [FRAMES] [SEED]``."""

from __future__ import annotations

import random
import sys
import time

from openslb.hw.spec import Params
from openslb.model.config import default_config
from openslb.sim import traffic

__all__ = ["fuzz_frames", "main"]


def fuzz_frames(n: int, rng: random.Random, base: list[bytes], max_frame: int) -> list[bytes]:
    """Random bytes, truncations, bit flips, byte splices and oversize frames of real ones."""
    out = []
    for _ in range(n):
        kind = rng.random()
        f = bytearray(rng.choice(base))
        if kind < 0.15:
            f = bytearray(rng.randbytes(rng.randint(0, 200)))
        elif kind < 0.35:
            f = f[:rng.randint(0, len(f))]
        elif kind < 0.7:
            for _ in range(rng.randint(1, 4)):
                if f:
                    f[rng.randrange(len(f))] ^= 1 << rng.randrange(8)
        elif kind < 0.8:
            f += rng.randbytes(max(0, rng.randint(max_frame - len(f) - 8, max_frame - len(f) + 64)))
        elif kind < 0.9 and len(f) > 20:
            k = rng.randrange(14, len(f))
            f[k:k + 4] = rng.randbytes(4)
        out.append(bytes(f))
    return out


def main(frames: int = 1_000_000, seed: int = 1, batch: int = 20_000) -> int:
    from openslb.firmware.bus import ModelBus
    from openslb.firmware.manager import Manager
    from openslb.firmware.slb import default_slb_config
    from openslb.model.device import DeviceModel
    from openslb.sim.emulate import attach
    from openslb.sim.emulator import Emulator

    params = Params()
    rng = random.Random(seed)
    emu = Emulator(params)
    slb = default_slb_config()
    slb.conn.tick_cycles = 0     # connection time as the model keeps it: moved by CONN_TICK only
    manager = attach(emu, slb)
    model = DeviceModel(params)
    Manager(ModelBus(model), None, slb).program_applied()
    base = traffic.mixed_traffic(default_config(), 500, seed)
    done, outs, t0 = 0, 0, time.monotonic()
    while done < frames:
        chunk = fuzz_frames(min(batch, frames - done), rng, base, params.max_frame)
        if done % (5 * batch) == 0:
            emu.backpressure(rng.getrandbits(32) & rng.getrandbits(32))
        got = emu.process(chunk)
        want = model.process(chunk)
        if got != want.outputs:
            bad = next((i for i, (g, w) in enumerate(zip(got, want.outputs)) if g != w), None)
            print(f"FAIL: outputs differ from the model in batch at frame {done} "
                  f"(first differing output {bad}; {len(got)} vs {len(want.outputs)})")
            return 1
        done += len(chunk)
        outs += len(got)
        print(f"{done} frames, {outs} out, {time.monotonic() - t0:.0f} s", flush=True)
    counters = manager.counters()
    if counters != model.process([]).counters:
        print("FAIL: counters differ from the model")
        return 1
    drops = sum(v for k, v in counters.items() if k.startswith("DROP_"))
    out = counters["TX_SERVER"] + counters["TX_CLIENT"] + counters["TX_HOST"]
    if counters["RX_FRAMES"] != frames or out + drops != frames or out != outs:
        print(f"FAIL: {frames} in, {out} out + {drops} drops (counted {counters['RX_FRAMES']})")
        return 1
    print(f"PASS: {frames} fuzzed frames, {outs} out, {drops} counted drops, all equal to the "
          f"model, in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:])))
