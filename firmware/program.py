"""Compile an :class:`~openslb.model.config.ApplianceConfig` into register writes.

The sequence fills the shadow Maglev bank and every other table first and switches banks with one
COMMIT at the end, so traffic sees either the old tables or the new ones, never a mix.
"""

from __future__ import annotations

import numpy as np

from openslb.firmware.regs import address, pack_fields
from openslb.hw.spec import Mode
from openslb.model.config import ApplianceConfig, ip_int, mac_bytes
from openslb.model.maglev import EMPTY

__all__ = ["program", "real_writes", "REAL_SELECTED", "table_writes", "health_writes", "member_writes"]

Write = tuple[int, int]


def _mac_words(mac: str) -> tuple[int, int]:
    value = int.from_bytes(mac_bytes(mac), "big")
    return value >> 32, value & 0xFFFFFFFF


def table_writes(group: int, table: np.ndarray, index_bits: int) -> list[Write]:
    """Upload one group's Maglev table into the shadow bank (empty slots as real 0)."""
    writes = [(address("TABLE_ADDR"), group << index_bits)]
    data = address("TABLE_DATA")
    writes += [(data, 0 if int(r) == EMPTY else int(r)) for r in table]
    return writes


def member_writes(group: int, reals: set[int], n_reals: int) -> list[Write]:
    """A group's real-membership mask (the reals in its table) into the shadow bank."""
    mask = 0
    for real in reals:
        mask |= 1 << real
    writes = []
    for word in range(-(-n_reals // 32)):
        writes += [(address("MEMBER_SEL"), pack_fields("MEMBER_SEL", word=word, group=group)),
                   (address("MEMBER_DATA"), mask >> (32 * word) & 0xFFFFFFFF)]
    return writes


def health_writes(mask: int, n_reals: int) -> list[Write]:
    return [(address("HEALTH", k), (mask >> (32 * k)) & 0xFFFFFFFF)
            for k in range(max(1, n_reals // 32))]


#: The registers that act on the real REAL_SEL names, in the order :func:`real_writes` sends them.
REAL_SELECTED = ("REAL_MAC_HI", "REAL_MAC_LO", "REAL_IP", "REAL_LIMIT")


def real_writes(real) -> list[Write]:
    """REAL_SEL, then the real's :data:`REAL_SELECTED` registers: its MAC, IP and limits."""
    hi, lo = _mac_words(real.mac)
    values = {"REAL_MAC_HI": hi, "REAL_MAC_LO": lo, "REAL_IP": ip_int(real.ip or "0.0.0.0"),
              "REAL_LIMIT": pack_fields("REAL_LIMIT", maxcon=real.maxcon, weight=real.weight)}
    return [(address("REAL_SEL"), real.index)] + [(address(n), values[n]) for n in REAL_SELECTED]


def program(cfg: ApplianceConfig) -> list[Write]:
    """Every register write that brings a freshly reset core to ``cfg``."""
    cfg.validate()
    p = cfg.params
    hi, lo = _mac_words(cfg.own_mac)
    w: list[Write] = [
        (address("CTRL"), pack_fields("CTRL", miss_to_host=int(cfg.miss_to_host))),
        (address("OWN_MAC_HI"), hi), (address("OWN_MAC_LO"), lo),
        (address("OWN_IP"), ip_int(cfg.own_ip)),
        *zip((address("CLIENT_GW_MAC_HI"), address("CLIENT_GW_MAC_LO")),
             _mac_words(cfg.client_gw_mac)),
        (address("TABLE_SIZE"), cfg.table_size),
    ]
    w += [(address(f"RSS_KEY{k}"), int.from_bytes(cfg.rss_key[4 * k:4 * k + 4], "big"))
          for k in range(10)]
    for real in sorted(cfg.reals.values(), key=lambda r: r.index):
        w += real_writes(real)
    for g in range(p.n_groups):
        group = cfg.groups.get(g)
        backup = 0 if group is None or group.backup is None else (
            pack_fields("GROUP_BACKUP", real=group.backup, enable=1))
        w.append((address("GROUP_BACKUP", g), backup))
        metric = 0 if group is None else int(group.metric)
        w.append((address("GROUP_METRIC", g), pack_fields("GROUP_METRIC", metric=metric)))
    for k in range(p.n_vips):
        v = cfg.virts.get(k)
        if v is None or not v.enabled:
            # (a disabled entry's address is cleared too: a NAT connection that outlives its
            # entry returns from address 0, never from a stale VIP)
            w += [(address("VIP_SERVICE", k), 0), (address("VIP_PBIND", k), 0),
                  (address("VIP_IP", k), 0), (address("VIP_RPORT", k), 0)]
            continue
        w += [
            (address("VIP_IP", k), ip_int(v.vip)),
            (address("VIP_GROUP", k), v.group),
            (address("VIP_SERVICE", k), pack_fields(
                "VIP_SERVICE", port=v.port or 0, proto=v.proto, enable=1,
                any_port=int(v.port is None), mode=int(Mode(v.mode)))),
            (address("VIP_PBIND", k), pack_fields(
                "VIP_PBIND", enable=int(v.pbind), per_port=int(v.pbind_per_port))),
            (address("VIP_RPORT", k), v.rport or 0),
        ]
    w.append((address("CONN_CTRL"), pack_fields("CONN_CTRL", enable=int(cfg.conn.enabled))))
    w += [(address("CONN_TIMEOUT", int(kind)), ticks) for kind, ticks in cfg.conn.timeouts().items()]
    w.append((address("PBIND_TIMEOUT"), cfg.conn.pbind))
    w.append((address("PBIND_PREFIX"), cfg.conn.pmask // 8))
    w.append((address("CONN_TICK_CYCLES"), cfg.conn.tick_cycles))
    for g in sorted(cfg.groups):
        w += table_writes(g, cfg.table(g), p.index_bits)
        w += member_writes(g, cfg.members(g), p.n_reals)
    # the health mask is live (not committed): reals that only the new tables use may be marked
    # up before the switch, and a real that is down is down under both configurations
    w += health_writes(cfg.health_mask(), p.n_reals)
    w.append((address("COMMIT"), 1))
    return w
