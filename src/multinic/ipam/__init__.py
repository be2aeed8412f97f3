"""Address management: ranges, the one pure allocator, and the stores behind it."""
