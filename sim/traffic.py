"""Test traffic built with scapy: client flows to the VIPs and everything a hostile or broken
network sends (VLAN, IPv4 options, fragments, ARP, ICMP, IPv6, non-VIP, malformed, truncated,
runts, oversized and random frames)."""

from __future__ import annotations

import random
import struct

from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from openslb.hw.spec import PROTO_TCP, PROTO_UDP, IngressPort, Metric, Mode, Params
from openslb.model.config import ApplianceConfig, Group, RealServer, VirtualService, default_config

__all__ = ["test_config", "client_flows", "mixed_traffic", "hostile_frames", "CLIENT_MAC",
           "nat_config", "nat_traffic", "GW_MAC", "checksums_ok", "udp_zero_sum_payload"]

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


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksums_ok(frame: bytes) -> bool:
    """Every IPv4, TCP and UDP checksum of ``frame`` verifies (a UDP checksum of 0: none)."""
    pkt = Ether(frame)
    ip = pkt[IP]
    raw_ip = bytes(ip)
    hl = 4 * ip.ihl
    if ones_sum(raw_ip[:hl]) != 0xFFFF:
        return False
    if ip.frag or ip.flags.MF or ip.proto not in (6, 17):
        return True
    segment = raw_ip[hl:ip.len]
    if ip.proto == 17 and segment[6:8] == b"\x00\x00":
        return True
    pseudo = raw_ip[12:20] + struct.pack("!BBH", 0, ip.proto, len(segment))
    return ones_sum(pseudo + segment) == 0xFFFF


GW_MAC = "02:00:00:00:00:fe"


def udp_zero_sum_payload(client: str, cport: int, rip: str, rport: int) -> bytes:
    """A 2-byte UDP payload for which the datagram from ``client:cport``, once NATed to
    ``rip:rport``, sums to a checksum of 0: sent as 0xFFFF (RFC 768), the case the rewriter
    must not pass on as 0 ("no checksum")."""
    probe = bytes(IP(src=client, dst=rip) / UDP(sport=cport, dport=rport) / Raw(b"\x00\x00"))
    csum = struct.unpack("!H", probe[26:28])[0]
    return struct.pack("!H", csum)


def nat_config() -> ApplianceConfig:
    """:func:`test_config` plus two NAT services on a third VIP: TCP 80 → rport 8080 (group 1)
    and UDP any port (group 2); reverse NAT to the clients' next hop ``GW_MAC``."""
    cfg = test_config()
    cfg.client_gw_mac = GW_MAC
    cfg.virts[3] = VirtualService(3, "10.0.0.102", PROTO_TCP, 80, group=1, mode=Mode.NAT,
                                  rport=8080)
    cfg.virts[4] = VirtualService(4, "10.0.0.102", PROTO_UDP, None, group=2, mode=Mode.NAT)
    return cfg


def every_feature_config(params: Params) -> ApplianceConfig:
    """:func:`nat_config` with every feature that needs the connection table switched on: the
    table, pbind (per service and per VIP, /24), leastconns and roundrobin, maxcon (reals 4
    and 5), NAT; every real up.  Not valid for a stateless ``params`` (the profile refuses the
    table): a test writes it to such a core as a stateful core's registers."""
    cfg = nat_config()
    cfg.params = params
    cfg.conn.enabled = True
    cfg.conn.tick_cycles = 0
    cfg.reals[3].up = True
    cfg.groups[1].metric = Metric.LEASTCONNS
    cfg.groups[2].metric = Metric.ROUNDROBIN
    cfg.reals[4].maxcon = 3
    cfg.reals[5].maxcon = 2
    cfg.virts[0].pbind = True
    cfg.virts[2].pbind, cfg.virts[2].pbind_per_port = True, False
    cfg.conn.pmask = 24
    return cfg


