"""cocotb testbench of the whole dispatch core against the reference model.

Frames are driven with random idle gaps, the output is taken under random backpressure, and a
scoreboard compares every output frame (port and bytes, in order), every global counter and every
per-VIP / per-real statistic with :class:`openslb.model.pipeline.Appliance`.

Environment: ``OPENSLB_PARAMS`` (the :class:`~openslb.hw.spec.Params` as a dict literal, set by
the runner), ``OPENSLB_SCENARIO`` (mixed / health / commit), ``OPENSLB_FLOWS``, ``OPENSLB_SEED``.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import ipaddress
import json
import os
import random
from pathlib import Path

import cocotb
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from openslb.firmware.program import health_writes, program, table_writes
from openslb.firmware.regs import address, pack_fields
from openslb.hw.spec import (COUNTERS, ID_MAGIC, PROTO_TCP, PROTO_UDP, SNAPSHOT_CYCLES,
                             STAT_LATCH_CYCLES, Access,
                             EgressPort, IngressPort, Metric, Mode, Params, params_word,
                             pbind_prefix_mask, registers, unpack_register)
from openslb.model.config import ApplianceConfig, ip_int
from openslb.model.device import DeviceModel
from openslb.model.pipeline import Appliance
from openslb.sim import traffic
from openslb.sim.runner import SIM_CLOCK_HZ

CLOCK_NS = 1e9 / SIM_CLOCK_HZ  # 6.4 ns
STALL_LIMIT = 20_000  # cycles the input may be refused before the core is declared hung


def _params() -> Params:
    return Params(**ast.literal_eval(os.environ.get("OPENSLB_PARAMS", "{}")))


class CoreBench:
    """Drivers, monitor and register-bus access for one ``dispatch_core`` instance."""

    def __init__(self, dut, params: Params, seed: int) -> None:
        self.dut = dut
        self.p = params
        self.rng = random.Random(seed)
        self.outputs: list[tuple[EgressPort, bytes]] = []
        self.cycles = 0                                # falling edges seen by the monitor
        self.in_times: list[int] = []                  # cycle each frame's first beat went in
        self.out_times: list[tuple[int, int]] = []     # cycles of each output frame's first/last beat
        self.input_stalls = 0                          # cycles a beat was offered and refused
        self.backpressure = 0.3
        self.errors: list[str] = []

    async def start(self) -> None:
        dut = self.dut
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        dut.rst.value = 1
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        dut.bus__w_en.value = 0
        dut.bus__r_en.value = 0
        for _ in range(3):
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    # -- register bus (driven on the falling edge, committed on the rising edge) -------------
    async def write_many(self, writes: list[tuple[int, int]]) -> None:
        dut = self.dut
        for addr, value in writes:
            await FallingEdge(dut.clk)
            dut.bus__addr.value = addr
            dut.bus__w_data.value = value
            dut.bus__w_en.value = 1
        await FallingEdge(dut.clk)
        dut.bus__w_en.value = 0

    async def read(self, addr: int) -> int:
        dut = self.dut
        await FallingEdge(dut.clk)
        dut.bus__addr.value = addr
        dut.bus__r_en.value = 1
        await FallingEdge(dut.clk)
        dut.bus__r_en.value = 0
        for _ in range(2):      # r_valid comes two cycles after r_en
            await ReadOnly()
            if dut.bus__r_valid.value == 1:
                return int(dut.bus__r_data.value)
            await FallingEdge(dut.clk)
        raise AssertionError("register read not acknowledged")

    async def counters(self) -> dict[str, int]:
        await self.write_many([(address("SNAPSHOT"), 1)])
        await ClockCycles(self.dut.clk, SNAPSHOT_CYCLES)
        out = {}
        for n, name in enumerate(COUNTERS):
            lo = await self.read(address("COUNTER", 2 * n))
            hi = await self.read(address("COUNTER", 2 * n + 1))
            out[name] = lo | hi << 32
        return out

    async def stat(self, index: int, real: bool) -> tuple[int, int]:
        await self.write_many([(address("STAT_SEL"), index | (real << 15))])
        await ClockCycles(self.dut.clk, STAT_LATCH_CYCLES)
        words = [await self.read(address("STAT", k)) for k in range(4)]
        return words[0] | words[1] << 32, words[2] | words[3] << 32

    # -- packet stream ------------------------------------------------------------------------
    async def drive(self, frames: list[bytes], idle: float, ports=None) -> None:
        """Send ``frames`` (received on ``ports``: IngressPort per frame, default CLIENT)."""
        dut, lanes, w = self.dut, self.p.lanes, self.p.width
        for n, frame in enumerate(frames):
            chunks = [frame[k:k + lanes] for k in range(0, len(frame), lanes)]
            for k, chunk in enumerate(chunks):
                while self.rng.random() < idle:
                    await FallingEdge(dut.clk)
                    dut.i__valid.value = 0
                await FallingEdge(dut.clk)
                if ports:       # (only the core has the port input; the MAC testbench shares this)
                    dut.i_port.value = int(ports[n])
                payload = (int.from_bytes(chunk, "little") | ((1 << len(chunk)) - 1) << w
                           | int(k == 0) << (w + lanes) | int(k == len(chunks) - 1) << (w + lanes + 1))
                dut.i__payload.value = payload
                dut.i__valid.value = 1
                await ReadOnly()
                stalled = 0
                while not dut.i__ready.value:
                    self.input_stalls += 1
                    stalled += 1
                    assert stalled < STALL_LIMIT, (
                        f"input refused for {STALL_LIMIT} cycles: the pipeline is hung "
                        f"({len(self.outputs)} frames out so far)")
                    await FallingEdge(dut.clk)
                    await ReadOnly()
                if k == 0:
                    self.in_times.append(self.cycles)
        await FallingEdge(dut.clk)
        dut.i__valid.value = 0
        if ports:
            dut.i_port.value = 0

    async def monitor(self) -> None:
        """Collect output frames; ``self.backpressure`` is the chance ready is low in a cycle."""
        dut, lanes, w = self.dut, self.p.lanes, self.p.width
        current = bytearray()
        while True:
            await FallingEdge(dut.clk)
            self.cycles += 1
            dut.o__ready.value = int(self.rng.random() >= self.backpressure)
            await ReadOnly()
            if not (dut.o__valid.value and dut.o__ready.value):
                continue
            payload = dut.o__payload.value.to_unsigned()
            data = payload & ((1 << w) - 1)
            keep = payload >> w & ((1 << lanes) - 1)
            first = payload >> (w + lanes) & 1
            last = payload >> (w + lanes + 1) & 1
            port = payload >> (w + lanes + 2) & 3
            if bool(first) != (len(current) == 0):
                self.errors.append(f"output frame {len(self.outputs)}: first flag {first} wrong")
            if keep & (keep + 1) or (not last and keep != (1 << lanes) - 1):
                self.errors.append(f"output frame {len(self.outputs)}: bad keep {keep:#x}")
            if not current:
                first_cycle = self.cycles
            current += data.to_bytes(lanes, "little")[:bin(keep).count("1")]
            if last:
                self.outputs.append((EgressPort(port), bytes(current)))
                self.out_times.append((first_cycle, self.cycles))
                current = bytearray()

    async def wait_outputs(self, count: int, budget_cycles: int) -> None:
        for _ in range(budget_cycles):
            if len(self.outputs) >= count:
                break
            await RisingEdge(self.dut.clk)
        for _ in range(100):  # nothing more may come out
            await RisingEdge(self.dut.clk)


def compare_frames(got: list, want: list) -> list[str]:
    problems = []
    if len(got) != len(want):
        problems.append(f"{len(got)} frames out, model expects {len(want)}")
    for k, (g, e) in enumerate(zip(got, want)):
        if g != e:
            problems.append(f"frame {k}: got port {g[0].name} {g[1][:48].hex()}..., "
                            f"model port {e[0].name} {e[1][:48].hex()}...")
            if len(problems) > 5:
                break
    return problems


async def send_and_check(tb: CoreBench, model: Appliance, frames: list[bytes], label: str,
                         idle: float = 0.3, during=None, ports=None) -> None:
    """Send frames, wait for the model's outputs, compare frames and all counters.

    ``during``: an async function run on the register bus while the frames go in;
    ``ports``: the IngressPort of each frame (default: all from the client side).
    """
    start = len(tb.outputs)
    want = model.process(frames, ports)
    drive = cocotb.start_soon(tb.drive(frames, idle, ports))
    if during is not None:
        await during()
    await drive
    # generous for the random gaps, but a lost frame fails in seconds, not hours
    budget = 8 * sum(len(f) // tb.p.lanes + 4 for f in frames) + 5000
    await tb.wait_outputs(start + len(want.outputs), budget)
    problems = compare_frames(tb.outputs[start:], want.outputs) + tb.errors
    got_counters = await tb.counters()
    for name in COUNTERS:
        if got_counters[name] != want.counters[name]:
            problems.append(f"counter {name}: rtl {got_counters[name]}, model {want.counters[name]}")
    for vip in range(tb.p.n_vips):
        expect = want.vip_stats.get(vip, (0, 0))
        got = await tb.stat(vip, real=False)
        if got != expect:
            problems.append(f"VIP {vip} packets/bytes: rtl {got}, model {expect}")
    for real in sorted(model.config.reals):
        expect = want.real_stats.get(real, (0, 0))
        got = await tb.stat(real, real=True)
        if got != expect:
            problems.append(f"real {real} packets/bytes: rtl {got}, model {expect}")
    c = want.counters
    assert c["RX_FRAMES"] == (c["TX_SERVER"] + c["TX_CLIENT"] + c["TX_HOST"]
                              + sum(v for k, v in c.items() if k.startswith("DROP_")))
    tb.dut._log.info("%s: %d frames in, %d out, %d dropped, %d cycles", label, len(frames),
                     len(want.outputs), len(want.drops), tb.cycles)
    assert not problems, f"{label}: " + "; ".join(problems[:12])


def _seed() -> int:
    return int(os.environ.get("OPENSLB_SEED", "1"))


def _flows(default: int) -> int:
    return int(os.environ.get("OPENSLB_FLOWS", default))


async def _bench(dut, cfg: ApplianceConfig, check_reset: bool = False
                 ) -> tuple[CoreBench, Appliance]:
    tb = CoreBench(dut, cfg.params, _seed())
    await tb.start()
    cocotb.start_soon(tb.monitor())
    if check_reset:
        await _compare_rw_registers(tb, DeviceModel(cfg.params), "after reset")
    await tb.write_many(program(cfg))
    assert await tb.read(address("ID")) == ID_MAGIC
    assert await tb.read(address("PARAMS")) == params_word(cfg.params)
    return tb, Appliance(cfg)


def _config(miss_to_host: bool = False) -> ApplianceConfig:
    cfg = traffic.test_config()
    cfg.params = _params()
    cfg.miss_to_host = miss_to_host
    cfg.conn.tick_cycles = 0     # connection time moves only by CONN_TICK, as in the model
    return cfg


@cocotb.test()
async def scenario(dut) -> None:
    """Run the scenario named by OPENSLB_SCENARIO."""
    name = os.environ.get("OPENSLB_SCENARIO", "mixed")
    await SCENARIOS[name](dut)


async def _compare_rw_registers(tb: CoreBench, device: DeviceModel, label: str) -> None:
    words = [reg.offset + k for reg in registers(tb.p) if reg.access is Access.RW
             for k in range(reg.count)]
    problems = [f"{a:#x}: rtl {got:#x}, model {device.read(a):#x}" for a in words
                if (got := await tb.read(a)) != device.read(a)]
    assert not problems, f"read-back {label}: " + "; ".join(problems)


async def _check_read_back(tb: CoreBench, cfg: ApplianceConfig) -> None:
    """Every read-write register reads back what the device model holds after the same writes
    (the last written value, only its fields' bits, or its reset value if never written; the
    reset values alone are compared before the first write, ``_bench(check_reset=True)``); then
    all ones written to every committed one (staged only: no COMMIT follows) read back as its
    fields' mask, and the configuration's values are written back."""
    writes = program(cfg)
    device = DeviceModel(cfg.params)
    for addr, value in writes:
        device.write(addr, value)
    await _compare_rw_registers(tb, device, "after programming")
    committed = [reg for reg in registers(cfg.params) if reg.committed]
    await tb.write_many([(reg.offset + k, 0xFFFFFFFF) for reg in committed
                         for k in range(reg.count)])
    for reg in committed:
        for k in range(reg.count):
            got = await tb.read(reg.offset + k)
            assert got == reg.mask, f"{reg.name}[{k}]: all ones read back {got:#x}"
    staged = {reg.offset + k for reg in committed for k in range(reg.count)}
    await tb.write_many([(a, v) for a, v in writes if a in staged])


async def mixed(dut) -> None:
    """Thousands of frames of every kind, both miss rules, checked frame by frame (and every
    read-write register read back)."""
    p = _params()
    flows = _flows(2000 if p.width >= 32 else 300)
    cfg = _config()
    tb, model = await _bench(dut, cfg, check_reset=True)
    await _check_read_back(tb, cfg)
    frames = traffic.mixed_traffic(cfg, flows, _seed())
    await send_and_check(tb, model, frames, "miss rule drop")
    # The miss rule is a register: switch it and send more.
    cfg.miss_to_host = True
    await tb.write_many(program(cfg))  # CTRL is committed: a whole apply, tables and all
    model.miss_to_host = True
    await send_and_check(tb, model, traffic.mixed_traffic(cfg, flows // 4, _seed() + 1),
                         "miss rule host")
    # Heavy output backpressure with back-to-back short VIP frames: the decision queue and the
    # lookup queue fill up, the credit holds the input, nothing may be lost or reordered.
    tb.backpressure = 0.85
    await send_and_check(tb, model, _vip_frames(cfg, 64, 300) + traffic.mixed_traffic(
        cfg, flows // 8, _seed() + 2), "heavy backpressure", idle=0.0)
    tb.backpressure = 0.3


async def health(dut) -> None:
    """A real marked down stops receiving traffic at once (rehash / backup / NO_REAL)."""
    cfg = _config()
    tb, model = await _bench(dut, cfg)
    rng_seed = _seed()
    flows = _flows(300)
    await send_and_check(tb, model, traffic.client_flows(cfg, flows, random.Random(rng_seed)),
                         "all up")
    for down in ([1], [1, 2], [1, 2, 4], [5, 6, 7], [5, 6, 7, 8]):
        mask = cfg.health_mask()
        for r in down:
            mask &= ~(1 << r)
        await tb.write_many(health_writes(mask, cfg.params.n_reals))
        model.health = mask
        before = {k: v for k, v in model.real_stats.items()}
        await send_and_check(tb, model,
                             traffic.client_flows(cfg, flows, random.Random(rng_seed + len(down))),
                             f"down {down}")
        for r in down:
            assert model.real_stats.get(r) == before.get(r), f"real {r} got traffic while down"


async def commit(dut) -> None:
    """Shadow tables are invisible until COMMIT, which switches all groups at once."""
    cfg = _config()
    tb, model = await _bench(dut, cfg)
    rng = random.Random(_seed())
    await send_and_check(tb, model, traffic.client_flows(cfg, 200, rng), "initial tables")
    new = _config()
    new.reals[2].enabled = False
    new.reals[5].weight = 10
    writes = []
    for g in sorted(new.groups):
        writes += table_writes(g, new.table(g), new.params.index_bits)
    await tb.write_many(writes)
    await send_and_check(tb, model, traffic.client_flows(cfg, 200, rng), "shadow written")
    await tb.write_many([(address("COMMIT"), 1)])
    model.tables = {g: new.table(g) for g in new.groups}
    await send_and_check(tb, model, traffic.client_flows(cfg, 200, rng), "after commit")
    assert await tb.read(address("ACTIVE_BANK")) == 0

    # a delta upload: single slots by TABLE_ENTRY, read back from both banks while traffic runs
    group = 1
    delta = {k: rng.choice(new.groups[group].reals) for k in rng.sample(range(new.table_size), 20)}
    await tb.write_many([(address("TABLE_ENTRY"), pack_fields(
        "TABLE_ENTRY", cfg.params, real=real, index=k, group=group)) for k, real in delta.items()])
    shadow = model.tables[group].copy()   # the shadow bank now holds the pre-commit tables...
    old_active = _config().table(group)
    shadow[:] = old_active                # ...of the first configuration, plus the delta
    for k, real in delta.items():
        shadow[k] = real
    async def read_back() -> None:
        for k in list(delta)[:8] + [0, new.table_size - 1]:
            for bank, want in ((0, shadow[k]), (1, model.tables[group][k])):
                await tb.write_many([(address("TABLE_RADDR"), pack_fields(
                    "TABLE_RADDR", cfg.params, index=k, group=group, bank=bank))])
                for _ in range(200):
                    slot = unpack_register("TABLE_RDATA", await tb.read(address("TABLE_RDATA")),
                                           cfg.params)
                    if slot["valid"]:
                        break
                assert slot["valid"], f"TABLE_RDATA never became valid for slot {k}"
                assert slot["real"] == int(want), \
                    f"slot {k} bank {bank}: {slot['real']} != {want}"

    await send_and_check(tb, model, traffic.client_flows(cfg, 100, rng), "reading back",
                         during=read_back)

    # committed registers: a staged write reads back at once but reaches traffic at COMMIT
    await tb.write_many([(address("VIP_SERVICE", 0), 0)])
    assert await tb.read(address("VIP_SERVICE", 0)) == 0
    await send_and_check(tb, model, traffic.client_flows(cfg, 50, rng), "VIP disable staged")
    await tb.write_many([(address("COMMIT"), 1)])
    # COMMIT also swaps the banks: the shadow (first tables + the delta) becomes active
    model.tables = {g: _config().table(g) for g in new.groups}
    model.tables[group] = shadow
    model.vip_table = [v for v in model.vip_table if v[0] != 0]
    model.arp_targets = {model.own_ip} | {ip for _, ip, _, _ in model.vip_table}
    await send_and_check(tb, model, traffic.client_flows(cfg, 50, rng), "VIP disabled")


async def run(dut) -> None:
    """``make run``: the default configuration and a client traffic mix; results to a file."""
    from openslb.model.config import VirtualService, default_config
    cfg = default_config()
    cfg.params = _params()
    # and a NAT service beside the DSR one, for the NAT figures
    cfg.virts[1] = VirtualService(1, "10.0.0.102", PROTO_TCP, 80, group=1, mode=Mode.NAT,
                                  rport=8080)
    cfg.client_gw_mac = traffic.GW_MAC
    cfg.conn.tick_cycles = 0
    tb, model = await _bench(dut, cfg)
    frames = traffic.mixed_traffic(cfg, _flows(400), _seed())
    await send_and_check(tb, model, frames, "make run", idle=0.1)
    result = {
        "frames_in": len(frames),
        "outputs": [(int(port), frame.hex()) for port, frame in tb.outputs],
        "counters": await tb.counters(),
        "reals": {r: await tb.stat(r, real=True) for r in sorted(cfg.reals)},
        "vips": {v: await tb.stat(v, real=False) for v in sorted(cfg.virts)},
        "cycles": tb.cycles,
        "model_agrees": True,   # send_and_check raised otherwise
    }
    if "OPENSLB_OUT" in os.environ:
        Path(os.environ["OPENSLB_OUT"]).write_text(json.dumps(result))


def _vip_frames(cfg: ApplianceConfig, size: int, n: int, virt: int = 0,
                flags: str = "S") -> list[bytes]:
    """``n`` distinct-flow TCP frames of exactly ``size`` bytes to VIP entry ``virt``."""
    from scapy.layers.inet import TCP
    from scapy.packet import Raw
    v = cfg.virts[virt]
    out = []
    for k in range(n):
        pkt = (Ether(src=traffic.CLIENT_MAC, dst=cfg.own_mac)
               / IP(src=f"192.168.{k // 250}.{k % 250 + 1}", dst=v.vip)
               / TCP(sport=10000 + k, dport=v.port, flags=flags))
        out.append(bytes(pkt / Raw(bytes(size - len(pkt)))))
    return out


def _return_frames(cfg: ApplianceConfig, model: Appliance, size: int, n: int) -> list[bytes]:
    """The reals' answers to the first ``n`` flows of :func:`_vip_frames` to the NAT entry 1
    (as the model placed them), ``size`` bytes each."""
    from scapy.layers.inet import TCP
    from scapy.packet import Raw
    out = []
    for k in range(n):
        client = f"192.168.{k // 250}.{k % 250 + 1}"
        look = model.conn.lookup(model._toeplitz(ip_int(client), 0, 10000 + k, 0), udp=False,
                                 nat=True, ret=True)
        if look.hit_way is None:      # (a flow the table could not learn: no answer)
            continue
        rip = str(ipaddress.IPv4Address(model.real_ips[model.conn.entry(look).real]))
        pkt = (Ether(dst=cfg.own_mac) / IP(src=rip, dst=client)
               / TCP(sport=cfg.virts[1].rport, dport=10000 + k, flags="A"))
        out.append(bytes(pkt / Raw(bytes(size - len(pkt)))))
    return out


async def bench(dut) -> None:
    """Latency of one frame into an idle core; cycles per frame at saturation (no idle gaps,
    output always ready) for 64- and 1500-byte frames.  Results to OPENSLB_OUT (JSON)."""
    from openslb.model.config import VirtualService, default_config
    cfg = default_config()
    cfg.params = _params()
    # and a NAT service beside the DSR one, for the NAT figures
    cfg.virts[1] = VirtualService(1, "10.0.0.102", PROTO_TCP, 80, group=1, mode=Mode.NAT,
                                  rport=8080)
    cfg.client_gw_mac = traffic.GW_MAC
    cfg.conn.tick_cycles = 0
    tb, model = await _bench(dut, cfg)
    tb.backpressure = 0.0
    results: dict[str, float] = {}
    # latency: one 64-byte frame, idle core
    await send_and_check(tb, model, _vip_frames(cfg, 64, 1), "latency", idle=0.0)
    results["latency_cycles"] = tb.out_times[-1][0] - tb.in_times[-1]
    for size in (64, 1500):
        frames = _vip_frames(cfg, size, 400 if size == 64 else 60)
        first_out = len(tb.outputs)
        stalls = tb.input_stalls
        await send_and_check(tb, model, frames, f"saturation {size}B", idle=0.0)
        span = tb.out_times[-1][1] - tb.out_times[first_out][0] + 1
        results[f"cycles_per_packet_{size}B"] = round(span / len(frames), 3)
        results[f"input_stall_cycles_{size}B"] = tb.input_stalls - stalls
    # NAT: one frame's latency, then NAT and reverse-NAT frames at saturation (64 bytes)
    await send_and_check(tb, model, _vip_frames(cfg, 64, 1, virt=1, flags="A"), "NAT latency",
                         idle=0.0)
    results["nat_latency_cycles"] = tb.out_times[-1][0] - tb.in_times[-1]
    n = 400
    for label, frames, ports in (
            ("nat", lambda: _vip_frames(cfg, 64, n, virt=1), None),
            ("rnat", lambda: _return_frames(cfg, model, 64, n), [IngressPort.SERVER] * n)):
        frames = frames()
        first_out = len(tb.outputs)
        await send_and_check(tb, model, frames, f"{label} saturation 64B", idle=0.0,
                             ports=ports)
        span = tb.out_times[-1][1] - tb.out_times[first_out][0] + 1
        results[f"{label}_cycles_per_packet_64B"] = round(span / len(frames), 3)
    Path(os.environ["OPENSLB_OUT"]).write_text(json.dumps(results))


def _conn_frames(cfg: ApplianceConfig, conns: list[tuple[str, int, int]], flags: str,
                 size: int = 0) -> list[bytes]:
    """One frame per connection ``(client ip, client port, virt)``: TCP with ``flags`` (UDP for
    a UDP service), ``size`` bytes of payload."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    out = []
    for src, sport, k in conns:
        v = cfg.virts[k]
        dport = v.port if v.port is not None else 5353
        l4 = (UDP(sport=sport, dport=dport) if v.proto == PROTO_UDP
              else TCP(sport=sport, dport=dport, flags=flags))
        out.append(bytes(Ether(src=traffic.CLIENT_MAC, dst=cfg.own_mac)
                         / IP(src=src, dst=v.vip) / l4 / Raw(bytes(size))))
    return out


