"""Structured logging for every service: JSON off a terminal, readable on one."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(service: str, level: str | None = None) -> None:
    level_no = getattr(logging, (level or os.environ.get("AEROVISION_LOG_LEVEL", "INFO")).upper(), logging.INFO)
    renderer = (
        structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries that use stdlib logging (uvicorn, nats) go to the same stream.
    logging.basicConfig(level=max(level_no, logging.WARNING), stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
