"""What every library layer shares: the lake schema and token batching."""
