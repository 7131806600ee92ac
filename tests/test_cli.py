"""The management CLI against the reference-model device: menus, the pending-change workflow,
validation messages, the saved form, operator drain and the "which real" query."""

import pytest

from openslb.firmware.bus import ModelBus
from openslb.firmware.console import run_script, split_commands
from openslb.firmware.manager import Manager
from openslb.firmware.shell import CliError, Shell, run_script_config
from openslb.firmware.slb import check_password, default_slb_config
from openslb.firmware.regs import address, pack_fields
from openslb.hw.spec import DEFAULT_PARAMS, ConnTimeout
from openslb.model.device import DeviceModel
from openslb.sim.traffic import client_flows


@pytest.fixture
def box(tmp_path):
    dev = DeviceModel()
    m = Manager(ModelBus(dev), tmp_path / "openslb.cfg", default_slb_config())
    m.program_applied()
    return dev, m, Shell(m)


def _reals_used(dev, cfg, n=300, seed=1):
    import random
    frames = client_flows(cfg, n, random.Random(seed))
    return {d.real for d in map(dev.appliance.decide, frames) if d.real is not None}


def test_pending_edits_reach_traffic_only_at_apply(box):
    dev, m, sh = box
    cfg = m.applied.compile()
    assert _reals_used(dev, cfg) == {1, 2, 3, 4}
    sh.execute("/cfg/slb/real 2/dis")
    assert "-/cfg/slb/real 2/ena" in sh.execute("diff")
    assert _reals_used(dev, cfg) == {1, 2, 3, 4}          # still pending
    assert sh.execute("apply").startswith("apply complete")
    assert _reals_used(dev, cfg, seed=2) == {1, 3, 4}     # new connections leave real 2
    assert 2 in _reals_used(dev, cfg)    # drain: real 2 keeps the connections it has
    assert sh.execute("diff") == "no pending changes"


def test_revert_drops_pending(box):
    _, m, sh = box
    sh.execute("/cfg/slb/real 1/weight 7")
    assert sh.execute("revert") == "pending changes dropped"
    assert m.pending.reals[1].weight == 1


def test_failed_apply_changes_nothing(box):
    dev, m, sh = box
    before = dev.table(1).copy(), dict(dev.staged)
    sh.execute("/cfg/slb/real 9/rip 10.0.1.11")     # duplicate rip, and no mac
    sh.execute("/cfg/slb/group 1/add 9")
    with pytest.raises(CliError, match="real 9: rip 10.0.1.11 is already used by real 1"):
        sh.execute("apply")
    assert (dev.table(1) == before[0]).all() and dev.staged == before[1]
    assert 9 not in m.applied.reals


@pytest.mark.parametrize("commands,message", [
    (["/cfg/slb/real 1/weight 49"], "weight: 49 out of range 1-48"),
    (["/cfg/slb/virt 2/vip 10.0.0.200", "/cfg/slb/virt 2/service 80"],
     "virt 2 service 80 tcp: no group"),
    (["/cfg/slb/real 1/dis", "/cfg/slb/real 2/dis", "/cfg/slb/real 3/dis", "/cfg/slb/real 4/dis"],
     "group 1 has no enabled real"),
    (["/cfg/slb/group 1/add 7"], "real 7 is not defined"),
    (["/cfg/slb/virt 1/service 80 tcp/mode nat"], "mode nat needs the clients' next hop"),
    (["/cfg/slb/adv/clntgw 02:00:00:00:00:fe", "/cfg/slb/adv/conn dis",
      "/cfg/slb/virt 1/service 80 tcp/mode nat"], "mode nat needs the connection table"),
    (["/cfg/slb/adv/clntgw 02:00:00:00:00:fe", "/cfg/slb/virt 1/service any udp/group 1",
      "/cfg/slb/virt 1/service any udp/mode nat", "/cfg/slb/virt 1/service any udp/rport 53"],
     "an any-port service keeps the client's port"),
    (["/cfg/slb/adv/clntgw 02:00:00:00:00"], "clntgw"),
    (["/cfg/slb/group 1/metric leastconns", "/cfg/slb/adv/conn dis"],
     "group 1: metric leastconns needs the connection table"),
    (["/cfg/slb/real 2/maxcon 100", "/cfg/slb/adv/conn dis"],
     "real 2: maxcon 100 needs the connection table"),
    (["/cfg/slb/group 1/metric random"], "metric"),
    (["/cfg/slb/real 2/maxcon 2000000"], "maxcon"),
    (["/cfg/slb/nosuch"], "no menu or command 'nosuch' in /cfg/slb"),
    (["/cfg/l3/if/addr 300.1.1.1"], "not an IPv4 address"),
])
def test_bad_config_is_refused_with_what_and_where(box, commands, message):
    _, m, sh = box
    before = m.applied.dump()
    with pytest.raises(CliError, match=message):
        for c in commands:
            sh.execute(c)
        sh.execute("apply")
    assert m.applied.dump() == before


