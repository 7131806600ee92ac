"""Connection-aware metrics in the reference model: roundrobin, weighted leastconns, maxcon, and
the per-real connection counts they use."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from openslb.firmware.program import program
from openslb.firmware.regs import address
from openslb.hw import spec
from openslb.hw.spec import DropReason, Metric
from openslb.model.config import ConfigError, RealServer, default_config
from openslb.model.device import DeviceModel
from openslb.model.pipeline import Appliance
from openslb.sim import traffic


def frame(cfg, client: str, sport: int, flags: str = "S", vip: str = "10.0.0.100",
          dport: int = 80, udp: bool = False) -> bytes:
    l4 = UDP(sport=sport, dport=dport) if udp else TCP(sport=sport, dport=dport, flags=flags)
    return bytes(Ether(src=traffic.CLIENT_MAC, dst=cfg.own_mac) / IP(src=client, dst=vip) / l4)


def clients(n: int, seed: int = 1) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(f"172.16.{rng.randrange(256)}.{rng.randrange(1, 255)}", rng.randrange(1024, 65536))
            for _ in range(n)]


def config(metric: Metric, weights=(1, 1, 1, 1)):
    cfg = default_config(len(weights))
    for r, w in zip(cfg.reals.values(), weights):
        r.weight = w
    cfg.groups[1].metric = metric
    return cfg


def test_roundrobin_takes_the_table_in_order():
    cfg = config(Metric.ROUNDROBIN)
    model = Appliance(cfg)
    table = cfg.table(1)
    reals = [model.decide(frame(cfg, c, p)).real for c, p in clients(50)]
    assert reals == [int(table[k]) for k in range(50)]
    # a packet of no known flow (no SYN) follows the Maglev hash and leaves the pointer alone
    ack = frame(cfg, "10.9.9.9", 999, "A")
    assert model.decide(ack).real == int(table[spec.maglev_indices(
        model.hash_of(traffic_parse(ack)), cfg.table_size)[0]])
    assert model.rr_pointer[1] == 50
    # established connections keep their real, and do not move the pointer either
    for c, p in clients(50):
        model.decide(frame(cfg, c, p, "A"))
    assert model.rr_pointer[1] == 50


def traffic_parse(f: bytes):
    from openslb.model.pipeline import parse
    return parse(f)


def slots_of(model, cfg, f: bytes) -> list[int]:
    """The reals of a frame's two Maglev slots."""
    return [int(model.tables[1][i]) for i in spec.maglev_indices(
        model.hash_of(traffic_parse(f)), cfg.table_size)]


def test_roundrobin_spreads_by_weight_and_skips_a_down_real():
    cfg = config(Metric.ROUNDROBIN, (1, 2, 3, 2))
    cfg.reals[2].up = False
    model = Appliance(cfg)
    table = [int(r) for r in cfg.table(1)]
    got = [model.decide(frame(cfg, c, p)).real for c, p in clients(800)]
    # the documented rule: the pointer's slot if its real is up, else the next slot's (else a
    # drop); the pointer moves on past the slots tried
    want, k = [], 0
    for _ in range(800):
        first, second = table[k], table[(k + 1) % len(table)]
        want.append(first if first != 2 else second if second != 2 else None)
        k = (k + (1 if first != 2 else 2)) % len(table)
    assert got == want and model.rr_pointer[1] == k
    assert 2 not in got
    share = {r: got.count(r) / len(got) for r in (1, 3, 4)}
    # the table holds reals 1, 3, 4 as 1 : 3 : 2 (real 2's slots pass to the slot after)
    assert share[3] > share[4] > share[1] > 0.1


def test_roundrobin_pointer_restarts_at_a_commit():
    cfg = config(Metric.ROUNDROBIN)
    dev = DeviceModel()
    for addr, value in program(cfg):
        dev.write(addr, value)
    first = [d.real for d in dev.process([frame(cfg, c, p) for c, p in clients(7)]).decisions]
    for addr, value in program(cfg):     # the same configuration again, one COMMIT
        dev.write(addr, value)
    again = [d.real for d in dev.process([frame(cfg, c, p) for c, p in clients(7, 2)]).decisions]
    assert again == first


