"""Running refreshes: when (schedule), how safely (resilience, guard), and the loop itself."""