def test_nat_service_from_the_cli_to_the_device(box):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from openslb.hw.spec import IngressPort
    dev, m, sh = box
    for c in ("/cfg/slb/adv/clntgw 02:00:00:00:00:fe", "/cfg/slb/virt 1/service 80 tcp/mode nat",
              "/cfg/slb/virt 1/service 80 tcp/rport 8080"):
        sh.execute(c)
    assert sh.execute("apply").startswith("apply complete")
    syn = bytes(Ether(dst="02:00:5e:00:00:01") / IP(src="192.168.3.3", dst="10.0.0.100")
                / TCP(sport=5555, dport=80, flags="S"))
    out = Ether(dev.process([syn]).outputs[0][1])
    real = m.applied.reals[dev.appliance.decide(syn).real]
    assert (out[IP].dst, out[TCP].dport) == (real.rip, 8080)
    answer = bytes(Ether() / IP(src=real.rip, dst="192.168.3.3")
                   / TCP(sport=8080, dport=5555, flags="SA"))
    port, back = dev.process([answer], [IngressPort.SERVER]).outputs[0]
    back = Ether(back)
    assert (back.dst, back[IP].src, back[TCP].sport) == ("02:00:00:00:00:fe", "10.0.0.100", 80)
    assert "/cfg/slb/adv/clntgw 02:00:00:00:00:fe" in sh.execute("/cfg/dump")
    saved = m.applied.dump()
    assert run_script_config(saved, "saved", DEFAULT_PARAMS).dump() == saved


def test_table_overflow_is_refused(box):
    _, _, sh = box
    for port in range(1000, 1016):
        sh.execute(f"/cfg/slb/virt 1/service {port}/group 1")
    with pytest.raises(CliError, match="17 services, but the VIP table holds 16 entries"):
        sh.execute("apply")


def test_save_and_revert_apply_round_trip(box, tmp_path):
    dev, m, sh = box
    sh.execute("save")
    saved = (tmp_path / "openslb.cfg").read_text()
    assert run_script_config(saved, "saved", DEFAULT_PARAMS).dump() == saved
    sh.execute("/cfg/slb/real 3/dis")
    sh.execute("apply")
    assert 3 not in _reals_used(dev, m.applied.compile())
    assert sh.execute("revert apply").startswith("reverted")
    # new connections use real 3 again (the ones opened meanwhile stay where they are)
    assert _reals_used(dev, m.applied.compile(), seed=2) == {1, 2, 3, 4}
    assert m.applied.dump() == saved
    assert not list(tmp_path.glob(".openslb-*"))      # no temporary file left behind


def test_navigation_prompt_and_completion(box):
    _, _, sh = box
    sh.execute("/cfg/slb/virt 1")
    assert sh.prompt() == ">> Virtual server 1# "
    sh.execute("service 80 tcp")
    sh.execute("timeout 30")
    assert sh.cfg.virts[1].services[(80, "tcp")].timeout == 30
    sh.execute("..")
    assert sh.prompt() == ">> Virtual server 1# "
    assert sh.completions("/cfg/slb/g") == ["group"]
    assert "rip" in sh.completions("/cfg/slb/real 1/")


