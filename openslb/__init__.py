"""openslb: an open server-load-balancer appliance (gateware, model, firmware, simulation)."""

__version__ = "0.1.0"
