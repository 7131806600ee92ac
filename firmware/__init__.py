"""openslb firmware package."""