def test_leastconns_takes_the_less_loaded_of_the_two_slots():
    cfg = config(Metric.LEASTCONNS, (1, 1, 1, 3))
    model = Appliance(cfg)
    for c, p in clients(600):
        f = frame(cfg, c, p)
        slots = slots_of(model, cfg, f)
        load = {r: model.conn.conns(r) / cfg.reals[r].weight for r in slots}
        real = model.decide(f).real
        assert real in slots
        assert load[real] == min(load.values())
        if load[slots[0]] == load[slots[1]]:
            assert real == slots[0]      # a tie keeps the Maglev slot
    conns = {r: model.conn.conns(r) for r in cfg.reals}
    assert sum(conns.values()) == model.conn.flows() > 590
    # connections per weight come out even: far tighter than by hash alone
    per_weight = [conns[r] / cfg.reals[r].weight for r in cfg.reals]
    assert max(per_weight) - min(per_weight) <= 0.1 * max(per_weight), conns


def test_leastconns_counts_only_live_connections():
    cfg = config(Metric.LEASTCONNS)
    cfg.conn.closing = 2
    model = Appliance(cfg)
    flows = clients(200)
    model.process([frame(cfg, c, p) for c, p in flows])
    mine = [(c, p) for c, p in flows if model.conn.entry(model.conn.lookup(
        model.hash_of(traffic_parse(frame(cfg, c, p))), False)).real == 1]
    model.process([frame(cfg, c, p, "FA") for c, p in mine])
    assert model.conn.conns(1) == len(mine)
    model.advance(3)
    assert model.conn.conns(1) == 0
    # real 1 is now empty: every new flow whose two slots include it goes there
    for c, p in clients(30, 7):
        f = frame(cfg, c, p)
        slots = slots_of(model, cfg, f)
        before = model.conn.conns(1)
        real = model.decide(f).real
        if 1 in slots and before == 0:
            assert real == 1


def test_maxcon_skips_a_full_real_and_drops_when_all_are_full():
    cfg = config(Metric.HASH)
    for r in cfg.reals.values():
        r.maxcon = 10
    cfg.reals[4].maxcon = 0      # no limit
    model = Appliance(cfg)
    flows = clients(300)
    decided = []
    for c, p in flows:
        f = frame(cfg, c, p)
        slots = slots_of(model, cfg, f)
        room = [r for r in slots if not model.full(r)]
        spill = [r for r in (1, 2, 3, 4) if not model.full(r)]
        d = model.decide(f)
        decided.append(d)
        # a full real is passed over for the flow's other slot; with both full, the flow
        # spills over to the lowest-numbered real with room (real 4 has no limit)
        assert d.real == (room[0] if room else spill[0])
    for r in (1, 2, 3):
        assert model.conn.conns(r) == 10
        assert model.full(r)
    assert not model.full(4)
    assert all(d.real is not None for d in decided)
    # the established connections of a full real still pass
    assert all(model.decide(frame(cfg, c, p, "A")).real == d.real for (c, p), d in
               zip(flows, decided))
    # with real 4 down, every new flow is dropped: MAXCON (a real that is up was full) ...
    model.set_up(4, False)
    assert model.decide(frame(cfg, "10.1.1.1", 5555)).drop is DropReason.MAXCON
    assert model.counters["DROP_MAXCON"] == 1
    # ... and with every real down, NO_REAL
    for r in (1, 2, 3):
        model.set_up(r, False)
    assert model.decide(frame(cfg, "10.1.1.2", 5556)).drop is DropReason.NO_REAL


def test_maxcon_spills_over_the_group_then_to_the_backup_real():
    cfg = config(Metric.LEASTCONNS)
    cfg.reals[9] = RealServer(9, "02:00:00:00:01:09", "10.0.1.19", maxcon=5)
    cfg.groups[1].backup = 9
    for r in (1, 2, 3, 4):
        cfg.reals[r].maxcon = 4
    model = Appliance(cfg)
    got = [model.decide(frame(cfg, c, p)) for c, p in clients(100)]
    # the group fills up first (16 connections), then its backup (5)
    assert [d.real == 9 for d in got[:21]] == [False] * 16 + [True] * 5
    assert {r: model.conn.conns(r) for r in (1, 2, 3, 4, 9)} == {1: 4, 2: 4, 3: 4, 4: 4, 9: 5}
    assert model.counters["DROP_MAXCON"] == 100 - 21


