"""Test traffic built with scapy: client flows to the VIPs and everything a hostile or broken
network sends (VLAN, IPv4 options, fragments, ARP, ICMP, IPv6, non-VIP, malformed, truncated,
runts, oversized and random frames)."""

from __future__ import annotations

import random

from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from openslb.hw.spec import PROTO_TCP, PROTO_UDP
from openslb.model.config import ApplianceConfig, Group, RealServer, VirtualService, default_config

__all__ = ["test_config", "client_flows", "mixed_traffic", "hostile_frames", "CLIENT_MAC"]

CLIENT_MAC = "02:00:00:00:00:aa"


def test_config() -> ApplianceConfig:
    """Two services, weights, a backup real, one real down: every selector path is exercised."""
    cfg = default_config()
    cfg.reals.update({i: RealServer(i, f"02:00:00:00:02:{i:02x}", f"10.0.2.{i}", weight=i - 4)
                      for i in (5, 6, 7)})
    cfg.reals[8] = RealServer(8, "02:00:00:00:02:08", "10.0.2.8")
    cfg.groups[2] = Group(2, [5, 6, 7], backup=8)
    cfg.virts[1] = VirtualService(1, "10.0.0.101", PROTO_UDP, None, group=2)
    cfg.virts[2] = VirtualService(2, "10.0.0.100", PROTO_TCP, 443, group=2)
    cfg.reals[3].up = False       # traffic for real 3 takes the rehash slot or the backup
    return cfg


def _client(rng: random.Random) -> str:
    return f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def client_flows(cfg: ApplianceConfig, n_flows: int, rng: random.Random,
                 packets_per_flow: tuple[int, int] = (1, 4)) -> list[bytes]:
    """TCP and UDP client flows to the configured services, with varied payload sizes."""
    services = [v for v in cfg.virts.values() if v.enabled]
    frames = []
    for _ in range(n_flows):
        v = rng.choice(services)
        src, sport = _client(rng), rng.randrange(1024, 65536)
        dport = v.port if v.port is not None else rng.randrange(1, 65536)
        for k in range(rng.randint(*packets_per_flow)):
            size = rng.choice([0, 0, 10, 100, 512, 1400])
            l4 = (TCP(sport=sport, dport=dport, flags="S" if k == 0 else "PA")
                  if v.proto == PROTO_TCP else UDP(sport=sport, dport=dport))
            pkt = Ether(src=CLIENT_MAC, dst=cfg.own_mac) / IP(src=src, dst=v.vip) / l4
            frames.append(bytes(pkt / Raw(bytes(rng.randrange(256) for _ in range(size)))))
    return frames


def hostile_frames(cfg: ApplianceConfig, rng: random.Random, n: int = 60) -> list[bytes]:
    """Frames that must be handled by rule and counted, never hang the pipeline."""
    vip = cfg.virts[0].vip
    eth = Ether(src=CLIENT_MAC, dst=cfg.own_mac)
    good = eth / IP(src="192.168.1.1", dst=vip) / TCP(sport=1234, dport=80) / Raw(b"x" * 40)
    out: list[bytes] = []
    g = bytes(good)
    for _ in range(n):
        kind = rng.randrange(10)
        if kind == 0:  # truncated anywhere
            out.append(g[:rng.randrange(1, len(g))])
        elif kind == 1:  # runt
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 14))))
        elif kind == 2:  # bad checksum
            b = bytearray(g)
            b[24] ^= 0x5A
            out.append(bytes(b))
        elif kind == 3:  # IHL < 5 / wrong version
            b = bytearray(g)
            b[14] = rng.choice([0x44, 0x43, 0x65, 0x05])
            out.append(bytes(b))
        elif kind == 4:  # total length beyond the frame
            out.append(bytes(eth / IP(src="192.168.1.2", dst=vip, len=200) / TCP(dport=80)))
        elif kind == 5:  # random bytes of random length
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(14, 300))))
        elif kind == 6:  # oversize
            out.append(bytes(eth / IP(src="192.168.1.3", dst=vip) / TCP(dport=80)
                             / Raw(bytes(rng.randrange(2100, 3000)))))
        elif kind == 7:  # IP header too short for the L4 ports (total length says 24)
            b = bytearray(bytes(eth / IP(src="192.168.1.4", dst=vip, len=24) / TCP(dport=80)))
            out.append(bytes(b))
        elif kind == 8:  # VLAN header cut
            out.append(bytes(Ether(src=CLIENT_MAC, dst=cfg.own_mac, type=0x8100))
                       + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 4))))
        else:  # random bytes with a valid-looking Ethernet/IPv4 start
            out.append(g[:34] + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80))))
    return out


