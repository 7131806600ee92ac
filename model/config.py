"""Typed appliance configuration: what the management plane builds from CLI commands and what the
reference model, the firmware's register programmer and the testbenches consume."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import numpy as np

from openslb.hw.spec import (CONN_TIMEOUT_DEFAULTS, CONN_TIMEOUT_MAX, DEFAULT_PARAMS,
                             DEFAULT_TABLE_SIZE, PROTO_ICMP, PROTO_TCP, PROTO_UDP,
                             MAXCON_BITS, RSS_DEFAULT_KEY, ConnTimeout, Metric, Mode,
                             Params)
from openslb.model import maglev

__all__ = ["ConfigError", "RealServer", "Group", "VirtualService", "ConnConfig", "ApplianceConfig",
           "default_config", "mac_bytes", "ip_int"]


class ConfigError(ValueError):
    """A configuration that cannot be programmed; the message names the object and field."""


def mac_bytes(mac: str) -> bytes:
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ConfigError(f"bad MAC address {mac!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ConfigError(f"bad MAC address {mac!r}") from None


def ip_int(ip: str) -> int:
    try:
        return int(ipaddress.IPv4Address(ip))
    except ValueError:
        raise ConfigError(f"bad IPv4 address {ip!r}") from None


@dataclass
class RealServer:
    """A real server: where DSR traffic is sent (its MAC) and how much of it (weight)."""
    index: int
    mac: str
    ip: str | None = None
    weight: int = 1
    maxcon: int = 0        #: most connections (0: no limit); needs the connection table
    enabled: bool = True   #: operator state: a disabled real is left out of the Maglev tables
    up: bool = True        #: health state: the hardware health mask bit


@dataclass
class Group:
    index: int
    reals: list[int] = field(default_factory=list)
    backup: int | None = None
    metric: Metric = Metric.HASH   #: how new flows choose a real


@dataclass
class VirtualService:
    """One VIP table entry: VIP + protocol + port (None = any port) → group."""
    index: int
    vip: str
    proto: int = PROTO_TCP
    port: int | None = 80
    group: int = 0
    mode: Mode = Mode.DSR
    enabled: bool = True
    #: client-IP persistence (the client prefix is the appliance's ``conn.pmask``); the
    #: binding is per service port when ``pbind_per_port``, else per VIP
    pbind: bool = False
    pbind_per_port: bool = True
    #: NAT: the real's port (None: the client's destination port)
    rport: int | None = None


#: Core clock the default tick is counted in (the 10 Gb/s-class core: 156.25 MHz).
DEFAULT_CORE_HZ = 156_250_000


@dataclass
class ConnConfig:
    """Connection table settings (global: every VIP's TCP and UDP flows are tracked)."""
    enabled: bool = True
    #: core clock cycles per tick (0: time moves only when the management writes CONN_TICK)
    tick_cycles: int = DEFAULT_CORE_HZ
    syn: int = CONN_TIMEOUT_DEFAULTS[ConnTimeout.SYN]          #: ticks, half-open TCP
    open: int = CONN_TIMEOUT_DEFAULTS[ConnTimeout.OPEN]        #: ticks, established TCP
    closing: int = CONN_TIMEOUT_DEFAULTS[ConnTimeout.CLOSING]  #: ticks, after FIN / RST
    udp: int = CONN_TIMEOUT_DEFAULTS[ConnTimeout.UDP]          #: ticks, UDP flows
    pbind: int = 600                                           #: ticks, client bindings
    pmask: int = 32             #: client prefix length a binding covers: 0, 8, 16, 24 or 32

    #: the timeout fields, in the order the CLI (``conntmout``) and the saved form name them
    TIMEOUT_FIELDS = ("syn", "open", "closing", "udp", "pbind")

    def timeouts(self) -> dict[ConnTimeout, int]:
        return {ConnTimeout.SYN: self.syn, ConnTimeout.OPEN: self.open,
                ConnTimeout.CLOSING: self.closing, ConnTimeout.UDP: self.udp}

    def validate(self) -> None:
        for name in self.TIMEOUT_FIELDS:
            ticks = getattr(self, name)
            if not 0 <= ticks <= CONN_TIMEOUT_MAX:
                raise ConfigError(f"conn timeout {name}: {ticks} ticks out of range "
                                  f"0..{CONN_TIMEOUT_MAX}")
        if self.pmask not in (0, 8, 16, 24, 32):
            raise ConfigError(f"conn pmask /{self.pmask}: use /0, /8, /16, /24 or /32 (the "
                              "hardware masks whole bytes)")
        if not 0 <= self.tick_cycles <= 0xFFFFFFFF:
            raise ConfigError(f"conn tick_cycles: {self.tick_cycles} out of range 0..2**32-1")


@dataclass
class ApplianceConfig:
    own_mac: str = "02:00:5e:00:00:01"
    own_ip: str = "10.0.0.1"
    reals: dict[int, RealServer] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    virts: dict[int, VirtualService] = field(default_factory=dict)
    miss_to_host: bool = False
    rss_key: bytes = RSS_DEFAULT_KEY
    table_size: int = DEFAULT_TABLE_SIZE
    params: Params = DEFAULT_PARAMS
    conn: ConnConfig = field(default_factory=ConnConfig)
    #: next hop towards the clients: where reverse-NAT frames are sent (NAT services)
    client_gw_mac: str = "00:00:00:00:00:00"

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad object and field."""
        p = self.params
        self.conn.validate()
        if self.conn.enabled and not p.stateful:
            raise ConfigError("conn: this core is the stateless profile (no connection table); "
                              "conn ena is not available")
        mac_bytes(self.own_mac)
        mac_bytes(self.client_gw_mac)
        ip_int(self.own_ip)
        if len(self.rss_key) != 40:
            raise ConfigError(f"rss_key: 40 bytes needed, got {len(self.rss_key)}")
        if not maglev.is_prime(self.table_size) or self.table_size > p.table_stride:
            raise ConfigError(f"table_size: {self.table_size} must be a prime <= {p.table_stride}")
        for r in self.reals.values():
            where = f"real {r.index}"
            if not 0 <= r.index < p.n_reals:
                raise ConfigError(f"{where}: index out of range 0..{p.n_reals - 1}")
            mac_bytes(r.mac)
            if not 1 <= r.weight <= 48:
                raise ConfigError(f"{where}: weight {r.weight} out of range 1..48")
            if not 0 <= r.maxcon < 1 << MAXCON_BITS:
                raise ConfigError(f"{where}: maxcon {r.maxcon} out of range "
                                  f"0..{(1 << MAXCON_BITS) - 1}")
            if r.maxcon and not self.conn.enabled:
                raise ConfigError(f"{where}: maxcon needs the connection table (conn ena): "
                                  "connections are counted there")
        for g in self.groups.values():
            where = f"group {g.index}"
            if not 0 <= g.index < p.n_groups:
                raise ConfigError(f"{where}: index out of range 0..{p.n_groups - 1}")
            for r in [*g.reals, *([g.backup] if g.backup is not None else [])]:
                if r not in self.reals:
                    raise ConfigError(f"{where}: real {r} is not defined")
            if Metric(g.metric) != Metric.HASH and not self.conn.enabled:
                raise ConfigError(f"{where}: metric {Metric(g.metric).name.lower()} needs the "
                                  "connection table (conn ena): it chooses the real of new "
                                  "flows, which the table keeps on it")
        for v in self.virts.values():
            where = f"virt {v.index}"
            if not 0 <= v.index < p.n_vips:
                raise ConfigError(f"{where}: index out of range 0..{p.n_vips - 1}")
            ip_int(v.vip)
            if v.proto not in (PROTO_TCP, PROTO_UDP, PROTO_ICMP) and v.port is not None:
                raise ConfigError(f"{where}: protocol {v.proto} has no ports; use port None")
            if v.port is not None and not 0 <= v.port <= 0xFFFF:
                raise ConfigError(f"{where}: port {v.port} out of range")
            if v.pbind and v.proto not in (PROTO_TCP, PROTO_UDP):
                raise ConfigError(f"{where}: pbind needs TCP or UDP (bindings follow tracked flows)")
            if v.enabled and v.group not in self.groups:
                raise ConfigError(f"{where}: group {v.group} is not defined")
            if v.rport is not None and not 1 <= v.rport <= 0xFFFF:
                raise ConfigError(f"{where}: rport {v.rport} out of range 1..65535")
            if v.mode == Mode.NAT and v.enabled:
                self._validate_nat(v, where)
            # a group whose reals are all disabled or down is allowed here: its table is
            # empty and its traffic goes to the backup real or is dropped as NO_REAL (the
            # management configuration refuses such a group when it is configured that way)

    def _validate_nat(self, v: VirtualService, where: str) -> None:
        if v.proto not in (PROTO_TCP, PROTO_UDP):
            raise ConfigError(f"{where}: NAT needs TCP or UDP (return traffic is matched by "
                              "port)")
        if v.rport is not None and v.port is None:
            raise ConfigError(f"{where}: rport needs a service port (an any-port service "
                              "keeps the client's port)")
        if not self.conn.enabled:
            raise ConfigError(f"{where}: NAT needs the connection table (conn ena): return "
                              "traffic is found there")
        if mac_bytes(self.client_gw_mac) == bytes(6):
            raise ConfigError(f"{where}: NAT needs the clients' next hop (/cfg/slb/adv clntgw "
                              "MAC) for the return traffic")
        for r in self.groups[v.group].reals:
            if self.reals[r].ip is None:
                raise ConfigError(f"{where}: NAT needs an IP address for real {r} (rip)")

    def table(self, group: int) -> np.ndarray:
        """The Maglev table of ``group`` (enabled reals, by weight)."""
        g = self.groups.get(group)
        weights = {} if g is None else {
            r: self.reals[r].weight for r in g.reals if self.reals[r].enabled}
        return maglev.populate(weights, self.table_size)

    def members(self, group: int) -> set[int]:
        """The reals in ``group``'s table (enabled; every weight gets at least one slot): where
        a new flow that a full real turned away may spill over (MEMBER_DATA)."""
        g = self.groups.get(group)
        return set() if g is None else {r for r in g.reals if self.reals[r].enabled}

    def health_mask(self) -> int:
        return sum(1 << r.index for r in self.reals.values() if r.up)


def default_config(n_reals: int = 4) -> ApplianceConfig:
    """The built-in configuration: VIP 10.0.0.100 TCP 80 → group 1 of ``n_reals`` reals."""
    reals = {i: RealServer(i, f"02:00:00:00:01:{i:02x}", f"10.0.1.{10 + i}")
             for i in range(1, n_reals + 1)}
    return ApplianceConfig(
        own_mac="02:00:5e:00:00:01", own_ip="10.0.0.1", reals=reals,
        groups={1: Group(1, list(reals))},
        virts={0: VirtualService(0, "10.0.0.100", PROTO_TCP, 80, group=1)},
    )
