"""Toeplitz model against the published Microsoft RSS verification vectors."""

import csv
import ipaddress
from pathlib import Path

import numpy as np
import pytest

from openslb.hw.spec import RSS_DEFAULT_KEY
from openslb.model.toeplitz import flow_tuple, toeplitz, toeplitz_batch

VECTORS = Path(__file__).parent / "data" / "rss_vectors.csv"


def _rows():
    with VECTORS.open() as f:
        lines = [line for line in f if not line.startswith("#")]
    return list(csv.DictReader(lines))


IPV4 = [r for r in _rows() if r["family"] == "ipv4"]
IPV6 = [r for r in _rows() if r["family"] == "ipv6"]


def test_vector_file_has_all_published_rows():
    assert len(IPV4) == 5 and len(IPV6) == 3


@pytest.mark.parametrize("row", IPV4, ids=lambda r: r["src_ip"])
def test_ipv4_vectors(row):
    l3 = flow_tuple(row["src_ip"], row["dst_ip"])[:8]
    l3l4 = flow_tuple(row["src_ip"], row["dst_ip"], int(row["src_port"]), int(row["dst_port"]))
    assert toeplitz(l3) == int(row["hash_l3"], 16)
    assert toeplitz(l3l4) == int(row["hash_l3l4"], 16)
    # The hardware always hashes 12 bytes; zero ports must equal the L3-only hash.
    assert toeplitz(l3 + bytes(4)) == int(row["hash_l3"], 16)


@pytest.mark.parametrize("row", IPV6, ids=lambda r: r["src_ip"])
def test_ipv6_vectors_model_only(row):
    data = (ipaddress.IPv6Address(row["src_ip"]).packed + ipaddress.IPv6Address(row["dst_ip"]).packed)
    assert toeplitz(data) == int(row["hash_l3"], 16)
    data += int(row["src_port"]).to_bytes(2, "big") + int(row["dst_port"]).to_bytes(2, "big")
    assert toeplitz(data) == int(row["hash_l3l4"], 16)


def test_batch_equals_scalar():
    rng = np.random.default_rng(1)
    tuples = rng.integers(0, 256, size=(200, 12), dtype=np.uint8)
    batch = toeplitz_batch(tuples)
    assert [int(x) for x in batch] == [toeplitz(bytes(t)) for t in tuples]


def test_key_matters():
    data = flow_tuple("1.2.3.4", "5.6.7.8", 1000, 80)
    other_key = bytes(reversed(RSS_DEFAULT_KEY))
    assert toeplitz(data) != toeplitz(data, other_key)