def arp_request(cfg: ApplianceConfig, target: str, sender: str = "192.168.0.7") -> bytes:
    """A client's ARP request for ``target`` (a VIP or the appliance's IP)."""
    return bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT_MAC)
                 / ARP(op=1, hwsrc=CLIENT_MAC, psrc=sender, pdst=target))


def mixed_traffic(cfg: ApplianceConfig, n_flows: int, seed: int) -> list[bytes]:
    """Client flows shuffled with every special case and the hostile frames."""
    rng = random.Random(seed)
    vip, vip1 = cfg.virts[0].vip, cfg.virts.get(1, cfg.virts[0]).vip
    eth = Ether(src=CLIENT_MAC, dst=cfg.own_mac)
    special: list[bytes] = []
    for k in range(max(4, n_flows // 20)):
        src = _client(rng)
        special += [
            # VLAN-tagged VIP traffic and VLAN ARP
            bytes(Ether(src=CLIENT_MAC, dst=cfg.own_mac) / Dot1Q(vlan=10 + k)
                  / IP(src=src, dst=vip) / TCP(sport=4000 + k, dport=80)),
            bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=7)
                  / ARP(op=1, hwsrc=CLIENT_MAC, psrc=src, pdst=vip)),
            # IPv4 options (IHL 6..15)
            bytes(eth / IP(src=src, dst=vip, options=[b"\x01" * (4 * rng.randint(1, 10))])
                  / TCP(sport=5000 + k, dport=80) / Raw(b"opt")),
            # ARP: for the VIP, for the appliance, for someone else, a reply
            bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
                  / ARP(op=1, hwsrc=CLIENT_MAC, psrc=src, pdst=rng.choice([vip, vip1]))),
            bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
                  / ARP(op=1, hwsrc=CLIENT_MAC, psrc=src, pdst=cfg.own_ip)),
            bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
                  / ARP(op=1, hwsrc=CLIENT_MAC, psrc=src, pdst="10.9.9.9")),
            bytes(eth / ARP(op=2, hwsrc=CLIENT_MAC, psrc=src, pdst=vip)),
            # ICMP to the VIP (no ICMP service: miss), UDP to the TCP port, non-VIP, IPv6
            bytes(eth / IP(src=src, dst=vip) / ICMP()),
            bytes(eth / IP(src=src, dst=vip) / UDP(sport=53, dport=80)),
            bytes(eth / IP(src=src, dst="10.7.7.7") / TCP(sport=1, dport=80)),
            bytes(eth / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP()),
            bytes(Ether(src=CLIENT_MAC, dst=cfg.own_mac, type=0x88CC) / Raw(b"\x00" * 50)),
        ]
        # fragments of one datagram to each service: all must reach one real
        for dst, l4 in ((vip, TCP(sport=6000 + k, dport=80)), (vip1, UDP(sport=7000 + k, dport=9))):
            # (with one TCP service the UDP datagram is not for a VIP: it follows the miss rule)
            datagram = IP(src=src, dst=dst, id=k + 1) / l4 / Raw(bytes(1200))
            special += [bytes(eth / f) for f in fragment(datagram, fragsize=400)]
    frames = client_flows(cfg, n_flows, rng) + special + hostile_frames(cfg, rng)
    rng.shuffle(frames)
    return frames