def test_operator_drain_and_which(box):
    dev, m, sh = box
    answer = sh.execute("/info/slb/which 192.168.7.9 5555")
    real = int(answer.split("real ")[1].split()[0])
    sh.execute(f"/oper/slb/dis {real}")
    assert real not in _reals_used(dev, m.applied.compile())
    assert f"real {real}" not in sh.execute("/info/slb/which 192.168.7.9 5555")
    sh.execute(f"/oper/slb/ena {real}")
    assert f"real {real}" in sh.execute("/info/slb/which 192.168.7.9 5555")


def test_health_down_writes_the_mask_at_once(box):
    dev, m, _ = box
    m.set_up(2, False, "test")
    assert not dev.appliance.is_up(2)
    assert 2 not in _reals_used(dev, m.applied.compile())


def test_stats_follow_traffic(box):
    import random
    dev, m, sh = box
    frames = client_flows(m.applied.compile(), 100, random.Random(3))
    result = dev.process(frames)
    total = sum(p for p, _ in result.real_stats.values())
    out = sh.execute("/stats/slb/virt 1")
    assert out.startswith(f"virt 1: {total} packets")
    assert "DROP_NO_REAL" in sh.execute("/stats/slb/drops")


def test_script_mode_stops_at_the_first_error(box, capsys):
    _, _, sh = box
    rc = run_script(sh, split_commands("/cfg/slb/real 1/weight 3; /cfg/slb/bad; /cfg/slb/real 1/weight 4"), "-c")
    assert rc == 1
    assert "-c:2: error:" in capsys.readouterr().out
    assert sh.cfg.reals[1].weight == 3


def test_password_is_stored_hashed(box):
    _, m, sh = box
    sh.execute("/cfg/sys/passwd s3cret-pw")
    assert "s3cret" not in m.pending.dump()
    assert check_password("s3cret-pw", m.pending.password_hash)
    assert not check_password("admin", m.pending.password_hash)


def test_exporter_serves_the_counters(box):
    from prometheus_client import generate_latest

    from openslb.firmware.exporter import registry_for
    _, m, _ = box
    text = generate_latest(registry_for(m)).decode()
    assert 'openslb_frames_total{counter="RX_FRAMES"} 0.0' in text
    assert 'openslb_real_up{real="1"} 1.0' in text


def test_random_input_gives_one_line_errors_never_a_traceback(box):
    import random
    _, _, sh = box
    rng = random.Random(7)
    words = ["/cfg", "slb", "real", "group", "virt", "service", "1", "x", "999", "-1", "add",
             "rip", "mac", "weight", "/", "..", "ena", "dis", "del", "10.0.0.1", "zz:zz",
             "/oper/slb/dis", "/stats/slb/real", "/info/slb/which", "tblsize", "4096", "apply"]
    for _ in range(600):
        line = "".join(rng.choice([" ", "/", " ", ""]) + rng.choice(words)
                       for _ in range(rng.randint(1, 6)))
        try:
            sh.execute(line)
        except CliError as e:
            assert "\n" not in str(e)


def test_console_on_a_pty_logs_in_and_runs_commands(box):
    import os
    import pty
    import threading
    import time

    import serial

    from openslb.firmware.console import serve_console
    _, m, sh = box
    master, slave = pty.openpty()
    port = serial.serial_for_url(os.ttyname(slave), timeout=1)
    t = threading.Thread(target=serve_console, args=(sh, port, True), daemon=True)
    t.start()

    def talk(text: str, wait_for: bytes) -> bytes:
        os.write(master, text.encode())
        out, deadline = b"", time.monotonic() + 5
        while wait_for not in out and time.monotonic() < deadline:
            out += os.read(master, 4096)
        return out
    talk("", b"Enter password: ")
    assert b">> Main# " in talk("admin\r", b">> Main# ")
    assert b"Real server 2" in talk("/cfg/slb/real 2\r", b"# ")
    out = talk("weight 99\r", b"# ")
    assert b"Error: /cfg/slb/real 2: weight: 99 out of range 1-48" in out
    talk("weight 5\r", b"# ")
    talk("exit\r", b"")
    t.join(5)
    assert m.pending.reals[2].weight == 5