def _connections(rng: random.Random, n: int, virts=(0, 2, 1)) -> list[tuple[str, int, int]]:
    return [(f"172.{16 + rng.randrange(16)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
             rng.randrange(1024, 65536), virts[k % len(virts)]) for k in range(n)]


def _reals_of(model: Appliance, frames: list[bytes]) -> list[int | None]:
    """What the model (and so the RTL, which the scoreboard holds to it) does with ``frames``."""
    return [d.real for d in model.process(frames).decisions]


async def _send_reals(tb: CoreBench, model: Appliance, frames: list[bytes], label: str,
                      idle: float = 0.2) -> list[int | None]:
    """Send ``frames`` through the RTL and the model (scoreboard-checked); the model's reals."""
    probe = copy.deepcopy(model)
    reals = _reals_of(probe, frames)
    await send_and_check(tb, model, frames, label, idle=idle)
    return reals


async def _tick(tb: CoreBench, model: Appliance, ticks: int) -> None:
    await tb.write_many([(address("CONN_TICK"), ticks)])
    model.advance(ticks)
    assert await tb.read(address("CONN_NOW")) == model.conn.now


async def _apply(tb: CoreBench, model: Appliance, cfg: ApplianceConfig) -> None:
    """A whole apply (every table re-uploaded, one COMMIT), mirrored in the model."""
    await tb.write_many(program(cfg))
    model.tables = {g: cfg.table(g) for g in cfg.groups}
    model.group_metric = {g.index: Metric(g.metric) for g in cfg.groups.values()}
    model.real_limits = {r.index: (r.maxcon, r.weight) for r in cfg.reals.values()}
    model.rr_pointer = {}        # the COMMIT puts the round-robin pointers back on slot 0
    model.members = {g: cfg.members(g) for g in cfg.groups}
    model.conn.timeouts = dict(cfg.conn.timeouts())
    model.persist.timeouts = {kind: cfg.conn.pbind for kind in model.persist.timeouts}


