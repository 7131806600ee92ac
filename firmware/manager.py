"""The management session: pending / applied / saved configuration, health, statistics.

One :class:`Manager` owns a device (a register bus).  Edits go to ``pending``; ``apply``
validates the whole pending configuration, programs it (shadow tables, one atomic COMMIT) and
only then makes it the applied one, so a failed apply changes nothing; ``revert`` drops the
pending edits; ``save`` writes the applied configuration as a CLI script, atomically (write to
a temporary file, then rename); ``revert_apply`` goes back to the saved configuration.
"""

from __future__ import annotations

import difflib
import functools
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from openslb.firmware.programmer import Programmer
from openslb.firmware.regs import Registers, address
from openslb.firmware.slb import ConfigError, SlbConfig
from openslb.hw.spec import MAXCON_BITS

__all__ = ["Manager", "HealthEvent"]


@dataclass
class HealthEvent:
    when: float                 #: wall clock (time.time())
    real: int
    up: bool
    reason: str
    mono: float = field(default_factory=time.monotonic)   #: the same moment, monotonic clock


@dataclass
class _Sample:
    when: float
    packets: int
    nbytes: int


def _locked(method):
    """One device conversation at a time (the CLI, the health checker and the exporter may run
    in different threads)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    return wrapper


class Manager:
    def __init__(self, bus, saved_path: str | Path | None = None,
                 initial: SlbConfig | None = None, minimal_disruption: bool = False) -> None:
        self.lock = threading.RLock()
        self.bus = bus
        self.programmer = Programmer(bus)
        self.saved_path = Path(saved_path) if saved_path else None
        self.minimal_disruption = minimal_disruption
        self.applied = initial.copy() if initial else SlbConfig()
        self.regs = Registers(bus, self.applied.params)
        self.pending = self.applied.copy()
        self.up: dict[int, bool] = {}
        self.oper_disabled: set[int] = set()
        self.events: list[HealthEvent] = []
        self._samples: dict[tuple, _Sample] = {}

    # -- configuration workflow ---------------------------------------------------------------
    @_locked
    def program_applied(self) -> str:
        cfg = self.applied.compile(self.up, frozenset(self.oper_disabled))
        report = self.programmer.apply(cfg, self.minimal_disruption)
        return str(report)

    def diff(self) -> str:
        old, new = self.applied.dump().splitlines(), self.pending.dump().splitlines()
        lines = [l for l in difflib.unified_diff(old, new, "applied", "pending", lineterm="", n=0)
                 if not l.startswith("@@")]
        return "\n".join(lines) if lines else "no pending changes"

    @_locked
    def apply(self) -> str:
        self.pending.validate()          # refuses before anything is written
        cfg = self.pending.compile(self.up, frozenset(self.oper_disabled))
        report = self.programmer.apply(cfg, self.minimal_disruption)
        self.applied = self.pending.copy()
        return f"apply complete ({report})"

    def revert(self) -> str:
        self.pending = self.applied.copy()
        return "pending changes dropped"

    def save(self) -> str:
        if self.saved_path is None:
            raise ConfigError("save: no configuration file (start the CLI with --config FILE)")
        note = " (pending changes are not saved: apply them first)" if (
            self.pending.dump() != self.applied.dump()) else ""
        self.saved_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.saved_path.parent, prefix=".openslb-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(self.applied.dump())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.saved_path)
        return f"saved to {self.saved_path}{note}"

    def load_saved(self, run_script) -> SlbConfig:
        """The saved configuration, rebuilt by replaying its commands with ``run_script``."""
        if self.saved_path is None or not self.saved_path.exists():
            raise ConfigError("no saved configuration")
        return run_script(self.saved_path.read_text(), str(self.saved_path))

    @_locked
    def revert_apply(self, saved: SlbConfig) -> str:
        saved.validate()
        cfg = saved.compile(self.up, frozenset(self.oper_disabled))
        report = self.programmer.apply(cfg, self.minimal_disruption)
        self.applied, self.pending = saved.copy(), saved.copy()
        return f"reverted to the saved configuration ({report})"

    # -- health and operator state ------------------------------------------------------------
    @_locked
    def set_up(self, real: int, up: bool, reason: str) -> None:
        """Record a health change: write the health mask at once (the data plane falls back on
        the next frame), then rebuild the tables without the real (or with it again), so that
        its flows spread over every live real instead of the fallback slots."""
        if self.up.get(real, True) == up:
            return
        self.up[real] = up
        cfg = self.applied
        mask = sum(1 << n for n in cfg.reals if self.up.get(n, True))
        self.programmer.set_health(mask, cfg.params.n_reals)
        # logged once the hardware has it: from this moment the real gets no new flow
        self.events.append(HealthEvent(time.time(), real, up, reason))
        try:
            self.program_applied()
        except (IOError, ConfigError) as e:
            self.events.append(HealthEvent(time.time(), real, up, f"table rebuild failed: {e}"))

    @_locked
    def oper(self, real: int, enable: bool) -> str:
        if real not in self.applied.reals:
            raise ConfigError(f"/oper/slb: real {real} is not in the applied configuration")
        (self.oper_disabled.discard if enable else self.oper_disabled.add)(real)
        try:
            report = self.program_applied()
        except ConfigError:
            (self.oper_disabled.add if enable else self.oper_disabled.discard)(real)
            raise
        verb = "enabled" if enable else "disabled (no new flows)"
        self.events.append(HealthEvent(time.time(), real, enable, f"operator {verb}"))
        return f"real {real} {verb} ({report})"

    # -- statistics ---------------------------------------------------------------------------
    @_locked
    def counters(self) -> dict[str, int]:
        return self.regs.counters()

    def _stat(self, index: int, real: bool) -> tuple[int, int]:
        self.regs.write("STAT_SEL", index | (real << 15))
        w = self.bus.read_many(address("STAT"), 4)
        return w[0] | w[1] << 32, w[2] | w[3] << 32

    def _with_rate(self, key: tuple, packets: int, nbytes: int) -> dict:
        now = time.monotonic()
        prev = self._samples.get(key)
        self._samples[key] = _Sample(now, packets, nbytes)
        pps = bps = None
        if prev is not None and now > prev.when:
            dt = now - prev.when
            pps, bps = (packets - prev.packets) / dt, 8 * (nbytes - prev.nbytes) / dt
        return {"packets": packets, "bytes": nbytes, "pps": pps, "bps": bps}

    def _conns(self, real: int) -> tuple[int, bool]:
        """A real's current connections (REAL_CONNS) and whether it is at its maxcon."""
        self.regs.write("REAL_SEL", real)
        word = self.regs.read("REAL_CONNS")
        return word & ((1 << MAXCON_BITS) - 1), bool(word >> 31)

    @_locked
    def real_stats(self, real: int) -> dict:
        packets, nbytes = self._stat(real, True)
        conns, full = self._conns(real)
        return {**self._with_rate(("real", real), packets, nbytes), "conns": conns, "full": full}

    @_locked
    def virt_stats(self, virt: int) -> dict:
        packets = nbytes = 0
        for entry, v, _ in self.applied.vip_entries():
            if v == virt:
                p, b = self._stat(entry, False)
                packets, nbytes = packets + p, nbytes + b
        return self._with_rate(("virt", virt), packets, nbytes)

    @_locked
    def group_stats(self, group: int) -> dict:
        packets = nbytes = conns = 0
        for real in self.applied.groups[group].reals:
            p, b = self._stat(real, True)
            packets, nbytes, conns = packets + p, nbytes + b, conns + self._conns(real)[0]
        return {**self._with_rate(("group", group), packets, nbytes), "conns": conns}

    # -- information ----------------------------------------------------------------------------
    def which(self, client: str, cport: int = 40000, vip: str | None = None,
              vport: int | None = None, proto: str = "tcp") -> str:
        """Which real serves this client, answered from the reference model with the tables
        and health the device holds now."""
        from scapy.layers.inet import IP, TCP, UDP
        from scapy.layers.l2 import Ether

        from openslb.model.pipeline import Appliance

        cfg = self.applied.compile(self.up, frozenset(self.oper_disabled))
        entries = self.applied.vip_entries()
        if not entries:
            return "no virtual service is configured"
        if vip is None:
            _, vnum, (port, sproto) = entries[0]
            vip, proto = self.applied.virts[vnum].vip, sproto
            vport = vport if vport is not None else (port or 80)
        model = Appliance(cfg)
        model.tables.update(self.programmer.banks["active"])
        # a group whose metric is not hash chooses new flows by its live state (pointer,
        # connection counts), which the device does not show: answer with the Maglev slot,
        # which its packets without a connection entry follow, and say so
        service = next((self.applied.virts[v].services[key] for _, v, key in entries
                        if self.applied.virts[v].vip == vip and key[1] == proto
                        and key[0] in (vport, None)), None)
        group = None if service is None else service.group
        metric = self.applied.groups[group].metric if group in self.applied.groups else "hash"
        note = "" if metric == "hash" else (
            f"; new flows of group {group} are chosen by {metric} at the moment they start")
        flags = "S" if metric == "hash" else "A"
        l4 = TCP(sport=cport, dport=vport or 80, flags=flags) if proto == "tcp" else UDP(
            sport=cport, dport=vport or 53)
        frame = bytes(Ether(dst=cfg.own_mac, src="02:00:00:00:00:99") / IP(src=client, dst=vip) / l4)
        d = model.decide(frame)
        if d.real is None:
            reason = d.drop.name if d.drop is not None else "not dispatched"
            return f"{client}:{cport} -> {vip}:{vport} {proto}: no real ({reason})"
        return (f"{client}:{cport} -> {vip}:{vport} {proto}: real {d.real} "
                f"({self.applied.reals[d.real].rip}), hash {d.hash:#010x}{note}")

    def health_state(self, real: int) -> str:
        if real in self.oper_disabled:
            return "disabled (operator)"
        r = self.applied.reals.get(real)
        if r is not None and not r.enabled:
            return "disabled (config)"
        return "up" if self.up.get(real, True) else "DOWN"

    def table_summary(self) -> dict[int, dict[int, int]]:
        out = {}
        for g, table in self.programmer.banks["active"].items():
            values, counts = np.unique(table, return_counts=True)
            out[g] = {int(v): int(c) for v, c in zip(values, counts)}
        return out