def nat_traffic(cfg: ApplianceConfig, n_flows: int, seed: int,
                model=None) -> tuple[list[bytes], list[IngressPort]]:
    """Client flows to every service, DSR and NAT, with the reals' answers to the NAT ones from
    the server side, and the cases NAT must get right: IPv4 options, VLAN tags, odd payload
    lengths, UDP without a checksum, a client port reused for another VIP, return traffic of no
    connection, NAT fragments, a real's ARP request for its gateway.

    ``model`` (an :class:`~openslb.model.pipeline.Appliance` programmed with ``cfg``, used up by
    this call) tells which real each NAT flow reached, so that its answers come from there."""
    from openslb.model.pipeline import Appliance
    rng = random.Random(seed)
    model = model or Appliance(cfg)
    frames: list[bytes] = []
    ports: list[IngressPort] = []
    open_flows: list[tuple] = []     # (client ip, client port, real, rport, proto, vlan)
    server_mac = "02:00:00:00:0f:01"

    def send(frame: bytes, port: IngressPort = IngressPort.CLIENT):
        frames.append(frame)
        ports.append(port)
        return model.decide(frame, port)

    def l2(vlan, src, dst):
        eth = Ether(src=src, dst=dst)
        return eth / Dot1Q(vlan=vlan) if vlan else eth

    def payload():
        return Raw(bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 7, 33, 200, 999]))))

    services = [v for v in cfg.virts.values() if v.enabled]
    for n in range(n_flows):
        v = rng.choice(services)
        client, cport = _client(rng), rng.randrange(1024, 65536)
        vlan = rng.choice([0, 0, 0, 5])
        opts = [b"\x01" * (4 * rng.randint(1, 9))] if rng.random() < 0.2 else []
        dport = v.port if v.port is not None else rng.randrange(1, 65536)
        ip = IP(src=client, dst=v.vip, options=opts)
        if v.proto == PROTO_TCP:
            first = TCP(sport=cport, dport=dport, flags="S", options=[("MSS", 1460)])
        else:
            first = UDP(sport=cport, dport=dport)
            if rng.random() < 0.3:
                first.chksum = 0          # no checksum: must stay 0
        d = send(bytes(l2(vlan, CLIENT_MAC, cfg.own_mac) / ip / first / payload()))
        if v.mode == Mode.NAT and d.real is not None:
            out = Ether(d.frame)
            rport = out[TCP].dport if TCP in out else out[UDP].dport
            open_flows.append((client, cport, d.real, rport, v.proto, vlan))
        # traffic of open NAT flows: client data and the reals' answers, interleaved
        for _ in range(rng.randint(0, 3)):
            if not open_flows:
                break
            client, cport, real, rport, proto, vlan = rng.choice(open_flows)
            rip = cfg.reals[real].ip
            if rng.random() < 0.5:
                l4 = (TCP(sport=rport, dport=cport, flags=rng.choice(["SA", "A", "PA", "FA"]))
                      if proto == PROTO_TCP else UDP(sport=rport, dport=cport))
                send(bytes(l2(vlan, server_mac, cfg.own_mac) / IP(src=rip, dst=client)
                           / l4 / payload()), IngressPort.SERVER)
            else:
                vip = next(x for x in services if x.mode == Mode.NAT and x.proto == proto)
                dport = vip.port if vip.port is not None else rport
                l4 = (TCP(sport=cport, dport=dport, flags="PA") if proto == PROTO_TCP
                      else UDP(sport=cport, dport=dport))
                data = payload()
                if proto == PROTO_UDP and rng.random() < 0.3:
                    data = Raw(udp_zero_sum_payload(client, cport, rip, rport))
                send(bytes(l2(vlan, CLIENT_MAC, cfg.own_mac) / IP(src=client, dst=vip.vip)
                           / l4 / data))
        if n % 10 == 0:
            nat_vips = [x for x in services if x.mode == Mode.NAT]
            # return traffic of no connection, a real's ARP for its gateway, a NAT fragment,
            # a client port reused for the other NAT VIP... and for a DSR one
            send(bytes(Ether(src=server_mac, dst=cfg.own_mac)
                       / IP(src="10.0.1.11", dst=_client(rng))
                       / TCP(sport=8080, dport=rng.randrange(1024, 65536), flags="A")),
                 IngressPort.SERVER)
            send(bytes(Ether(src=server_mac, dst="ff:ff:ff:ff:ff:ff")
                       / ARP(op=1, hwsrc=server_mac, psrc="10.0.1.11", pdst=cfg.own_ip)),
                 IngressPort.SERVER)
            frag = fragment(IP(src=_client(rng), dst=nat_vips[0].vip, id=n + 1)
                            / TCP(sport=3333, dport=80) / Raw(bytes(900)), fragsize=400)
            send(bytes(Ether(src=CLIENT_MAC, dst=cfg.own_mac) / frag[rng.randrange(len(frag))]))
            if open_flows:
                client, cport, *_ = rng.choice(open_flows)
                v2 = rng.choice(services)
                l4 = (TCP(sport=cport, dport=v2.port or 53, flags="S") if v2.proto == PROTO_TCP
                      else UDP(sport=cport, dport=v2.port or 53))
                send(bytes(Ether(src=CLIENT_MAC, dst=cfg.own_mac) / IP(src=client, dst=v2.vip)
                           / l4))
    return frames, ports