def test_maxcon_frees_up_as_connections_end():
    cfg = config(Metric.ROUNDROBIN, (1, 1))
    cfg.reals[1].maxcon = cfg.reals[2].maxcon = 3
    cfg.conn.closing = 1
    model = Appliance(cfg)
    flows = clients(30)
    got = [model.decide(frame(cfg, c, p)) for c, p in flows]
    assert sum(d.real is not None for d in got) == 6
    assert model.counters["DROP_MAXCON"] == 24
    # two connections of real 1 end (RST); after the closing timeout real 1 takes two more
    ones = [f for f, d in zip(flows, got) if d.real == 1][:2]
    model.process([frame(cfg, c, p, "R") for c, p in ones])
    assert model.conn.conns(1) == 3
    model.advance(2)
    assert model.conn.conns(1) == 1
    more = [model.decide(frame(cfg, c, p)).real for c, p in clients(30, 9)]
    assert sorted(r for r in more if r is not None) == [1, 1]


def test_udp_datagrams_each_count_as_a_new_flow_until_learned():
    cfg = config(Metric.HASH)
    cfg.virts[1] = type(cfg.virts[0])(1, "10.0.0.100", spec.PROTO_UDP, 53, group=1)
    cfg.reals[1].maxcon = cfg.reals[2].maxcon = cfg.reals[3].maxcon = cfg.reals[4].maxcon = 1
    model = Appliance(cfg)
    first = model.decide(frame(cfg, "10.2.2.2", 4000, udp=True, dport=53))
    again = model.decide(frame(cfg, "10.2.2.2", 4000, udp=True, dport=53))
    # a UDP flow's own entry decides its later datagrams, whatever the limit
    assert first.real == again.real and model.conn.conns(first.real) == 1


def test_pbind_binding_to_a_full_real_is_passed_over():
    cfg = config(Metric.HASH)
    cfg.virts[0].pbind = True
    cfg.conn.pmask = 24
    cfg.reals[1].maxcon = cfg.reals[2].maxcon = cfg.reals[3].maxcon = cfg.reals[4].maxcon = 2
    model = Appliance(cfg)
    got = [model.decide(frame(cfg, "10.3.3.3", 1000 + k)).real for k in range(6)]
    # the client's binding keeps it on one real until that real is full, then it moves on
    assert got[0] == got[1] and got[2] != got[0] and got[3] == got[2]
    assert got[4] not in (got[0], got[2])


def test_metrics_and_maxcon_need_the_connection_table():
    cfg = config(Metric.LEASTCONNS)
    cfg.conn.enabled = False
    with pytest.raises(ConfigError, match="group 1: metric leastconns needs the connection"):
        cfg.validate()
    cfg = config(Metric.HASH)
    cfg.conn.enabled = False
    cfg.reals[2].maxcon = 5
    with pytest.raises(ConfigError, match="real 2: maxcon needs the connection table"):
        cfg.validate()
    cfg.conn.enabled = True
    cfg.reals[2].maxcon = 1 << spec.MAXCON_BITS
    with pytest.raises(ConfigError, match="real 2: maxcon"):
        cfg.validate()


def test_device_model_shows_connections_and_limits():
    cfg = config(Metric.HASH)
    cfg.reals[3].maxcon = 4
    cfg.reals[5] = RealServer(5, "02:00:00:00:01:05", "10.0.1.15")   # in no group
    dev = DeviceModel()
    for addr, value in program(cfg):
        dev.write(addr, value)
    dev.process([frame(cfg, c, p) for c, p in clients(100)])
    for r in range(1, 6):
        dev.write(address("REAL_SEL"), r)
        word = dev.read(address("REAL_CONNS"))
        assert word & 0xFFFFF == dev.appliance.conn.conns(r)
        assert word >> 31 == (r == 3)
    assert dev.appliance.real_limits[3] == (4, 1)
