"""The reference model on its own: parse rules, drop reasons, ARP replies, DSR rewrite, the
fragment rule, the health fallback and the counters' invariants (checked with scapy)."""

import random

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from openslb.hw.spec import COUNTERS, DropReason, EgressPort, maglev_indices
from openslb.model.config import ConfigError, default_config
from openslb.model.pipeline import Appliance, parse
from openslb.sim import traffic

CFG = default_config()
VIP = CFG.virts[0].vip
ETH = Ether(src=traffic.CLIENT_MAC, dst=CFG.own_mac)


def tcp(src="192.168.0.9", sport=1234, dport=80, **ip):
    return bytes(ETH / IP(src=src, dst=VIP, **ip) / TCP(sport=sport, dport=dport) / Raw(b"hello"))


def decide(frame, cfg=None):
    return Appliance(cfg or default_config()).decide(frame)


def test_dsr_rewrites_only_the_macs():
    frame = tcp()
    d = decide(frame)
    assert d.port is EgressPort.SERVER
    out = Ether(d.frame)
    real = CFG.reals[d.real]
    assert out.dst == real.mac and out.src == CFG.own_mac
    assert bytes(out)[12:] == frame[12:]          # IP packet untouched (the real owns the VIP)
    assert out[IP].dst == VIP


def test_same_flow_same_real_and_flows_spread():
    reals = {decide(tcp(sport=p)).real for p in range(2000, 2400)}
    assert reals == {1, 2, 3, 4}
    assert len({decide(tcp(sport=5555)).real for _ in range(5)}) == 1


@pytest.mark.parametrize("frame,reason", [
    (bytes(20), DropReason.NON_VIP),                                  # ethertype 0: miss
    (bytes(13), DropReason.RUNT),
    (bytes(ETH / IP(dst=VIP) / TCP())[:30], DropReason.TRUNCATED),
    (bytes(Ether(type=0x8100)) + b"\x00", DropReason.TRUNCATED),
    (bytes(ETH / IP(dst=VIP, ihl=4) / TCP()), DropReason.BAD_IP_HEADER),
    (bytes(ETH / IP(dst=VIP, version=6) / TCP()), DropReason.BAD_IP_HEADER),
    (bytes(ETH / IP(dst=VIP, len=300) / TCP()), DropReason.BAD_TOTLEN),
    (bytes(ETH / IP(dst=VIP, len=19) / TCP()), DropReason.BAD_TOTLEN),
    (bytes(ETH / IP(dst=VIP, chksum=0x1234) / TCP()), DropReason.BAD_CSUM),
    (bytes(ETH / IP(dst=VIP, len=30) / TCP()), DropReason.TRUNCATED),  # ports cut by total length
    (bytes(ETH / IP(dst=VIP) / TCP() / Raw(bytes(3000))), DropReason.OVERSIZE),
    (bytes(ETH / IP(dst="10.1.1.1") / TCP(dport=80)), DropReason.NON_VIP),
    (bytes(ETH / IP(dst=VIP) / UDP(dport=80)), DropReason.NON_VIP),
    (bytes(ETH / IP(dst=VIP) / TCP(dport=81)), DropReason.NON_VIP),
])
def test_drop_reasons(frame, reason):
    d = decide(frame)
    assert d.port is None and d.drop is reason


def test_ip_options_parsed():
    frame = bytes(ETH / IP(src="1.2.3.4", dst=VIP, options=[b"\x01" * 40]) / TCP(sport=7, dport=80))
    p = parse(frame)
    assert p.error is None and (p.sport, p.dport) == (7, 80)
    assert decide(frame).port is EgressPort.SERVER


def test_vlan_traffic_is_forwarded_with_its_tag():
    frame = bytes(ETH / Dot1Q(vlan=42) / IP(dst=VIP) / TCP(dport=80))
    out = Ether(decide(frame).frame)
    assert out[Dot1Q].vlan == 42 and out[IP].dst == VIP


