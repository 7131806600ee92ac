"""Gateware of the openslb dispatch core (Amaranth 0.5).  Imports neither firmware nor sim."""
