"""Side-by-side measurements; each backend runs in its own process."""
