"""Numeric command-line options, each checked once where it is parsed, and a parser whose errors are one line.

``type=positive_int`` on an ``add_argument`` makes ``--max-bytes 0`` fail before anything loads, with
``tokenshift evaluate: error: argument --max-bytes: must be a positive integer, got '0'``.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn


def _number(value: str, kind: type) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {value!r}")
    if kind is int and not number.is_integer():
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}")
    return number


def positive_int(value: str) -> int:
    """An integer >= 1 (``5e6`` accepted)."""
    number = _number(value, int)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return int(number)


def non_negative_int(value: str) -> int:
    """An integer >= 0."""
    number = _number(value, int)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value!r}")
    return int(number)


def at_least_two(value: str) -> int:
    """An integer >= 2 (a sequence or context: one token to condition on, one to predict)."""
    number = _number(value, int)
    if number < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {value!r}")
    return int(number)


def positive_float(value: str) -> float:
    """A finite number > 0."""
    number = _number(value, float)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value!r}")
    return number


def non_negative_float(value: str) -> float:
    """A finite number >= 0."""
    number = _number(value, float)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value!r}")
    return number


def probability(value: str) -> float:
    """A number in [0, 1)."""
    number = _number(value, float)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value!r}")
    return number


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error printed as one line (what is wrong, and where help is) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")
        sys.exit(2)
