"""openslb model package."""
