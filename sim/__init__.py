"""openslb sim package."""