def test_connection_table_settings_apply_and_round_trip(box, tmp_path):
    dev, m, sh = box
    sh.execute("/cfg/slb/adv/conntmout open 900")
    sh.execute("/cfg/slb/adv/conntick 1000")
    with pytest.raises(CliError, match="conntmout udp"):
        sh.execute("/cfg/slb/adv/conntmout udp 5000")
    sh.execute("apply")
    assert dev.read(address("CONN_TIMEOUT", 1)) == 900
    assert dev.read(address("CONN_TICK_CYCLES")) == 1000
    assert dev.appliance.conn.timeouts[ConnTimeout.OPEN] == 900
    sh.execute("/cfg/slb/adv/conn dis")
    sh.execute("apply")
    assert not dev.appliance.conn.enabled
    dumped = m.applied.dump()
    assert "/cfg/slb/adv/conn dis" in dumped and "/cfg/slb/adv/conntmout open 900" in dumped
    assert run_script_config(dumped, "saved", DEFAULT_PARAMS).dump() == dumped


def test_pbind_service_keeps_a_client_on_one_real(box):
    dev, m, sh = box
    sh.execute("/cfg/slb/virt 1/service 80 tcp/pbind clientip")
    sh.execute("/cfg/slb/adv/pmask 24")
    with pytest.raises(CliError, match="pmask"):
        sh.execute("/cfg/slb/adv/pmask 20")
    sh.execute("apply")
    assert dev.read(address("VIP_PBIND", 0)) == pack_fields("VIP_PBIND", enable=1, per_port=1)
    assert dev.read(address("PBIND_PREFIX")) == 3
    import random
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    cfg = m.applied.compile()
    rng = random.Random(3)
    for net in range(10):
        frames = [bytes(Ether(dst=cfg.own_mac) / IP(src=f"10.7.{net}.{rng.randrange(1, 250)}",
                                                     dst=cfg.virts[0].vip)
                        / TCP(sport=rng.randrange(1024, 65536), dport=80, flags="S"))
                  for _ in range(8)]
        assert len({dev.appliance.decide(f).real for f in frames}) == 1
    assert "/cfg/slb/adv/pmask 24" in m.applied.dump()


def test_metric_and_maxcon_from_the_cli_to_the_device(box):
    import random
    from openslb.hw.spec import Metric
    dev, m, sh = box
    sh.execute("/cfg/slb/group 1/metric roundrobin")
    sh.execute("/cfg/slb/real 2/maxcon 5")
    sh.execute("/cfg/slb/real 4/weight 3")
    assert sh.execute("apply").startswith("apply complete")
    assert dev.read(address("GROUP_METRIC", 1)) == Metric.ROUNDROBIN
    assert dev.appliance.real_limits[2] == (5, 1) and dev.appliance.real_limits[4] == (0, 3)
    cfg = m.applied.compile()
    frames = client_flows(cfg, 200, random.Random(5), packets_per_flow=(1, 1))
    reals = [d.real for d in dev.process(frames).decisions]
    # round robin: new flows take the table's slots in order (real 2 no more than 5 of them)
    table = dev.table(1)
    assert reals[:4] == [int(table[k]) for k in range(4)]
    assert dev.appliance.conn.conns(2) == 5 and reals.count(2) == 5
    out = sh.execute("/stats/slb/real 2")
    assert "current connections: 5 (at maxcon)" in out
    total = sum(dev.appliance.conn.conns(r) for r in (1, 2, 3, 4))
    assert f"current connections: {total}" in sh.execute("/stats/slb/group 1")
    assert "new flows of group 1 are chosen by roundrobin" in sh.execute(
        "/info/slb/which 192.168.7.9 5555")
    dumped = m.applied.dump()
    assert "/cfg/slb/group 1/metric roundrobin" in dumped and "/cfg/slb/real 2/maxcon 5" in dumped
    assert run_script_config(dumped, "saved", DEFAULT_PARAMS).dump() == dumped
