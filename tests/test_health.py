"""Health checker against real local servers that go down, come back and flap."""

import asyncio
import http.server
import socket
import threading

import pytest

from openslb.firmware.health import CheckSpec, HealthChecker, run_check


class _Http:
    """An HTTP server on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self, body=b"hello from real", status=200):
        self.body, self.status = body, status
        self.port = None
        self.server = None

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
        self.server = Server(("127.0.0.1", self.port or 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _check(spec):
    return asyncio.run(run_check(spec))


def test_http_status_and_content():
    srv = _Http()
    srv.start()
    try:
        assert _check(CheckSpec("http", "127.0.0.1", srv.port)) is None
        assert _check(CheckSpec("tcp", "127.0.0.1", srv.port)) is None
        assert "not found" in _check(CheckSpec("http", "127.0.0.1", srv.port, content="XYZ"))
        srv.status = 503
        assert _check(CheckSpec("http", "127.0.0.1", srv.port)) == "http: status 503"
    finally:
        srv.stop()
    assert _check(CheckSpec("tcp", "127.0.0.1", srv.port)).startswith("tcp:")


def test_udp_and_dns():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def answer():
        for _ in range(2):
            data, peer = sock.recvfrom(512)
            reply = bytearray(data)
            if len(reply) >= 12:
                reply[2] |= 0x80   # QR: a response with the query's id
            sock.sendto(bytes(reply), peer)
    t = threading.Thread(target=answer, daemon=True)
    t.start()
    assert _check(CheckSpec("udp", "127.0.0.1", port, timeout=2)) is None
    assert _check(CheckSpec("dns", "127.0.0.1", port, content="example.org", timeout=2)) is None
    sock.close()
    assert _check(CheckSpec("udp", "127.0.0.1", port, timeout=0.3)) is not None


def test_icmp_to_localhost():
    result = _check(CheckSpec("icmp", "127.0.0.1", timeout=1))
    if result is not None and "needs root" in result:
        pytest.skip("ICMP sockets need root or net.ipv4.ping_group_range here")
    assert result is None


def test_counting_and_anti_flap_hold_down():
    events = []
    spec = CheckSpec("tcp", "x", fails_down=4, succ_up=2, flap_window=60)
    hc = HealthChecker({1: spec}, lambda r, up, why: events.append(up))
    t = 0.0
    for _ in range(3):
        hc.record(1, "boom", t)
    assert events == []                       # 3 failures: still up
    hc.record(1, "boom", t)
    assert events == [False]                  # the 4th marks it down
    hc.record(1, None, t)
    hc.record(1, None, t)
    assert events == [False, True]            # 2 successes restore it
    for _ in range(4):
        hc.record(1, "boom", t + 1)           # it flaps: down again within the window
    for _ in range(3):
        hc.record(1, None, t + 2)
    assert events == [False, True, False]     # now 4 successes are needed, not 2
    hc.record(1, None, t + 2)
    assert events == [False, True, False, True]


def test_checker_follows_a_real_that_goes_down_and_comes_back():
    srv = _Http()
    srv.start()
    changes = []
    spec = CheckSpec("http", "127.0.0.1", srv.port, interval=0.05, timeout=0.3,
                     fails_down=3, succ_up=2)
    hc = HealthChecker({7: spec}, lambda r, up, why: changes.append((r, up, why)))

    async def scenario():
        task = asyncio.create_task(hc.run())
        await asyncio.sleep(0.3)
        srv.stop()
        await asyncio.sleep(0.8)
        srv.start()
        await asyncio.sleep(0.8)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(scenario())
    srv.stop()
    assert [c[:2] for c in changes] == [(7, False), (7, True)]
    assert "3 failed checks" in changes[0][2]


def test_checker_drives_the_hardware_health_mask():
    """Reals on 127.0.0.2-4 (one HTTP server each); the one that stops leaves the mask."""
    from openslb.firmware.bus import ModelBus
    from openslb.firmware.health import specs_from_config
    from openslb.firmware.manager import Manager
    from openslb.firmware.slb import default_slb_config
    from openslb.model.device import DeviceModel

    servers = []
    for k in range(3):
        srv = _Http()
        srv.port = servers[0].port if servers else None

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass
        server = http.server.ThreadingHTTPServer((f"127.0.0.{2 + k}", srv.port or 0), Handler)
        srv.server, srv.port = server, server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(srv)
    cfg = default_slb_config(3)
    for n in (1, 2, 3):
        cfg.reals[n].rip = f"127.0.0.{1 + n}"
        cfg.reals[n].retry = 2
    from openslb.firmware.slb import Service
    port = servers[0].port    # the service port is what the checker connects to
    cfg.virts[1].services = {(port, "tcp"): Service(port, group=1)}
    dev = DeviceModel()
    manager = Manager(ModelBus(dev), None, cfg)
    manager.program_applied()
    specs = specs_from_config(manager.applied, timeout=0.3)
    for s in specs.values():
        s.interval = 0.05
    hc = HealthChecker(specs, manager.set_up)

    async def scenario():
        task = asyncio.create_task(hc.run())
        await asyncio.sleep(0.3)
        assert all(dev.appliance.is_up(n) for n in (1, 2, 3))
        servers[1].stop()
        await asyncio.sleep(0.8)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    try:
        asyncio.run(scenario())
    finally:
        servers[0].stop()
        servers[2].stop()
    assert not dev.appliance.is_up(2) and dev.appliance.is_up(1) and dev.appliance.is_up(3)
    assert [(e.real, e.up) for e in manager.events] == [(2, False)]
