"""What every console script shares: exit codes, logging, reading test.conf."""

from __future__ import annotations

import logging
import sys

from clerk import ConfigError
from kvapi.config import load_test_conf

__all__ = [
    "EXIT_CONDITION",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "LOG_LEVELS",
    "configure_logging",
    "load_servers",
]

EXIT_OK = 0
EXIT_CONDITION = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def configure_logging(level: str) -> None:
    """One line per record on stderr: local time, level, logger name, message."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def load_servers(path: str) -> list[tuple[str, int]]:
    """The servers of test.conf at ``path``; ConfigError (with the file's name) if unusable."""
    try:
        return load_test_conf(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
