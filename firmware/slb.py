"""The Alteon-style configuration model: real servers, groups, virtual servers, interface, system.

:class:`SlbConfig` is what the CLI edits (``/cfg/slb/real N/rip ...``).  It is validated as a
whole (:meth:`SlbConfig.validate`, messages naming the object and the field), dumped as the CLI
commands that rebuild it (:meth:`SlbConfig.dump`, the saved form), and compiled into the
hardware-level :class:`~openslb.model.config.ApplianceConfig` that the register programmer and
the reference model take (:meth:`SlbConfig.compile`).

Numbering: real ``N`` is hardware real ``N`` (1 .. n_reals-1; real 0 is the value of an
unprogrammed table slot and is never up), group ``N`` is hardware group ``N`` (1 .. n_groups-1),
and each (virtual server, service) takes the next free VIP table entry in order.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import os
from dataclasses import dataclass, field

from openslb.hw.spec import (DEFAULT_PARAMS, PROTO_TCP, PROTO_UDP, UART_DEFAULT_BAUD, Metric,
                             Mode, Params, default_table_size)
from openslb.model import maglev
from openslb.model.config import (ApplianceConfig, ConfigError, ConnConfig, Group as HwGroup, RealServer,
                                  VirtualService)

__all__ = ["Real", "Group", "Service", "Virt", "SlbConfig", "ConfigError", "hash_password",
           "check_password", "default_slb_config", "METRICS", "HEALTH_CHECKS", "PROTOCOLS"]

#: group metrics (Metric): hash is Maglev; roundrobin and leastconns need the connection table
METRICS = ("hash", "roundrobin", "leastconns")
HEALTH_CHECKS = ("none", "icmp", "tcp", "http", "udp", "dns")
PROTOCOLS = {"tcp": PROTO_TCP, "udp": PROTO_UDP}
SERVICE_NAMES = {"http": (80, "tcp"), "https": (443, "tcp"), "dns": (53, "udp"),
                 "smtp": (25, "tcp"), "ssh": (22, "tcp")}
WEIGHT_RANGE = (1, 48)
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 3000000)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt hex>$<hash hex>`` (never the password itself)."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, salt, _ = stored.split("$")
    except ValueError:
        return False
    return kind == "scrypt" and hash_password(password, bytes.fromhex(salt)) == stored


def _ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not an IPv4 address") from None


def _mac(value: str, what: str) -> str:
    parts = value.lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p)
                                  for p in parts):
        raise ConfigError(f"{what}: {value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return ":".join(parts)


@dataclass
class Real:
    num: int
    rip: str | None = None
    mac: str | None = None
    enabled: bool = True
    weight: int = 1
    maxcon: int = 0          #: 0 = no limit (enforced with the connection table)
    backup: int | None = None
    name: str = ""
    inter: int = 2           #: health check interval, seconds
    retry: int = 4           #: failed checks to mark the real down
    restr: int = 2           #: successful checks to bring it back


@dataclass
class Group:
    num: int
    reals: list[int] = field(default_factory=list)
    metric: str = "hash"
    health: str = "tcp"
    content: str = ""        #: HTTP: text the page must contain; DNS: the name to ask
    backup: int | None = None


@dataclass
class Service:
    port: int | None          #: None = any port
    proto: str = "tcp"
    group: int | None = None
    rport: int = 0            #: 0 = same as the service port (only NAT can change it)
    pbind: bool = False
    timeout: int = 10         #: minutes
    mode: str = "dsr"


@dataclass
class Virt:
    num: int
    vip: str | None = None
    enabled: bool = True
    services: dict[tuple[int | None, str], Service] = field(default_factory=dict)


@dataclass
class SlbConfig:
    reals: dict[int, Real] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    virts: dict[int, Virt] = field(default_factory=dict)
    if_ip: str = "10.0.0.1"
    if_mac: str = "02:00:5e:00:00:01"
    password_hash: str = ""
    baud: int = UART_DEFAULT_BAUD
    #: Maglev table size M; None: the core's default (:func:`default_table_size` of ``params``)
    table_size: int | None = None
    miss: str = "drop"          #: what happens to traffic for no VIP: drop | host
    params: Params = DEFAULT_PARAMS
    conn: ConnConfig = field(default_factory=ConnConfig)   #: connection table (/cfg/slb/adv)
    #: the next hop towards the clients (/cfg/slb/adv/clntgw): where NAT return traffic goes
    client_gw_mac: str | None = None

    def __post_init__(self) -> None:
        if self.table_size is None:
            self.table_size = default_table_size(self.params)

    def copy(self) -> "SlbConfig":
        return copy.deepcopy(self)

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad object and field."""
        p = self.params
        if self.conn.enabled and not p.stateful:
            raise ConfigError("/cfg/slb/adv/conn ena: this appliance's core is the stateless "
                              "profile (no connection table; see PARAMS): connection tracking, "
                              "pbind, the leastconns and roundrobin metrics, maxcon and NAT "
                              "are not available")
        _ip(self.if_ip, "/cfg/l3/if addr")
        _mac(self.if_mac, "/cfg/l3/if mac")
        if self.client_gw_mac is not None:
            _mac(self.client_gw_mac, "/cfg/slb/adv clntgw")
        if not maglev.is_prime(self.table_size) or not 13 <= self.table_size <= p.table_stride:
            raise ConfigError(f"/cfg/slb/adv tblsize: {self.table_size} must be a prime "
                              f"between 13 and {p.table_stride}")
        seen_rip: dict[str, int] = {}
        for r in self.reals.values():
            where = f"real {r.num}"
            if r.rip is None:
                raise ConfigError(f"{where}: rip is not set")
            if r.rip in seen_rip:
                raise ConfigError(f"{where}: rip {r.rip} is already used by real {seen_rip[r.rip]}")
            seen_rip[r.rip] = r.num
            if not WEIGHT_RANGE[0] <= r.weight <= WEIGHT_RANGE[1]:
                raise ConfigError(f"{where}: weight {r.weight} out of range 1-48")
            if r.maxcon and not self.conn.enabled:
                raise ConfigError(f"{where}: maxcon {r.maxcon} needs the connection table "
                                  "(/cfg/slb/adv/conn ena): connections are counted there")
            if r.backup is not None and r.backup not in self.reals:
                raise ConfigError(f"{where}: backup real {r.backup} is not defined")
        for g in self.groups.values():
            where = f"group {g.num}"
            for n in g.reals:
                if n not in self.reals:
                    raise ConfigError(f"{where}: real {n} is not defined")
            if g.backup is not None and g.backup not in self.reals:
                raise ConfigError(f"{where}: backup real {g.backup} is not defined")
            if g.metric != "hash" and not self.conn.enabled:
                raise ConfigError(f"{where}: metric {g.metric} needs the connection table "
                                  "(/cfg/slb/adv/conn ena): it chooses the real of new flows, "
                                  "which the table keeps there")
        entries = 0
        seen_service: dict[tuple, int] = {}
        for v in self.virts.values():
            where = f"virt {v.num}"
            if not v.enabled:
                continue
            if v.vip is None:
                raise ConfigError(f"{where}: vip is not set")
            if not v.services:
                raise ConfigError(f"{where}: no service (add one with service PORT)")
            for (port, proto), s in v.services.items():
                swhere = f"{where} service {'any' if port is None else port} {proto}"
                key = (v.vip, port, proto)
                if key in seen_service:
                    raise ConfigError(f"{swhere}: already served by virt {seen_service[key]}")
                seen_service[key] = v.num
                if s.group is None:
                    raise ConfigError(f"{swhere}: no group (set one with group N)")
                if s.group not in self.groups:
                    raise ConfigError(f"{swhere}: group {s.group} is not defined")
                group = self.groups[s.group]
                if not any(self.reals[n].enabled for n in group.reals):
                    raise ConfigError(f"{swhere}: group {s.group} has no enabled real")
                if s.pbind and proto not in ("tcp", "udp"):
                    raise ConfigError(f"{swhere}: pbind clientip needs TCP or UDP")
                if s.pbind and not self.conn.enabled:
                    raise ConfigError(f"{swhere}: pbind clientip needs the connection table "
                                      "(/cfg/slb/adv/conn ena)")
                if s.mode == "nat":
                    self._validate_nat(swhere, port, proto, s)
                if s.mode == "dsr" and s.rport not in (0, port or 0):
                    raise ConfigError(f"{swhere}: rport {s.rport}: DSR cannot change the "
                                      "port (the real answers the client directly)")
                for n in group.reals:
                    if self.reals[n].mac is None:
                        raise ConfigError(f"{swhere}: real {n} has no mac (frames are sent "
                                          "to the real's MAC)")
                entries += 1
        if entries > p.n_vips:
            raise ConfigError(f"/cfg/slb/virt: {entries} services, but the VIP table holds "
                              f"{p.n_vips} entries")

    def _validate_nat(self, swhere: str, port: int | None, proto: str, s: Service) -> None:
        if proto not in ("tcp", "udp"):
            raise ConfigError(f"{swhere}: mode nat needs TCP or UDP (return traffic is "
                              "matched by port)")
        if not self.conn.enabled:
            raise ConfigError(f"{swhere}: mode nat needs the connection table "
                              "(/cfg/slb/adv/conn ena): return traffic is found there")
        if self.client_gw_mac is None:
            raise ConfigError(f"{swhere}: mode nat needs the clients' next hop for the return "
                              "traffic (/cfg/slb/adv/clntgw MAC)")
        if port is None and s.rport:
            raise ConfigError(f"{swhere}: rport {s.rport}: an any-port service keeps the "
                              "client's port")

    # -- compile to hardware ------------------------------------------------------------------
    def compile(self, up: dict[int, bool] | None = None,
                oper_disabled: frozenset[int] = frozenset()) -> ApplianceConfig:
        """The hardware configuration: ``up`` is the health state per real (default all up),
        ``oper_disabled`` the reals taken out by ``/oper/slb/dis``; both leave the tables."""
        self.validate()
        up = up or {}
        # a real that is operator-disabled or down leaves the Maglev tables (the health mask
        # has already stopped its traffic; the rebuilt table spreads its flows evenly)
        reals = {n: RealServer(n, r.mac or "00:00:00:00:00:00", r.rip, r.weight,
                               maxcon=r.maxcon, enabled=r.enabled and n not in oper_disabled and up.get(n, True),
                               up=up.get(n, True))
                 for n, r in self.reals.items()}
        groups = {n: HwGroup(n, list(g.reals), g.backup, Metric[g.metric.upper()])
                  for n, g in self.groups.items()}
        virts = {}
        for v in sorted(self.virts.values(), key=lambda v: v.num):
            if not v.enabled:
                continue
            for (port, proto), s in sorted(v.services.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1])):
                k = len(virts)
                nat = s.mode == "nat"
                virts[k] = VirtualService(k, v.vip, PROTOCOLS[proto], port, group=s.group,
                                          mode=Mode.NAT if nat else Mode.DSR, pbind=s.pbind,
                                          rport=(s.rport or None) if nat else None)
        cfg = ApplianceConfig(own_mac=self.if_mac, own_ip=self.if_ip, reals=reals, groups=groups,
                              virts=virts, miss_to_host=self.miss == "host",
                              table_size=self.table_size, params=self.params,
                              conn=copy.deepcopy(self.conn),
                              client_gw_mac=self.client_gw_mac or "00:00:00:00:00:00")
        # a group whose reals are all operator-disabled keeps an empty table: its traffic
        # falls to the backup real or is dropped as NO_REAL, as the hardware rule says
        return cfg

    def vip_entries(self) -> list[tuple[int, int, tuple[int | None, str]]]:
        """(VIP table entry, virt, (port, proto)) in the order :meth:`compile` assigns them."""
        out = []
        for v in sorted(self.virts.values(), key=lambda v: v.num):
            if v.enabled:
                for key in sorted(v.services, key=lambda k: (k[0] or 0, k[1])):
                    out.append((len(out), v.num, key))
        return out

    # -- the saved form -----------------------------------------------------------------------
    def dump(self) -> str:
        """The CLI commands that rebuild this configuration (``/cfg/dump``)."""
        lines = ["/cfg/sys/baud " + str(self.baud)]
        if self.password_hash:
            lines.append(f"/cfg/sys/admpw-hash {self.password_hash}")
        lines += [f"/cfg/l3/if/addr {self.if_ip}", f"/cfg/l3/if/mac {self.if_mac}",
                  f"/cfg/slb/adv/tblsize {self.table_size}", f"/cfg/slb/adv/miss {self.miss}",
                  f"/cfg/slb/adv/conn {'ena' if self.conn.enabled else 'dis'}",
                  f"/cfg/slb/adv/conntick {self.conn.tick_cycles}",
                  f"/cfg/slb/adv/pmask {self.conn.pmask}"]
        lines += [f"/cfg/slb/adv/conntmout {kind} {getattr(self.conn, kind)}"
                  for kind in ConnConfig.TIMEOUT_FIELDS]
        if self.client_gw_mac:
            lines.append(f"/cfg/slb/adv/clntgw {self.client_gw_mac}")
        for r in sorted(self.reals.values(), key=lambda r: r.num):
            base = f"/cfg/slb/real {r.num}"
            lines.append(f"{base}/rip {r.rip}" if r.rip else base)
            if r.mac:
                lines.append(f"{base}/mac {r.mac}")
            lines.append(f"{base}/weight {r.weight}")
            if r.maxcon:
                lines.append(f"{base}/maxcon {r.maxcon}")
            if r.backup is not None:
                lines.append(f"{base}/backup {r.backup}")
            if r.name:
                lines.append(f"{base}/name {r.name}")
            if (r.inter, r.retry, r.restr) != (2, 4, 2):
                lines += [f"{base}/inter {r.inter}", f"{base}/retry {r.retry}",
                          f"{base}/restr {r.restr}"]
            lines.append(f"{base}/{'ena' if r.enabled else 'dis'}")
        for g in sorted(self.groups.values(), key=lambda g: g.num):
            base = f"/cfg/slb/group {g.num}"
            lines += [f"{base}/add {n}" for n in g.reals] or [base]
            lines += [f"{base}/metric {g.metric}", f"{base}/health {g.health}"]
            if g.content:
                lines.append(f"{base}/content {g.content}")
            if g.backup is not None:
                lines.append(f"{base}/backup {g.backup}")
        for v in sorted(self.virts.values(), key=lambda v: v.num):
            base = f"/cfg/slb/virt {v.num}"
            lines.append(f"{base}/vip {v.vip}" if v.vip else base)
            for (port, proto), s in sorted(v.services.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1])):
                sbase = f"{base}/service {'any' if port is None else port} {proto}"
                if s.group is not None:
                    lines.append(f"{sbase}/group {s.group}")
                lines += [f"{sbase}/rport {s.rport}", f"{sbase}/mode {s.mode}",
                          f"{sbase}/pbind {'clientip' if s.pbind else 'disable'}",
                          f"{sbase}/timeout {s.timeout}"]
            lines.append(f"{base}/{'ena' if v.enabled else 'dis'}")
        return "\n".join(lines) + "\n"


def default_slb_config(n_reals: int = 4, params: Params = DEFAULT_PARAMS) -> SlbConfig:
    """The built-in configuration: VIP 10.0.0.100 TCP 80 → group 1 of ``n_reals`` reals, the
    same appliance as :func:`openslb.model.config.default_config`, for a core with ``params``."""
    cfg = SlbConfig(password_hash=hash_password("admin", salt=b"openslb-default!"),
                    params=params)
    cfg.conn.enabled = params.stateful     # (a stateless core has no connection table)
    for n in range(1, n_reals + 1):
        cfg.reals[n] = Real(n, rip=f"10.0.1.{10 + n}", mac=f"02:00:00:00:01:{n:02x}")
    cfg.groups[1] = Group(1, reals=list(range(1, n_reals + 1)), health="http")
    cfg.virts[1] = Virt(1, vip="10.0.0.100", services={(80, "tcp"): Service(80, group=1)})
    return cfg
