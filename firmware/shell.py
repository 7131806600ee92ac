"""The Alteon-style CLI: menu paths, navigation, the pending-change commands.

``Shell(manager).execute(line)`` runs one command line and returns its output; a bad command
raises :class:`CliError` with one line saying what and where (nothing is changed then).  The
same shell serves the interactive console (:func:`openslb.firmware.console.interactive`, with
completion and history from prompt_toolkit), scripts (``-c``/``-f``, the saved configuration)
and the serial console.

Paths look like ``/cfg/slb/real 1/rip 10.0.0.11``: ``/`` starts from the top, each ``/``-separated
step is a menu (with its arguments: ``real 1``, ``service 80 tcp``) or, last, a command with its
arguments.  A line that ends on a menu enters it; ``..`` goes up, ``/`` to the top.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass, field

from openslb.firmware.slb import (BAUD_RATES, HEALTH_CHECKS, METRICS, SERVICE_NAMES, ConfigError,
                                  Group, Real, Service, SlbConfig, Virt, _ip, _mac, hash_password)
from openslb.hw.spec import CONN_TIMEOUT_MAX, MAXCON_BITS
from openslb.model.config import ConnConfig

__all__ = ["Shell", "CliError", "ROOT"]


class CliError(Exception):
    """A refused command: one line naming the command and what is wrong."""


Handler = Callable[["Shell", dict, list[str]], str]


@dataclass
class Cmd:
    help: str
    handler: Handler
    usage: str = ""


@dataclass
class Menu:
    title: str
    children: dict[str, "Menu"] = field(default_factory=dict)
    commands: dict[str, Cmd] = field(default_factory=dict)
    args: tuple[str, ...] = ()        #: argument names (entering needs them)
    optional_args: int = 0            #: how many trailing args may be left out
    enter: Callable[["Shell", dict, list[str]], dict] | None = None  #: args → context


def _int(value: str, what: str, lo: int, hi: int) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise CliError(f"{what}: {value!r} is not a number") from None
    if not lo <= n <= hi:
        raise CliError(f"{what}: {n} out of range {lo}-{hi}")
    return n


def _one(args: list[str], what: str, usage: str) -> str:
    if len(args) != 1:
        raise CliError(f"{what}: usage: {usage}")
    return args[0]


def _none(args: list[str], what: str) -> None:
    if args:
        raise CliError(f"{what}: takes no argument")


def _wrap(fn: Callable[[str], object], what: str):
    try:
        return fn(what)
    except ConfigError as e:
        raise CliError(str(e)) from None


# ---- context builders (entering a menu) -------------------------------------------------------

def _enter_real(sh: "Shell", ctx: dict, args: list[str]) -> dict:
    n = _int(args[0], "real", 1, sh.cfg.params.n_reals - 1)
    sh.cfg.reals.setdefault(n, Real(n))
    return {**ctx, "real": n}


def _enter_group(sh: "Shell", ctx: dict, args: list[str]) -> dict:
    n = _int(args[0], "group", 1, sh.cfg.params.n_groups - 1)
    sh.cfg.groups.setdefault(n, Group(n))
    return {**ctx, "group": n}


def _enter_virt(sh: "Shell", ctx: dict, args: list[str]) -> dict:
    n = _int(args[0], "virt", 1, 1024)
    sh.cfg.virts.setdefault(n, Virt(n))
    return {**ctx, "virt": n}


def _enter_service(sh: "Shell", ctx: dict, args: list[str]) -> dict:
    spec = args[0].lower()
    proto = args[1].lower() if len(args) > 1 else None
    if spec in SERVICE_NAMES:
        port, default_proto = SERVICE_NAMES[spec]
    elif spec == "any":
        port, default_proto = None, "tcp"
    else:
        port, default_proto = _int(spec, "service", 1, 65535), "tcp"
    proto = proto or default_proto
    if proto not in ("tcp", "udp"):
        raise CliError(f"service {spec}: protocol {proto!r} is not tcp or udp")
    virt = sh.cfg.virts[ctx["virt"]]
    virt.services.setdefault((port, proto), Service(port, proto))
    return {**ctx, "service": (port, proto)}


# ---- handlers ---------------------------------------------------------------------------------

def _real(sh, ctx) -> Real:
    return sh.cfg.reals[ctx["real"]]


def _group(sh, ctx) -> Group:
    return sh.cfg.groups[ctx["group"]]


def _virt(sh, ctx) -> Virt:
    return sh.cfg.virts[ctx["virt"]]


def _service(sh, ctx) -> Service:
    return sh.cfg.virts[ctx["virt"]].services[ctx["service"]]


def _setter(getter, attr: str, parse: Callable[[str, str], object], usage: str) -> Cmd:
    def handler(sh, ctx, args):
        value = parse(_one(args, attr, f"{attr} {usage}"), attr)
        setattr(getter(sh, ctx), attr, value)
        return ""
    return Cmd(f"set {attr} ({usage})", handler, usage)


def _choice(options) -> Callable[[str, str], str]:
    def parse(value: str, what: str) -> str:
        if value.lower() not in options:
            raise CliError(f"{what}: {value!r} is not one of {', '.join(options)}")
        return value.lower()
    return parse


def _ip_arg(value: str, what: str) -> str:
    return _wrap(lambda w: _ip(value, w), what)


def _mac_arg(value: str, what: str) -> str:
    return _wrap(lambda w: _mac(value, w), what)


def _real_ref(sh) -> Callable[[str, str], int | None]:
    def parse(value: str, what: str):
        if value.lower() in ("none", "0"):
            return None
        return _int(value, what, 1, sh.cfg.params.n_reals - 1)
    return parse


def _flag(getter, attr: str, value: bool, what: str) -> Cmd:
    def handler(sh, ctx, args):
        _none(args, what)
        setattr(getter(sh, ctx), attr, value)
        return ""
    return Cmd(f"{'enable' if value else 'disable'}", handler)


def _cur(getter) -> Cmd:
    def handler(sh, ctx, args):
        obj = getter(sh, ctx)
        return "\n".join(f"  {k}: {v}" for k, v in vars(obj).items())
    return Cmd("show the current settings", handler)


def _delete(kind: str) -> Cmd:
    def handler(sh, ctx, args):
        _none(args, "del")
        if kind == "service":
            del sh.cfg.virts[ctx["virt"]].services[ctx["service"]]
        else:
            getattr(sh.cfg, kind + "s").pop(ctx[kind])
        sh.leave()
        return f"{kind} deleted (pending)"
    return Cmd(f"delete this {kind}", handler)


def _group_add(sh, ctx, args):
    n = _int(_one(args, "add", "add REAL"), "add", 1, sh.cfg.params.n_reals - 1)
    if n not in sh.cfg.reals:
        raise CliError(f"add: real {n} is not defined (create it under /cfg/slb/real {n})")
    g = _group(sh, ctx)
    if n in g.reals:
        raise CliError(f"add: real {n} is already in group {g.num}")
    g.reals.append(n)
    return ""


def _group_rem(sh, ctx, args):
    n = _int(_one(args, "rem", "rem REAL"), "rem", 1, sh.cfg.params.n_reals - 1)
    g = _group(sh, ctx)
    if n not in g.reals:
        raise CliError(f"rem: real {n} is not in group {g.num}")
    g.reals.remove(n)
    return ""


def _content(sh, ctx, args):
    _group(sh, ctx).content = " ".join(args)
    return ""


def _set_group_of_service(sh, ctx, args):
    n = _int(_one(args, "group", "group N"), "group", 1, sh.cfg.params.n_groups - 1)
    _service(sh, ctx).group = n
    return ""


def _pbind(value: str, what: str) -> bool:
    return _choice(("clientip", "disable"))(value, what) == "clientip"


def _pmask(sh, ctx, args):
    """The client prefix length a binding covers (whole bytes: the hardware masks by byte)."""
    sh.cfg.conn.pmask = int(_choice(("0", "8", "16", "24", "32"))(
        _one(args, "pmask", "pmask 0|8|16|24|32"), "pmask"))
    return ""


def _clntgw(sh, ctx, args):
    """The next hop towards the clients: the destination MAC of NAT return traffic."""
    value = _one(args, "clntgw", "clntgw MAC|none")
    sh.cfg.client_gw_mac = None if value == "none" else _mac_arg(value, "clntgw")
    return ""


def _passwd(sh, ctx, args):
    if args:
        new = " ".join(args)
    else:
        new = getpass.getpass("new admin password: ")
        if getpass.getpass("again: ") != new:
            raise CliError("passwd: the two passwords differ")
    if len(new) < 4:
        raise CliError("passwd: at least 4 characters")
    sh.cfg.password_hash = hash_password(new)
    return "admin password changed (pending)"


def _admpw_hash(sh, ctx, args):
    value = _one(args, "admpw-hash", "admpw-hash scrypt$SALT$HASH")
    if value.count("$") != 2 or not value.startswith("scrypt$"):
        raise CliError("admpw-hash: not a hash made by passwd")
    sh.cfg.password_hash = value
    return ""


def _baud(sh, ctx, args):
    n = _int(_one(args, "baud", "baud RATE"), "baud", 1, 10_000_000)
    if n not in BAUD_RATES:
        raise CliError(f"baud: {n} is not one of {', '.join(map(str, BAUD_RATES))}")
    sh.cfg.baud = n
    return "serial rate changed (takes effect with a bitstream built for it)"


def _tblsize(sh, ctx, args):
    sh.cfg.table_size = _int(_one(args, "tblsize", "tblsize PRIME"), "tblsize", 13,
                             sh.cfg.params.table_stride)
    return ""


def _miss(sh, ctx, args):
    sh.cfg.miss = _choice(("drop", "host"))(_one(args, "miss", "miss drop|host"), "miss")
    return ""


def _conn(sh, ctx, args):
    enable = _choice(("ena", "dis"))(_one(args, "conn", "conn ena|dis"), "conn") == "ena"
    if enable and not sh.cfg.params.stateful:
        raise CliError("conn ena: this appliance's core is the stateless profile (no "
                       "connection table)")
    sh.cfg.conn.enabled = enable
    return ""


def _conntmout(sh, ctx, args):
    kinds = ConnConfig.TIMEOUT_FIELDS
    if len(args) != 2:
        raise CliError(f"conntmout: usage: conntmout {'|'.join(kinds)} TICKS")
    kind = _choice(kinds)(args[0], "conntmout")
    setattr(sh.cfg.conn, kind, _int(args[1], f"conntmout {kind}", 0, CONN_TIMEOUT_MAX))
    return ""


def _conntick(sh, ctx, args):
    sh.cfg.conn.tick_cycles = _int(_one(args, "conntick", "conntick CYCLES"), "conntick", 0,
                                   0xFFFFFFFF)
    return ""


def _dump(sh, ctx, args):
    return sh.cfg.dump().rstrip()


def _need_manager(sh):
    if sh.manager is None:
        raise CliError("this command needs a device")
    return sh.manager


def _oper(enable: bool) -> Cmd:
    def handler(sh, ctx, args):
        word = "ena" if enable else "dis"
        n = _int(_one(args, word, f"{word} REAL"), word, 1, sh.cfg.params.n_reals - 1)
        return sh.guard(lambda: _need_manager(sh).oper(n, enable))
    return Cmd(("enable" if enable else "disable (drain)") + " a real now, without apply",
               handler, "REAL")


def _fmt_stats(title: str, s: dict) -> str:
    rate = "" if s["pps"] is None else f", {s['pps']:.1f} pkt/s, {s['bps'] / 1e6:.3f} Mb/s"
    line = f"{title}: {s['packets']} packets, {s['bytes']} bytes{rate}"
    if "conns" in s:
        # (connections are counted per real; a virt's are not kept apart)
        line += f"; current connections: {s['conns']}" + (" (at maxcon)" if s.get("full") else "")
    return line


def _stats(kind: str) -> Cmd:
    def handler(sh, ctx, args):
        m = _need_manager(sh)
        applied = m.applied
        n = _int(_one(args, kind, f"{kind} N"), kind, 1, 4096)
        if n not in getattr(applied, kind + "s"):
            raise CliError(f"{kind} {n} is not in the applied configuration")
        s = sh.guard(lambda: getattr(m, f"{kind}_stats")(n))
        return _fmt_stats(f"{kind} {n}", s)
    return Cmd(f"packets, bytes and rates of a {kind}", handler, "N")


def _drops(sh, ctx, args):
    c = sh.guard(lambda: _need_manager(sh).counters())
    return "\n".join(f"  {k:18s} {v}" for k, v in c.items())


def _info_dump(sh, ctx, args):
    m = _need_manager(sh)
    lines = [m.applied.dump().rstrip(), "", "health:"]
    lines += [f"  real {n}: {m.health_state(n)}" for n in sorted(m.applied.reals)]
    lines.append("tables (slots per real):")
    for g, counts in sorted(m.table_summary().items()):
        lines.append(f"  group {g}: " + ", ".join(f"real {r}: {c}" for r, c in counts.items()))
    return "\n".join(lines)


def _info_real(sh, ctx, args):
    m = _need_manager(sh)
    n = _int(_one(args, "real", "real N"), "real", 1, 4096)
    r = m.applied.reals.get(n)
    if r is None:
        raise CliError(f"real {n} is not in the applied configuration")
    groups = [g.num for g in m.applied.groups.values() if n in g.reals]
    slots = {g: c.get(n, 0) for g, c in m.table_summary().items()}
    return (f"real {n}: rip {r.rip}, mac {r.mac}, weight {r.weight}, {m.health_state(n)}, "
            f"groups {groups}, table slots {slots}")


def _which(sh, ctx, args):
    if not 1 <= len(args) <= 4:
        raise CliError("which: usage: which CLIENT_IP [CLIENT_PORT] [VIP] [VIP_PORT]")
    client = _ip_arg(args[0], "which")
    cport = _int(args[1], "which client port", 0, 65535) if len(args) > 1 else 40000
    vip = _ip_arg(args[2], "which") if len(args) > 2 else None
    vport = _int(args[3], "which VIP port", 0, 65535) if len(args) > 3 else None
    return _need_manager(sh).which(client, cport, vip, vport)


def _events(sh, ctx, args):
    import time as _t
    m = _need_manager(sh)
    return "\n".join(f"  {_t.strftime('%H:%M:%S', _t.localtime(e.when))} real {e.real} "
                     f"{'UP' if e.up else 'DOWN'}: {e.reason}" for e in m.events[-50:]) or "  none"


def _build_root() -> Menu:
    real = Menu("Real server", args=("N",), enter=_enter_real, commands={
        "rip": _setter(_real, "rip", _ip_arg, "A.B.C.D"),
        "mac": _setter(_real, "mac", _mac_arg, "aa:bb:cc:dd:ee:ff"),
        "weight": _setter(_real, "weight", lambda v, w: _int(v, w, 1, 48), "1-48"),
        "maxcon": _setter(_real, "maxcon", lambda v, w: _int(v, w, 0, (1 << MAXCON_BITS) - 1),
                          "N (0 = none)"),
        "name": _setter(_real, "name", lambda v, w: v, "TEXT"),
        "inter": _setter(_real, "inter", lambda v, w: _int(v, w, 1, 60), "SECONDS (health)"),
        "retry": _setter(_real, "retry", lambda v, w: _int(v, w, 1, 63), "N failures to go down"),
        "restr": _setter(_real, "restr", lambda v, w: _int(v, w, 1, 63), "N successes to come up"),
        "ena": _flag(_real, "enabled", True, "ena"),
        "dis": _flag(_real, "enabled", False, "dis"),
        "del": _delete("real"), "cur": _cur(_real),
    })
    real.commands["backup"] = Cmd("backup real (none to clear)", lambda sh, ctx, a: setattr(
        _real(sh, ctx), "backup", _real_ref(sh)(_one(a, "backup", "backup REAL|none"), "backup")) or "")
    group = Menu("Real server group", args=("N",), enter=_enter_group, commands={
        "add": Cmd("add a real server", _group_add, "REAL"),
        "rem": Cmd("remove a real server", _group_rem, "REAL"),
        "metric": _setter(_group, "metric", _choice(METRICS), "|".join(METRICS)),
        "health": _setter(_group, "health", _choice(HEALTH_CHECKS), "|".join(HEALTH_CHECKS)),
        "content": Cmd("HTTP: text the page must contain; DNS: name to ask", _content, "TEXT"),
        "del": _delete("group"), "cur": _cur(_group),
    })
    group.commands["backup"] = Cmd("backup real (none to clear)", lambda sh, ctx, a: setattr(
        _group(sh, ctx), "backup", _real_ref(sh)(_one(a, "backup", "backup REAL|none"), "backup")) or "")
    service = Menu("Virtual service", args=("PORT", "PROTO"), optional_args=1,
                   enter=_enter_service, commands={
        "group": Cmd("real server group", _set_group_of_service, "N"),
        "rport": _setter(_service, "rport", lambda v, w: _int(v, w, 0, 65535), "PORT (0 = same)"),
        "pbind": _setter(_service, "pbind", _pbind, "clientip|disable"),
        "timeout": _setter(_service, "timeout", lambda v, w: _int(v, w, 1, 65535), "MINUTES"),
        "mode": _setter(_service, "mode", _choice(("dsr", "nat")), "dsr|nat"),
        "del": _delete("service"), "cur": _cur(_service),
    })
    virt = Menu("Virtual server", args=("N",), enter=_enter_virt, children={"service": service},
                commands={
        "vip": _setter(_virt, "vip", _ip_arg, "A.B.C.D"),
        "ena": _flag(_virt, "enabled", True, "ena"),
        "dis": _flag(_virt, "enabled", False, "dis"),
        "del": _delete("virt"),
        "cur": Cmd("show the current settings", lambda sh, ctx, a: "\n".join(
            f"  {k}: {v}" for k, v in vars(_virt(sh, ctx)).items())),
    })
    adv = Menu("SLB advanced", commands={
        "tblsize": Cmd("Maglev table size M (a prime)", _tblsize, "PRIME"),
        "miss": Cmd("traffic for no VIP: drop or pass to the host port", _miss, "drop|host"),
        "conn": Cmd("connection table (per-connection consistency) on or off", _conn, "ena|dis"),
        "conntmout": Cmd("timeout in ticks: half-open, established, closing, UDP connections, "
                         "client bindings", _conntmout, "syn|open|closing|udp|pbind TICKS"),
        "conntick": Cmd("core clock cycles per connection-time tick (0: stopped)", _conntick,
                        "CYCLES"),
        "pmask": Cmd("client prefix a pbind binding covers (32: one client)", _pmask,
                     "0|8|16|24|32"),
        "clntgw": Cmd("MAC of the next hop towards the clients (NAT return traffic)", _clntgw,
                      "MAC|none"),
    })
    slb = Menu("Server load balancing", children={"real": real, "group": group, "virt": virt,
                                                   "adv": adv})
    l3if = Menu("IP interface", args=("N",), optional_args=1, enter=lambda sh, ctx, a: ctx,
                commands={
        "addr": Cmd("appliance IP address", lambda sh, ctx, a: setattr(
            sh.cfg, "if_ip", _ip_arg(_one(a, "addr", "addr A.B.C.D"), "addr")) or "", "A.B.C.D"),
        "mac": Cmd("appliance MAC address", lambda sh, ctx, a: setattr(
            sh.cfg, "if_mac", _mac_arg(_one(a, "mac", "mac MAC"), "mac")) or "", "MAC"),
        "cur": Cmd("show", lambda sh, ctx, a: f"  addr: {sh.cfg.if_ip}\n  mac: {sh.cfg.if_mac}"),
    })
    system = Menu("System", commands={
        "passwd": Cmd("change the admin password", _passwd, "[NEW]"),
        "admpw-hash": Cmd("set the admin password hash (used by saved configs)", _admpw_hash),
        "baud": Cmd("management serial rate", _baud, "RATE"),
    })
    cfg = Menu("Configuration", children={"slb": slb, "l3": Menu("Layer 3", children={"if": l3if}),
                                           "sys": system},
               commands={"dump": Cmd("the configuration as CLI commands", _dump)})
    oper = Menu("Operations", children={"slb": Menu("SLB operations", commands={
        "ena": _oper(True), "dis": _oper(False)})})
    stats = Menu("Statistics", children={"slb": Menu("SLB statistics", commands={
        "virt": _stats("virt"), "real": _stats("real"), "group": _stats("group"),
        "drops": Cmd("global counters and drops by reason", _drops),
    })})
    info = Menu("Information", children={"slb": Menu("SLB information", commands={
        "dump": Cmd("configuration, health and table summary", _info_dump),
        "real": Cmd("one real server", _info_real, "N"),
        "which": Cmd("which real serves this client (from the model)", _which,
                     "CLIENT_IP [PORT] [VIP] [VPORT]"),
        "events": Cmd("health and operator events", _events),
    })})
    return Menu("Main", children={"cfg": cfg, "oper": oper, "stats": stats, "info": info})


ROOT = _build_root()

GLOBAL_HELP = {
    "apply": "validate and program the pending configuration",
    "diff": "show the pending changes",
    "revert": "drop the pending changes ('revert apply': back to the saved configuration)",
    "save": "save the applied configuration (atomically)",
    "help": "this help", "..": "up one menu", "/": "top menu", "exit": "leave the CLI",
}


class Shell:
    """One CLI session: the current menu and the pending configuration of ``manager``."""

    def __init__(self, manager=None, config: SlbConfig | None = None) -> None:
        self.manager = manager
        self._cfg = config
        self.path: list[tuple[str, Menu, list[str], dict]] = []   # (name, menu, args, ctx)
        self.done = False

    @property
    def cfg(self) -> SlbConfig:
        return self.manager.pending if self.manager is not None else self._cfg

    def guard(self, fn):
        """Run a device operation; a link or config failure becomes one CLI error line."""
        try:
            return fn()
        except ConfigError as e:
            raise CliError(str(e)) from None
        except (IOError, OSError) as e:
            raise CliError(f"device: {e}") from None

    # -- navigation ---------------------------------------------------------------------------
    @property
    def menu(self) -> Menu:
        return self.path[-1][1] if self.path else ROOT

    @property
    def ctx(self) -> dict:
        return self.path[-1][3] if self.path else {}

    def leave(self) -> None:
        if self.path:
            self.path.pop()

    def prompt(self) -> str:
        if not self.path:
            return ">> Main# "
        name, menu, args, _ = self.path[-1]
        return f">> {menu.title}{' ' + ' '.join(args) if args else ''}# "

    def location(self) -> str:
        return "/" + "/".join(" ".join([n, *a]) for n, _, a, _ in self.path)

    # -- execution ----------------------------------------------------------------------------
    def execute(self, line: str) -> str:
        line = line.strip()
        if not line or line.startswith("#"):
            return ""
        word = line.split()[0].lower()
        if line.lower() == "revert apply":
            return self._global_revert_apply()
        if word in ("apply", "diff", "revert", "save", "help", "?", "exit", "quit", "lines") \
                and len(line.split()) == 1:
            return self._global(word)
        if line == "..":
            self.leave()
            return ""
        if line == "/":
            self.path = []
            return ""
        return self._run_path(line)

    def _global(self, word: str) -> str:
        m = self.manager
        if word in ("help", "?"):
            return self.help()
        if word in ("exit", "quit"):
            self.done = True
            return ""
        if m is None:
            raise CliError(f"{word}: needs a device")
        if word == "diff":
            return m.diff()
        if word == "revert":
            return m.revert()
        if word == "save":
            return self.guard(m.save)
        if word == "apply":
            return self.guard(m.apply)
        return ""

    def _global_revert_apply(self) -> str:
        m = self.manager
        if m is None:
            raise CliError("revert apply: needs a device")
        saved = self.guard(lambda: m.load_saved(lambda text, where: run_script_config(
            text, where, m.applied.params)))
        return self.guard(lambda: m.revert_apply(saved))

    def _run_path(self, line: str) -> str:
        if line.startswith("/"):
            path: list = []
            rest = line[1:]
        else:
            path = list(self.path)
            rest = line
        # entering menus may create objects in the pending config: undo that on error
        snapshot = self.cfg.copy()
        try:
            out = self._walk(path, rest, line)
        except CliError:
            self._restore(snapshot)
            raise
        return out

    def _restore(self, snapshot: SlbConfig) -> None:
        if self.manager is not None:
            self.manager.pending = snapshot
        else:
            self._cfg = snapshot

    def _walk(self, path: list, rest: str, line: str) -> str:
        while rest:
            segment, _, after = rest.partition("/")
            words = segment.split()
            if not words:
                raise CliError(f"{line}: empty step in the path")
            name, args = words[0].lower(), words[1:]
            menu = path[-1][1] if path else ROOT
            ctx = path[-1][3] if path else {}
            if name in menu.children:
                child = menu.children[name]
                need = len(child.args)
                if not need - child.optional_args <= len(args) <= need:
                    usage = " ".join(child.args)
                    raise CliError(f"{line}: '{name}' needs {usage}")
                new_ctx = child.enter(self, ctx, args) if child.enter else ctx
                path.append((name, child, args, new_ctx))
                rest = after
                continue
            if name in menu.commands:
                cmd_args = (segment.split(None, 1)[1] if len(words) > 1 else "")
                if after:
                    cmd_args = cmd_args + "/" + after
                cmd = menu.commands[name]
                where = "/" + "/".join(" ".join([n, *a]) for n, _, a, _ in path)
                try:
                    out = cmd.handler(self, ctx, cmd_args.split())
                except ConfigError as e:
                    raise CliError(f"{where}: {e}") from None
                except CliError as e:
                    raise CliError(f"{where}: {e}") from None
                # a command given with a path runs there; the current menu stays unless the
                # command deleted the object the session was in
                return out
            where = "/" + "/".join(" ".join([n, *a]) for n, _, a, _ in path)
            raise CliError(f"{line}: no menu or command '{name}' in {where} "
                           f"(try help)")
        self.path = path
        return ""

    # -- help and completion ------------------------------------------------------------------
    def help(self) -> str:
        menu = self.menu
        lines = [f"[{menu.title} menu] {self.location()}"]
        for name, child in menu.children.items():
            lines.append(f"  {name + ' ' + ' '.join(child.args):24s} {child.title} menu")
        for name, cmd in menu.commands.items():
            lines.append(f"  {name + ' ' + cmd.usage:24s} {cmd.help}")
        lines += [f"  {k:24s} {v}" for k, v in GLOBAL_HELP.items()]
        return "\n".join(lines)

    def completions(self, text: str) -> list[str]:
        """Words that may come next after ``text`` (for tab completion)."""
        absolute = text.startswith("/")
        body = text[1:] if absolute else text
        segments = body.split("/")
        menu = ROOT if absolute else self.menu
        for segment in segments[:-1]:
            words = segment.split()
            if not words or words[0] not in menu.children:
                return []
            menu = menu.children[words[0]]
        last = segments[-1]
        if " " in last.strip() and last.split()[0] in menu.commands:
            return []
        prefix = last.strip()
        names = list(menu.children) + list(menu.commands)
        if not absolute and len(segments) == 1:
            names += list(GLOBAL_HELP)
        return sorted(n for n in names if n.startswith(prefix))


def run_script_config(text: str, where: str, params) -> SlbConfig:
    """Replay a saved configuration (CLI commands) into a fresh :class:`SlbConfig`; an error
    names the file and line."""
    cfg = SlbConfig(params=params)
    shell = Shell(config=cfg)
    for number, line in enumerate(text.splitlines(), 1):
        try:
            shell.execute(line)
        except CliError as e:
            raise ConfigError(f"{where}:{number}: {e}") from None
    return shell.cfg
