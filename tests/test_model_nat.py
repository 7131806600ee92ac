"""NAT and reverse NAT in the reference model: addresses, ports and checksums of every frame,
return traffic through the connection table, and the NAT drop rules."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from openslb.hw.spec import DropReason, EgressPort, IngressPort, Mode, nat_checksum
from openslb.model.config import ConfigError
from openslb.model.pipeline import Appliance
from openslb.sim import traffic

CLIENT = "192.168.7.9"


@pytest.fixture
def cfg():
    return traffic.nat_config()


def syn(vip="10.0.0.102", sport=40000, dport=80, **ip):
    return bytes(Ether(src=traffic.CLIENT_MAC, dst="02:00:5e:00:00:01")
                 / IP(src=CLIENT, dst=vip, **ip) / TCP(sport=sport, dport=dport, flags="S")
                 / Raw(b"hello"))


def answer(rip, sport=8080, dport=40000, flags="SA", proto=TCP, data=b"world"):
    return bytes(Ether(src="02:00:00:00:0f:01", dst="02:00:5e:00:00:01")
                 / IP(src=rip, dst=CLIENT) / proto(sport=sport, dport=dport, **(
                     {"flags": flags} if proto is TCP else {})) / Raw(data))


def test_forward_nat_rewrites_destination_and_checksums(cfg):
    model = Appliance(cfg)
    d = model.decide(syn())
    assert d.port == EgressPort.SERVER
    out = Ether(d.frame)
    real = cfg.reals[d.real]
    assert out.dst == real.mac and out.src == cfg.own_mac
    assert out[IP].dst == real.ip and out[IP].src == CLIENT
    assert out[TCP].dport == 8080 and out[TCP].sport == 40000
    assert bytes(out[Raw]) == b"hello"
    assert traffic.checksums_ok(d.frame)


def test_reverse_nat_restores_the_vip_and_port(cfg):
    model = Appliance(cfg)
    d = model.decide(syn())
    back = model.decide(answer(cfg.reals[d.real].ip), IngressPort.SERVER)
    assert back.port == EgressPort.CLIENT
    out = Ether(back.frame)
    assert out.dst == traffic.GW_MAC and out.src == cfg.own_mac
    assert (out[IP].src, out[TCP].sport) == ("10.0.0.102", 80)
    assert (out[IP].dst, out[TCP].dport) == (CLIENT, 40000)
    assert traffic.checksums_ok(back.frame)
    c = model.counters
    assert c["TX_RNAT"] == 1 and c["TX_CLIENT"] == 1 and c["RX_SERVER"] == 1


def test_return_traffic_of_no_connection_is_dropped(cfg):
    model = Appliance(cfg)
    d = model.decide(answer("10.0.1.11"), IngressPort.SERVER)
    assert d.drop == DropReason.NO_CONN
    assert model.counters["DROP_NO_CONN"] == 1 and model.counters["CONN_MISS"] == 1


def test_dsr_flow_from_the_same_client_port_is_no_nat_connection(cfg):
    model = Appliance(cfg)
    model.decide(syn(vip="10.0.0.100"))          # DSR service, same client address and port
    d = model.decide(answer("10.0.1.11", sport=80), IngressPort.SERVER)
    assert d.drop == DropReason.NO_CONN


def test_udp_without_checksum_keeps_none_and_any_port_keeps_the_port(cfg):
    model = Appliance(cfg)
    frame = Ether(src=traffic.CLIENT_MAC, dst=cfg.own_mac) / IP(src=CLIENT, dst="10.0.0.102") \
        / UDP(sport=5353, dport=53, chksum=0) / Raw(b"q" * 11)
    d = model.decide(bytes(frame))
    out = Ether(d.frame)
    assert out[UDP].chksum == 0 and out[UDP].dport == 53
    assert out[IP].dst == cfg.reals[d.real].ip and traffic.checksums_ok(d.frame)
    back = model.decide(answer(cfg.reals[d.real].ip, sport=53, dport=5353, proto=UDP,
                               data=b"a" * 13), IngressPort.SERVER)
    out = Ether(back.frame)
    assert (out[IP].src, out[UDP].sport) == ("10.0.0.102", 53) and traffic.checksums_ok(back.frame)


def test_udp_checksum_that_comes_out_zero_is_sent_as_ffff(cfg):
    # a part for which the update sums to 0xFFFF: ~0xFFFF = 0 is "no checksum" in UDP
    assert nat_checksum(0xFFFF - 0x1234, [0x1234], udp=True) == 0xFFFF
    assert nat_checksum(0xFFFF - 0x1234, [0x1234], udp=False) == 0
    model = Appliance(cfg)
    first = model.decide(bytes(Ether(src=traffic.CLIENT_MAC, dst=cfg.own_mac)
                               / IP(src=CLIENT, dst="10.0.0.102") / UDP(sport=999, dport=53)))
    rip = cfg.reals[first.real].ip
    data = traffic.udp_zero_sum_payload(CLIENT, 999, rip, 53)
    d = model.decide(bytes(Ether(src=traffic.CLIENT_MAC, dst=cfg.own_mac)
                           / IP(src=CLIENT, dst="10.0.0.102") / UDP(sport=999, dport=53)
                           / Raw(data)))
    assert Ether(d.frame)[UDP].chksum == 0xFFFF and traffic.checksums_ok(d.frame)


def test_ip_options_and_odd_lengths_keep_valid_checksums(cfg):
    cfg.reals[3].up = True      # (every flow is forwarded)
    model = Appliance(cfg)
    for n in range(40):
        frame = bytes(Ether(src=traffic.CLIENT_MAC, dst=cfg.own_mac)
                      / IP(src=CLIENT, dst="10.0.0.102", options=[b"\x01" * (4 * (n % 10))])
                      / TCP(sport=41000 + n, dport=80, flags="S") / Raw(b"z" * (2 * n + 1)))
        d = model.decide(frame)
        assert traffic.checksums_ok(d.frame), n
        back = model.decide(answer(cfg.reals[d.real].ip, dport=41000 + n, data=b"y" * n),
                            IngressPort.SERVER)
        assert traffic.checksums_ok(back.frame), n


def test_client_port_reused_for_another_vip_takes_the_entry_over(cfg):
    cfg.virts[5] = type(cfg.virts[3])(5, "10.0.0.103", 6, 80, group=2, mode=Mode.NAT)
    model = Appliance(cfg)
    first = model.decide(syn(vip="10.0.0.102"))
    second = model.decide(syn(vip="10.0.0.103"))
    assert model.counters["CONN_EVICT"] == 1
    back = model.decide(answer(cfg.reals[second.real].ip, sport=80), IngressPort.SERVER)
    assert Ether(back.frame)[IP].src == "10.0.0.103"
    assert model.conn.flows() == 1
    assert first.real is not None


def test_nat_fragments_are_dropped(cfg):
    model = Appliance(cfg)
    d = model.decide(syn(flags="MF"))
    assert d.drop == DropReason.NAT_FRAGMENT


def test_servers_arp_for_the_gateway_is_answered_on_the_server_side(cfg):
    model = Appliance(cfg)
    req = bytes(Ether(src="02:00:00:00:0f:01", dst="ff:ff:ff:ff:ff:ff")
                / ARP(op=1, hwsrc="02:00:00:00:0f:01", psrc="10.0.1.11", pdst=cfg.own_ip))
    d = model.decide(req, IngressPort.SERVER)
    assert d.port == EgressPort.SERVER and Ether(d.frame)[ARP].op == 2
    assert model.counters["TX_SERVER"] == 1


def test_nat_traffic_mix_counts_add_up_and_every_frame_checks(cfg):
    frames, ports = traffic.nat_traffic(cfg, 200, seed=5)
    result = Appliance(cfg).process(frames, ports)
    c = result.counters
    drops = sum(c[n] for n in c if n.startswith("DROP_"))
    assert c["RX_FRAMES"] == c["TX_SERVER"] + c["TX_CLIENT"] + c["TX_HOST"] + drops
    assert c["TX_RNAT"] > 50 and c["DROP_NO_CONN"] > 0 and c["DROP_NAT_FRAGMENT"] > 0
    for port, frame in result.outputs:
        if Ether(frame).haslayer(IP) and port != EgressPort.HOST:
            assert traffic.checksums_ok(frame)


def test_nat_needs_what_it_uses(cfg):
    cfg.client_gw_mac = "00:00:00:00:00:00"
    with pytest.raises(ConfigError, match="virt 3: NAT needs the clients' next hop"):
        cfg.validate()
    cfg = traffic.nat_config()
    cfg.reals[1].ip = None
    with pytest.raises(ConfigError, match="virt 3: NAT needs an IP address for real 1"):
        cfg.validate()
    cfg = traffic.nat_config()
    cfg.conn.enabled = False
    with pytest.raises(ConfigError, match="connection table"):
        cfg.validate()
