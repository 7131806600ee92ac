"""The connection table's rules in the reference model: per-connection consistency through pool
changes, learning only on a flow's first packet, timeouts in ticks, FIN/RST, SYN floods and a
full table, fallback for a down real.  (The RTL is held to the same model by tb_core's ``conn``
scenario.)"""

import dataclasses
import random

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from openslb.hw.spec import Params, conn_entry_bits, conn_next_state, ConnState, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN
from openslb.hw.spec import PROTO_UDP
from openslb.model.config import VirtualService, default_config
from openslb.model.pipeline import Appliance
from openslb.sim.traffic import CLIENT_MAC


def _cfg(**params):
    cfg = default_config(8)
    cfg.params = Params(**params)
    cfg.conn.tick_cycles = 0
    cfg.virts[1] = VirtualService(1, "10.0.0.100", PROTO_UDP, 53, group=1)
    return cfg


def _frame(cfg, client: int, flags: str = "S", udp: bool = False) -> bytes:
    v = cfg.virts[1 if udp else 0]
    l4 = UDP(sport=1000 + client % 60000, dport=v.port) if udp else TCP(
        sport=1000 + client % 60000, dport=v.port, flags=flags)
    return bytes(Ether(src=CLIENT_MAC, dst=cfg.own_mac)
                 / IP(src=f"172.16.{client // 250 % 250}.{client % 250 + 1}", dst=v.vip) / l4)


def _reals(app: Appliance, frames: list[bytes]) -> list[int | None]:
    return [app.decide(f).real for f in frames]


def _open(app: Appliance, cfg, clients) -> dict[int, int]:
    """SYN then ACK for each client; returns the real of every connection the table holds."""
    held = {}
    for c in clients:
        app.decide(_frame(cfg, c, "S"))
        hits = app.counters["CONN_HIT"]
        real = app.decide(_frame(cfg, c, "A")).real
        if app.counters["CONN_HIT"] > hits:
            held[c] = real
    return held


def _reweight(app: Appliance, cfg) -> None:
    """A pool change the way COMMIT makes it: real 2 out, real 5 heavy, real 8 new."""
    cfg.reals[2].enabled = False
    cfg.reals[5].weight = 10
    cfg.groups[1].reals.append(cfg.reals[8].index) if 8 not in cfg.groups[1].reals else None
    app.tables = {g: cfg.table(g) for g in cfg.groups}


def test_entry_is_compact():
    assert conn_entry_bits(Params()) == 45    # 22-bit digest, 8-bit real, 12-bit stamp, 3 state


def test_established_connections_keep_their_real_through_a_pool_change():
    cfg = _cfg()
    cfg.groups[1].reals = [1, 2, 3, 4, 5, 6, 7]
    app = Appliance(cfg)
    held = _open(app, cfg, range(1500))
    # 1500 flows in 4096 ways: a few buckets are full (counted), nothing else is lost
    assert len(held) + app.counters["CONN_FULL"] == 1500 and len(held) > 1400
    _reweight(app, cfg)
    assert {c: r for c, r in zip(held, _reals(app, [_frame(cfg, c, "PA") for c in held]))} == held
    # without the table the same packets would move: the table is doing the work
    stateless = Appliance(dataclasses.replace(cfg, conn=dataclasses.replace(cfg.conn, enabled=False)))
    now = _reals(stateless, [_frame(cfg, c, "PA") for c in held])
    assert sum(a != b for a, b in zip(now, held.values())) > 300
    # new connections follow the new table (real 2 gets none of them)
    fresh = _reals(app, [_frame(cfg, c, "S") for c in range(10_000, 12_000)])
    assert 2 not in fresh and 8 in fresh


def test_only_a_flows_first_packet_is_learned():
    cfg = _cfg()
    app = Appliance(cfg)
    app.decide(_frame(cfg, 1, "A"))        # mid-flow packet, no entry: Maglev, not learned
    app.decide(_frame(cfg, 2, "SA"))       # a SYN-ACK does not start a client flow
    assert app.counters["CONN_MISS"] == 2 and app.counters["CONN_NEW"] == 0
    app.decide(_frame(cfg, 3, udp=True))   # UDP: any datagram starts a flow
    assert app.counters["CONN_NEW"] == 1 and app.conn.flows() == 1


def test_timeouts_in_ticks_and_fin_shortens_a_flow():
    cfg = _cfg()
    cfg.conn.syn, cfg.conn.open, cfg.conn.closing = 5, 50, 3
    app = Appliance(cfg)
    app.decide(_frame(cfg, 1, "S"))                      # half-open
    app.decide(_frame(cfg, 2, "S"))
    app.decide(_frame(cfg, 2, "A"))                      # established
    app.decide(_frame(cfg, 3, "S"))
    app.decide(_frame(cfg, 3, "A"))
    app.decide(_frame(cfg, 3, "FA"))                     # closing
    assert app.conn.flows() == 3
    app.conn.advance(3)
    assert app.conn.flows() == 3                         # age 3 <= every timeout
    app.conn.advance(1)
    assert app.conn.flows() == 2                         # closing one gone after 3 ticks
    app.conn.advance(2)
    assert app.conn.flows() == 1                         # half-open gone after 5
    app.conn.advance(44)
    assert app.conn.flows() == 1
    app.decide(_frame(cfg, 2, "A"))                      # a packet refreshes it
    app.conn.advance(50)
    assert app.conn.flows() == 1
    app.conn.advance(1)
    assert app.conn.flows() == 0


