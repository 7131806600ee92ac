"""Prometheus exporter: the appliance counters, per-VIP / per-real statistics and health.

Metrics (all read from the device at scrape time, through the same register bus as the CLI):
``openslb_frames_total{counter=...}`` for every global counter (drops as ``DROP_<REASON>``),
``openslb_real_packets_total`` / ``openslb_real_bytes_total`` / ``openslb_real_up`` /
``openslb_real_connections`` per real,
and ``openslb_virt_packets_total`` / ``openslb_virt_bytes_total`` per virtual server.
"""

from __future__ import annotations

import threading

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

__all__ = ["ApplianceCollector", "serve", "registry_for"]


class ApplianceCollector:
    def __init__(self, manager, lock: threading.Lock | None = None) -> None:
        self.manager = manager
        self.lock = lock or threading.Lock()

    def collect(self):
        m = self.manager
        with self.lock:
            counters = m.counters()
            reals = {n: m.real_stats(n) for n in sorted(m.applied.reals)}
            virts = {n: m.virt_stats(n) for n in sorted(m.applied.virts)}
        c = CounterMetricFamily("openslb_frames", "Global counters of the dispatch core",
                                labels=["counter"])
        for name, value in counters.items():
            c.add_metric([name], value)
        yield c
        rp = CounterMetricFamily("openslb_real_packets", "Frames sent to a real", labels=["real"])
        rb = CounterMetricFamily("openslb_real_bytes", "Bytes sent to a real", labels=["real"])
        up = GaugeMetricFamily("openslb_real_up", "1 when the real is up and enabled",
                               labels=["real"])
        cur = GaugeMetricFamily("openslb_real_connections",
                                "Connections in the connection table that name the real",
                                labels=["real"])
        for n, s in reals.items():
            rp.add_metric([str(n)], s["packets"])
            rb.add_metric([str(n)], s["bytes"])
            up.add_metric([str(n)], 1.0 if m.health_state(n) == "up" else 0.0)
            cur.add_metric([str(n)], s["conns"])
        yield from (rp, rb, up, cur)
        vp = CounterMetricFamily("openslb_virt_packets", "Frames to a virtual server",
                                 labels=["virt"])
        vb = CounterMetricFamily("openslb_virt_bytes", "Bytes to a virtual server",
                                 labels=["virt"])
        for n, s in virts.items():
            vp.add_metric([str(n)], s["packets"])
            vb.add_metric([str(n)], s["bytes"])
        yield from (vp, vb)


def registry_for(manager) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ApplianceCollector(manager))
    return registry


def serve(manager, host: str, port: int, once: bool = False) -> None:
    """Serve /metrics on ``host:port`` (until interrupted, or for one request)."""
    from wsgiref.simple_server import make_server

    from prometheus_client import make_wsgi_app

    server = make_server(host, port, make_wsgi_app(registry_for(manager)))
    print(f"serving Prometheus metrics on http://{host}:{server.server_port}/metrics")
    if once:
        server.handle_request()
    else:
        server.serve_forever()