@pytest.mark.parametrize("vlan", [False, True])
@pytest.mark.parametrize("target", [VIP, CFG.own_ip])
def test_arp_reply(vlan, target):
    req = Ether(src=traffic.CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
    if vlan:
        req = req / Dot1Q(vlan=5)
    req = req / ARP(op=1, hwsrc=traffic.CLIENT_MAC, psrc="192.168.0.7", pdst=target)
    d = decide(bytes(req))
    assert d.port is EgressPort.CLIENT
    rep = Ether(d.frame)
    assert rep.dst == traffic.CLIENT_MAC and rep.src == CFG.own_mac
    arp = rep[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc) == (2, CFG.own_mac, target)
    assert (arp.hwdst, arp.pdst) == (traffic.CLIENT_MAC, "192.168.0.7")
    assert (Dot1Q in rep) == vlan


def test_arp_for_others_follows_miss_rule():
    req = bytes(Ether(src=traffic.CLIENT_MAC) / ARP(op=1, pdst="10.9.9.9"))
    assert decide(req).drop is DropReason.NON_VIP
    cfg = default_config()
    cfg.miss_to_host = True
    d = decide(req, cfg)
    assert d.port is EgressPort.HOST and d.frame == req


def test_all_fragments_of_a_datagram_reach_one_real():
    for k in range(30):
        datagram = IP(src=f"192.168.7.{k + 1}", dst=VIP, id=k) / TCP(sport=1000 + k, dport=80) \
            / Raw(bytes(2000))
        frags = [bytes(ETH / f) for f in fragment(datagram, fragsize=500)]
        assert len(frags) > 2
        model = Appliance(default_config())
        reals = {model.decide(f).real for f in frags}
        assert len(reals) == 1 and None not in reals


def test_down_real_falls_back_to_rehash_then_backup():
    cfg = default_config()
    model = Appliance(cfg)
    flows = [tcp(sport=p) for p in range(3000, 3400)]
    first = {f: model.decide(f).real for f in flows}
    model.set_up(2, False)
    after = {f: model.decide(f) for f in flows}
    assert all(d.real != 2 for d in after.values())
    moved = [f for f in flows if first[f] != after[f].real]
    assert moved and all(first[f] == 2 for f in moved)   # only real 2's flows move
    # the rehash slot decides where: idx2 of the flow's hash (dropped if that is real 2 too,
    # since this group has no backup)
    for f in moved:
        d = after[f]
        _, idx2 = maglev_indices(d.hash, cfg.table_size)
        if d.real is None:
            assert d.drop is DropReason.NO_REAL and model.tables[1][idx2] == 2
        else:
            assert model.tables[1][idx2] == d.real
    for r in (1, 3, 4):
        model.set_up(r, False)
    assert model.decide(flows[0]).drop is DropReason.NO_REAL
    cfg2 = default_config()
    cfg2.reals[9] = type(cfg2.reals[1])(9, "02:00:00:00:09:09")
    cfg2.groups[1].backup = 9
    model2 = Appliance(cfg2)
    for r in (1, 2, 3, 4):
        model2.set_up(r, False)
    assert model2.decide(flows[0]).real == 9


def test_counters_add_up_over_mixed_traffic():
    cfg = traffic.test_config()
    result = Appliance(cfg).process(traffic.mixed_traffic(cfg, 300, seed=3))
    c = result.counters
    drops = sum(c[n] for n in COUNTERS if n.startswith("DROP_"))
    assert c["RX_FRAMES"] == c["TX_SERVER"] + c["TX_CLIENT"] + c["TX_HOST"] + drops
    assert c["RX_FRAMES"] == len(result.outputs) + len(result.drops)
    # (the NAT reasons need NAT services and server-side traffic: tests/test_model_nat.py;
    # MAXCON needs connection limits: tests/test_model_metrics.py)
    client_side = set(DropReason) - {DropReason.NO_CONN, DropReason.NAT_FRAGMENT,
                                     DropReason.MAXCON}
    assert all(c[f"DROP_{r.name}"] > 0 for r in client_side), c
    assert sum(p for p, _ in result.real_stats.values()) == c["TX_SERVER"]
    assert 3 not in result.real_stats  # real 3 is down in the test config


def test_config_validation_names_object_and_field():
    cfg = default_config()
    cfg.reals[1].weight = 99
    with pytest.raises(ConfigError, match="real 1: weight 99"):
        cfg.validate()
    cfg = default_config()
    cfg.virts[0].group = 7
    with pytest.raises(ConfigError, match="virt 0: group 7 is not defined"):
        cfg.validate()
    cfg = default_config()
    cfg.table_size = 4095
    with pytest.raises(ConfigError, match="table_size"):
        cfg.validate()


def test_group_with_every_real_out_drops_no_real():
    cfg = default_config()
    for r in cfg.reals.values():
        r.enabled = False
    result = Appliance(cfg).process(traffic.client_flows(cfg, 20, random.Random(1)))
    assert not result.outputs and {d for _, d in result.drops} == {DropReason.NO_REAL}


def test_random_bytes_never_crash_the_model():
    rng = random.Random(5)
    model = Appliance(default_config())
    for _ in range(2000):
        frame = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        d = model.decide(frame)
        assert (d.port is None) != (d.drop is None)
