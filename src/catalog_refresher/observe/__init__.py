"""What reacts to a run: log lines, metrics and webhook alerts, each an ``Observer`` of the bus."""
