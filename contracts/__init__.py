"""Wire types shared by every AeroVision service: events, the task view, payloads and names."""
