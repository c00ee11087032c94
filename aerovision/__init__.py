"""AeroVision: OpenCV matching behind a REST API, event-sourced on NATS JetStream."""