def test_state_machine():
    assert conn_next_state(ConnState.FREE, TCP_SYN) == ConnState.SYN
    assert conn_next_state(ConnState.SYN, TCP_ACK) == ConnState.OPEN
    assert conn_next_state(ConnState.OPEN, TCP_SYN) == ConnState.OPEN
    assert conn_next_state(ConnState.OPEN, TCP_ACK | TCP_FIN) == ConnState.CLOSING
    assert conn_next_state(ConnState.SYN, TCP_RST) == ConnState.CLOSING
    assert conn_next_state(ConnState.CLOSING, TCP_SYN) == ConnState.SYN   # port reused


def test_syn_flood_never_evicts_established_flows():
    cfg = _cfg(conn_buckets=16)                 # 64 flows
    app = Appliance(cfg)
    held = _open(app, cfg, range(40))
    assert len(held) > 30
    rng = random.Random(1)
    flood = [_frame(cfg, 1000 + rng.randrange(10**6), "S") for _ in range(640)]
    _reals(app, flood)
    assert app.counters["CONN_EVICT"] > 0 and app.counters["CONN_FULL"] > 0
    _reweight(app, cfg)
    hits = app.counters["CONN_HIT"]
    # every established flow still hits and keeps its real
    after = _reals(app, [_frame(cfg, c, "A") for c in held])
    assert app.counters["CONN_HIT"] - hits == len(held)
    assert after == list(held.values())


def test_a_down_real_moves_its_connections_to_the_maglev_choice():
    cfg = _cfg()
    app = Appliance(cfg)
    first = _reals(app, [_frame(cfg, c, "S") for c in range(200)])
    victim = first[0]
    app.set_up(victim, False)
    moved = _reals(app, [_frame(cfg, c, "A") for c in range(200)])
    assert victim not in moved
    assert all(m == f for m, f in zip(moved, first) if f != victim)
    app.set_up(victim, True)    # back up: the moved connections stay where they went (and
    # those dropped meanwhile, with every slot of theirs on the victim, never moved)
    again = _reals(app, [_frame(cfg, c, "A") for c in range(200)])
    assert again == [m if m is not None else f for m, f in zip(moved, first)]


def test_dropped_frames_leave_the_table_alone():
    cfg = _cfg()
    app = Appliance(cfg)
    for r in cfg.reals:
        app.set_up(r, False)
    assert app.decide(_frame(cfg, 1, "S")).drop is not None
    assert app.conn.flows() == 0 and app.counters["CONN_MISS"] == 1


@pytest.mark.parametrize("flags", ["S", "A"])
def test_disabled_table_counts_nothing(flags):
    cfg = _cfg()
    cfg.conn.enabled = False
    app = Appliance(cfg)
    app.decide(_frame(cfg, 1, flags))
    assert all(app.counters[n] == 0 for n in ("CONN_HIT", "CONN_MISS", "CONN_NEW"))


def _client_frame(cfg, src: str, sport: int, flags: str = "S") -> bytes:
    v = cfg.virts[0]
    return bytes(Ether(src=CLIENT_MAC, dst=cfg.own_mac) / IP(src=src, dst=v.vip)
                 / TCP(sport=sport, dport=v.port, flags=flags))


@pytest.mark.parametrize("prefix", [32, 24])
def test_pbind_keeps_a_client_on_one_real(prefix):
    cfg = _cfg()
    cfg.virts[0].pbind = True
    cfg.conn.pmask = prefix
    app = Appliance(cfg)
    for k in range(20):
        # each "client" opens 12 connections from different ports (and, for /24, hosts)
        hosts = [f"10.9.{k}.{1 + (j if prefix == 24 else 0)}" for j in range(12)]
        reals = {app.decide(_client_frame(cfg, h, 2000 + j)).real for j, h in enumerate(hosts)}
        assert len(reals) == 1, f"client {k} spread over {reals}"
    assert app.counters["PBIND_NEW"] == 20 and app.counters["PBIND_HIT"] == 20 * 11
    # without persistence the same connections spread
    cfg.virts[0].pbind = False
    plain = Appliance(cfg)
    spread = {plain.decide(_client_frame(cfg, "10.9.0.1", 2000 + j)).real for j in range(12)}
    assert len(spread) > 1


def test_pbind_times_out_and_follows_drain():
    cfg = _cfg()
    cfg.virts[0].pbind = True
    cfg.conn.pbind = 10
    app = Appliance(cfg)
    bound = app.decide(_client_frame(cfg, "10.9.0.1", 2000)).real
    # drain the bound real: the client keeps coming to it (its binding lives)...
    cfg.reals[bound].enabled = False
    app.tables = {g: cfg.table(g) for g in cfg.groups}
    assert {app.decide(_client_frame(cfg, "10.9.0.1", 3000 + j)).real for j in range(10)} == {bound}
    # ...until the binding times out (10 ticks after the last packet): then new connections
    # follow the table, which no longer has the drained real
    app.advance(11)
    after = {app.decide(_client_frame(cfg, "10.9.0.1", 4000 + j)).real for j in range(10)}
    assert bound not in after and len(after) == 1      # and a new binding holds them together


def test_pbind_binding_to_a_down_real_moves():
    cfg = _cfg()
    cfg.virts[0].pbind = True
    app = Appliance(cfg)
    bound = app.decide(_client_frame(cfg, "10.9.0.1", 2000)).real
    app.set_up(bound, False)
    moved = {app.decide(_client_frame(cfg, "10.9.0.1", 3000 + j)).real for j in range(10)}
    assert bound not in moved and len(moved) == 1