async def conn(dut) -> None:
    """Connection table: established connections keep their real through pool changes, drain,
    timeouts in ticks, FIN/RST, the scrubber across a stamp wrap, flush, a SYN flood of 10x the
    table; every frame and counter against the model."""
    cfg = _config()
    cfg.reals[3].up = True
    tb, model = await _bench(dut, cfg)
    rng = random.Random(_seed())
    flows = cfg.params.conn_flows
    conns = _connections(rng, flows // 3)
    first = await _send_reals(tb, model, _conn_frames(cfg, conns, "S", 10), "open: SYN")
    await send_and_check(tb, model, _conn_frames(cfg, conns, "A"), "open: ACK")
    held = [k for k, (c, r) in enumerate(zip(conns, first)) if r is not None]
    assert model.counters["CONN_NEW"] > 0.9 * len(conns), "too few connections learned"
    # a flow learned by one frame is seen by the very next one (same bucket, back to back)
    pairs = _connections(rng, 40, (0,))
    await send_and_check(tb, model, [f for c in pairs for f in _conn_frames(cfg, [c], "S")
                                     + _conn_frames(cfg, [c], "A")], "back to back", idle=0.0)

    # pool change: a real drained (disabled), weights changed, a real added to a group
    cfg.reals[2].enabled = False
    cfg.reals[5].weight = 9
    cfg.groups[1].reals.append(8)
    await _apply(tb, model, cfg)
    hits = model.counters["CONN_HIT"]
    data = await _send_reals(tb, model, _conn_frames(cfg, conns, "PA", 100), "after pool change")
    kept = sum(data[k] == first[k] for k in held)
    learned = model.counters["CONN_HIT"] - hits
    assert learned > 0.9 * len(conns), "too few connections were established"
    assert kept >= learned, f"only {kept} of {learned} established connections kept their real"
    fresh = await _send_reals(tb, model, _conn_frames(cfg, _connections(rng, 60, (0,)), "S"),
                              "new connections")
    assert 2 not in fresh, "a drained real got a new connection"

    # timeouts in ticks: FIN shortens a connection's life, ticks age entries out
    cfg.conn.syn, cfg.conn.open, cfg.conn.closing, cfg.conn.udp = 4, 40, 2, 20
    await _apply(tb, model, cfg)
    closing = conns[:30]
    await send_and_check(tb, model, _conn_frames(cfg, closing, "FA"), "FIN")
    await _tick(tb, model, 3)
    await send_and_check(tb, model, _conn_frames(cfg, conns, "A"), "closing ones gone")
    await _tick(tb, model, 21)
    await send_and_check(tb, model, _conn_frames(cfg, conns, "A"), "UDP ones gone")
    # the scrubber clears dead entries before their 12-bit stamps wrap: 4098 ticks on, an
    # uncleared entry would look 2 ticks old again
    await _tick(tb, model, 41)
    await ClockCycles(dut.clk, 8 * cfg.params.conn_buckets)
    for step in (1000, 1000, 1000, 4098 - 3041):
        await _tick(tb, model, step)
        await ClockCycles(dut.clk, 8 * cfg.params.conn_buckets)
    assert model.conn.flows() == 0
    await send_and_check(tb, model, _conn_frames(cfg, conns, "A"), "after a stamp wrap")

    # flush
    await send_and_check(tb, model, _conn_frames(cfg, conns, "S"), "learn again")
    await tb.write_many([(address("CONN_FLUSH"), 1)])
    for _ in range(100):
        await ClockCycles(dut.clk, 2 * cfg.params.conn_buckets)
        if not await tb.read(address("CONN_STATUS")) & 1:
            break
    else:
        raise AssertionError("CONN_STATUS.flushing never cleared")
    model.flush_connections()
    await send_and_check(tb, model, _conn_frames(cfg, conns, "A"), "after flush")

    # SYN flood of 10x the table while established connections live
    cfg.conn.syn, cfg.conn.open, cfg.conn.closing, cfg.conn.udp = 30, 600, 10, 120
    await _apply(tb, model, cfg)
    established = conns[: flows // 4]
    await send_and_check(tb, model, _conn_frames(cfg, established, "S"), "flood: SYN")
    before = await _send_reals(tb, model, _conn_frames(cfg, established, "A"), "flood: ACK")
    hits_before = model.counters["CONN_HIT"]
    flood = _connections(rng, 10 * flows, (0,))
    await send_and_check(tb, model, _conn_frames(cfg, flood, "S"), "SYN flood", idle=0.0)
    assert model.counters["CONN_EVICT"] > 0 and model.counters["CONN_FULL"] > 0
    cfg.reals[6].weight = 1
    await _apply(tb, model, cfg)
    after = await _send_reals(tb, model, _conn_frames(cfg, established, "PA"), "after the flood")
    hits = model.counters["CONN_HIT"] - hits_before
    assert hits == sum(r is not None for r in before), "an established connection was evicted"
    assert after == before


async def pbind(dut) -> None:
    """Client-IP persistence: /24 bindings (per service, and per VIP) keep a client network's
    connections on one real, through a drain until they time out, away from a real that goes
    down; the bindings table overflows (counted); every frame and counter against the model."""
    cfg = _config()
    cfg.reals[3].up = True
    for v in cfg.virts.values():
        v.pbind = True
    cfg.virts[2].pbind_per_port = False
    cfg.conn.pmask = 24
    cfg.conn.pbind = 50
    tb, model = await _bench(dut, cfg)
    rng = random.Random(_seed())

    def client_conns(net: int, per_client: int, virt: int, spread_hosts: bool):
        return [(f"10.{net // 256}.{net % 256}.{1 + (j if spread_hosts else 0)}",
                 rng.randrange(1024, 65536), virt) for j in range(per_client)]

    clients = {(net, virt): client_conns(net, 6, virt, True)
               for net in range(12) for virt in (0, 1, 2)}
    frames = [f for conns in clients.values() for f in _conn_frames(cfg, conns, "S")]
    reals = await _send_reals(tb, model, frames, "clients open connections")
    k = 0
    for key, conns in clients.items():
        got = set(reals[k:k + len(conns)])
        k += len(conns)
        assert len(got) == 1, f"client {key} spread over reals {got}"
    # one binding per client prefix and service
    prefixes = {(v, ip_int(src) & pbind_prefix_mask(cfg.conn.pmask // 8))
                for conns in clients.values() for src, _, v in conns}
    assert model.counters["PBIND_NEW"] == len(prefixes)

    # drain the real of a bound client: it keeps that client until the binding times out
    (net, virt), conns = next(iter(clients.items()))
    bound = reals[0]
    cfg.reals[bound].enabled = False
    await _apply(tb, model, cfg)
    more = client_conns(net, 6, virt, False)
    assert set(await _send_reals(tb, model, _conn_frames(cfg, more, "S"), "drained, bound")) == {bound}
    await _tick(tb, model, 51)
    later = client_conns(net, 6, virt, False)
    assert bound not in await _send_reals(tb, model, _conn_frames(cfg, later, "S"), "binding gone")
    cfg.reals[bound].enabled = True
    await _apply(tb, model, cfg)

    # a real that goes down: its bound clients move (and stay together)
    await send_and_check(tb, model, frames, "refresh")
    victim = reals[len(clients[(0, 0)])]
    await tb.write_many(health_writes(cfg.health_mask() & ~(1 << victim), cfg.params.n_reals))
    model.health = cfg.health_mask() & ~(1 << victim)
    fresh = [f for conns in clients.values()
             for f in _conn_frames(cfg, [(s, rng.randrange(1024, 65536), v) for s, _, v in conns], "S")]
    assert victim not in await _send_reals(tb, model, fresh, "bound real down")

    # more clients than bindings: counted as PBIND_FULL, their connections still forwarded
    crowd = [c for net in range(100, 100 + 4 * cfg.params.pbind_buckets * cfg.params.conn_ways)
             for c in client_conns(net, 1, 0, False)]
    await send_and_check(tb, model, _conn_frames(cfg, crowd, "S"), "bindings full", idle=0.0)
    assert model.counters["PBIND_FULL"] > 0


async def conn_bench(dut) -> None:
    """Connection-table figures (``make bench``, conntable.json): latency and cycles per 64-byte
    frame with every frame tracked, new flows learned per cycle at saturation, and the share of
    established connections still on their real after a SYN flood of 10x the table."""
    from openslb.model.config import default_config
    cfg = default_config()
    cfg.params = _params()
    cfg.conn.tick_cycles = 0
    tb, model = await _bench(dut, cfg)
    tb.backpressure = 0.0
    rng = random.Random(_seed())
    results: dict[str, float] = {}
    await send_and_check(tb, model, _vip_frames(cfg, 64, 1), "latency", idle=0.0)
    results["latency_cycles"] = tb.out_times[-1][0] - tb.in_times[-1]
    # saturation: back-to-back 64-byte SYNs of new flows, every one learned
    syns = _conn_frames(cfg, _connections(rng, 400, (0,)), "S", 10)
    first_out, new = len(tb.outputs), model.counters["CONN_NEW"]
    await send_and_check(tb, model, syns, "saturation", idle=0.0)
    span = tb.out_times[-1][1] - tb.out_times[first_out][0] + 1
    results["cycles_per_packet_64B"] = round(span / len(syns), 3)
    results["new_flows_per_cycle"] = round((model.counters["CONN_NEW"] - new) / span, 4)
    # established connections (half the table), then a SYN flood of 10x the table
    flows = cfg.params.conn_flows
    established = _connections(rng, flows // 2, (0,))
    await send_and_check(tb, model, _conn_frames(cfg, established, "S"), "establish: SYN")
    hits = model.counters["CONN_HIT"]
    before = await _send_reals(tb, model, _conn_frames(cfg, established, "A"), "establish: ACK")
    held = model.counters["CONN_HIT"] - hits
    flood = _connections(rng, 10 * flows, (0,))
    spans = []
    for k in range(0, len(flood), 4096):      # in slices, so the model keeps pace in memory
        first_out = len(tb.outputs)
        await send_and_check(tb, model, _conn_frames(cfg, flood[k:k + 4096], "S", 10),
                             f"SYN flood {k // 4096}", idle=0.0)
        spans.append(tb.out_times[-1][1] - tb.out_times[first_out][0] + 1)
    # a long saturation (the scrubbers take a cycle when they have starved 4096 cycles)
    results["cycles_per_packet_64B_long_run"] = round(sum(spans) / len(flood), 3)
    hits = model.counters["CONN_HIT"]
    after = await _send_reals(tb, model, _conn_frames(cfg, established, "PA"), "after the flood")
    kept = model.counters["CONN_HIT"] - hits
    results.update({
        "established": held,
        "syn_flood_frames": len(flood),
        "established_kept_under_syn_flood": round(kept / held, 4),
        "established_same_real": sum(a == b for a, b in zip(after, before) if a is not None),
        "flood_evictions": model.counters["CONN_EVICT"],
        "flood_not_learned_full": model.counters["CONN_FULL"],
    })
    Path(os.environ["OPENSLB_OUT"]).write_text(json.dumps(results))


async def nat(dut) -> None:
    """NAT and reverse NAT: client flows to DSR and NAT services with the reals' answers from
    the server side (IPv4 options, VLAN tags, odd lengths, UDP without a checksum, client ports
    reused across VIPs, return traffic of no connection, NAT fragments, the reals' ARP for their
    gateway), every frame and counter against the model and every checksum verified by scapy;
    then the same at line rate with no gaps."""
    cfg = _config()
    nat_cfg = traffic.nat_config()
    cfg.virts, cfg.client_gw_mac = nat_cfg.virts, nat_cfg.client_gw_mac
    tb, model = await _bench(dut, cfg)
    tb.backpressure = 0.2
    frames, ports = traffic.nat_traffic(cfg, _flows(300), _seed(), copy.deepcopy(model))
    await send_and_check(tb, model, frames, "NAT, random gaps", ports=ports)
    tb.backpressure = 0.0
    frames, ports = traffic.nat_traffic(cfg, _flows(300) // 2, _seed() + 1, copy.deepcopy(model))
    await send_and_check(tb, model, frames, "NAT, back to back", idle=0.0, ports=ports)
    assert model.counters["TX_RNAT"] > 100 and model.counters["DROP_NO_CONN"] > 0
    checked = 0
    for port, frame in tb.outputs:
        if port != EgressPort.HOST and Ether(frame).haslayer(IP):
            assert traffic.checksums_ok(frame), f"bad checksum: {frame.hex()}"
            checked += 1
    dut._log.info("nat: %d output frames with valid IPv4/TCP/UDP checksums", checked)


async def _check_conns(tb: CoreBench, model: Appliance, label: str) -> None:
    """REAL_CONNS of every configured real against the model's live connections (call it once
    the scrubber has walked the table since the last tick)."""
    problems = []
    for real in sorted(model.config.reals):
        await tb.write_many([(address("REAL_SEL"), real)])
        await ClockCycles(tb.dut.clk, 2)
        word = await tb.read(address("REAL_CONNS"))
        want = pack_fields("REAL_CONNS", conns=model.conn.conns(real), full=int(model.full(real)))
        if word != want:
            problems.append(f"real {real}: rtl {unpack_register('REAL_CONNS', word)}, "
                            f"model {unpack_register('REAL_CONNS', want)}")
    assert not problems, f"{label}: " + "; ".join(problems)


async def _scrubbed(tb: CoreBench) -> None:
    """Wait for the scrubber to walk the whole table (idle: a bucket per 6 cycles at most,
    with room for the count decrements)."""
    await ClockCycles(tb.dut.clk, 12 * tb.p.conn_buckets + 200)


async def metrics(dut) -> None:
    """Connection-aware metrics: weighted leastconns (group 1), roundrobin (group 2), maxcon
    with overflow to the backup and MAXCON drops, a binding to a full real, connections that end
    and free their real's room, a real that goes down, a metric change; every frame and counter
    against the model, and every real's connection count (REAL_CONNS) after the scrubber."""
    cfg = _config()
    cfg.reals[3].up = True
    cfg.reals[4].weight = 3
    cfg.groups[1].metric = Metric.LEASTCONNS
    cfg.groups[2].metric = Metric.ROUNDROBIN
    cfg.reals[4].maxcon = 12
    cfg.reals[5].maxcon = 15
    cfg.reals[6].maxcon = 8
    cfg.reals[7].maxcon = 25
    cfg.reals[8].maxcon = 5          # group 2's backup: its overflow
    cfg.virts[2].pbind = True        # TCP 443 → group 2, clients bound per /24
    cfg.conn.pmask = 24
    cfg.conn.closing = 2
    tb, model = await _bench(dut, cfg)
    rng = random.Random(_seed())
    # (fewer flows than the 256-flow table holds, so that every new flow is learned)
    conns = _connections(rng, 150)
    # clients of a few /24 networks to the pbind service
    conns += [(f"10.9.{net}.{host}", rng.randrange(1024, 65536), 2)
              for net in range(4) for host in range(1, 7)]
    rng.shuffle(conns)
    await send_and_check(tb, model, _conn_frames(cfg, conns, "S", 10), "new flows")
    assert model.counters["DROP_MAXCON"] > 0, "no real reached its limit"
    await _check_conns(tb, model, "after the new flows")
    # a decision sees the count of the flow just before it (back to back, no gaps)
    tb.backpressure = 0.0
    pairs = _connections(rng, 30, (0,))
    await send_and_check(tb, model, [f for c in pairs for f in _conn_frames(cfg, [c], "S")
                                     + _conn_frames(cfg, [c], "A")], "back to back", idle=0.0)
    tb.backpressure = 0.3
    await send_and_check(tb, model, _conn_frames(cfg, conns, "A"), "established")
    await _check_conns(tb, model, "established")

    # connections end: FIN/RST, then the closing timeout; the scrubber counts them down
    ending = conns[: len(conns) // 2]
    await send_and_check(tb, model, _conn_frames(cfg, ending, rng.choice(["FA", "R"])), "FIN")
    await _tick(tb, model, 3)
    await _scrubbed(tb)
    await _check_conns(tb, model, "after the closing timeout")
    await send_and_check(tb, model, _conn_frames(cfg, _connections(rng, 60), "S"),
                         "new flows into the room")
    # a real goes down: new flows avoid it, leastconns and roundrobin alike
    model.set_up(4, False)
    await tb.write_many(health_writes(model.health, cfg.params.n_reals))
    await send_and_check(tb, model, _conn_frames(cfg, _connections(rng, 40), "S"), "real 4 down")
    model.set_up(4, True)
    await tb.write_many(health_writes(model.health, cfg.params.n_reals))
    # metrics swap, limits change: the pointers restart, full bits follow the new limits at
    # once, with no connection moving: a real with room gets its count as its limit (full),
    # then a higher one (room again)
    cfg.groups[1].metric = Metric.ROUNDROBIN
    cfg.groups[2].metric = Metric.LEASTCONNS
    filled = next(r for r in sorted(cfg.reals)
                  if model.conn.conns(r) > 0 and not model.full(r) and cfg.reals[r].up)
    cfg.reals[filled].maxcon = model.conn.conns(filled)
    await _apply(tb, model, cfg)
    assert model.full(filled)
    await _check_conns(tb, model, "new limits")
    await send_and_check(tb, model, _conn_frames(cfg, _connections(rng, 80), "S"),
                         "after the swap")
    await _check_conns(tb, model, "after the swap")
    cfg.reals[filled].maxcon = model.conn.conns(filled) + 20
    await _apply(tb, model, cfg)
    assert not model.full(filled)
    await _check_conns(tb, model, "limit raised")
    await send_and_check(tb, model, _conn_frames(cfg, _connections(rng, 40), "S"),
                         "room again")
    await _check_conns(tb, model, "at the end")


async def stateless(dut) -> None:
    """The stateless profile (no connection table in the gateware), programmed as if it had one:
    every stateful feature switched on by its registers (what a firmware that ignored PARAMS
    would write).  The core must track nothing, and do what the register-level model of a
    stateless core does with the same writes: new flows hashed, no binding, no count, no limit,
    NAT services forwarded as DSR and their return traffic dropped as NO_CONN; every frame,
    counter and REAL_CONNS compared."""
    p = _params()
    assert not p.stateful, "the stateless scenario needs OPENSLB_PARAMS with stateful False"
    cfg = traffic.every_feature_config(p)
    # (the writes a stateful core would get: a stateless configuration refuses conn ena)
    full = copy.deepcopy(cfg)
    full.params = dataclasses.replace(p, stateful=True)
    writes = program(full)
    tb = CoreBench(dut, p, _seed())
    await tb.start()
    cocotb.start_soon(tb.monitor())
    await tb.write_many(writes)
    word = await tb.read(address("PARAMS"))
    assert word == params_word(p) and word >> 31 == 1, f"PARAMS {word:#x}: not stateless"
    device = DeviceModel(p)
    for addr, value in writes:
        device.write(addr, value)
    model = device.appliance
    model.config = cfg      # (the reals whose statistics are compared)
    await _compare_rw_registers(tb, device, "programmed as stateful")
    rng = random.Random(_seed())
    conns = _connections(rng, 200)
    frames = (_conn_frames(cfg, conns, "S", 10) + _conn_frames(cfg, conns, "A")
              + traffic.mixed_traffic(cfg, _flows(400), _seed()))
    await send_and_check(tb, model, frames, "stateful registers, stateless core")
    nat_frames, ports = traffic.nat_traffic(full, _flows(200), _seed() + 1, Appliance(full))
    await send_and_check(tb, model, nat_frames, "NAT on a stateless core", ports=ports)
    c = model.counters
    assert c["CONN_NEW"] == c["CONN_HIT"] == c["PBIND_NEW"] == c["PBIND_HIT"] == 0, \
        "the stateless model tracked a flow"
    assert c["DROP_NO_CONN"] > 0 and c["DROP_MAXCON"] == 0
    # the limits were written, and no real counts a connection or is full
    await _check_conns(tb, model, "stateless")
    # both maxcon reals took more new flows than their limits would have allowed
    taken = _reals_of(copy.deepcopy(model), _conn_frames(cfg, conns, "S"))
    assert taken.count(4) > 3 and taken.count(5) > 2, taken


SCENARIOS = {"stateless": stateless, "metrics": metrics, "mixed": mixed, "health": health, "commit": commit, "run": run, "bench": bench,
             "conn": conn, "pbind": pbind, "conn_bench": conn_bench, "nat": nat}
