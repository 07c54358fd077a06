"""Numeric command-line options, each checked once where it is parsed, and a parser whose errors are one line.

``type=positive_int`` on an ``add_argument`` makes ``--max-bytes 0`` fail before anything loads, with
``tokenshift evaluate: error: argument --max-bytes: must be a positive integer, got '0'``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn


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


def _bounded(kind: type, accepts: Callable[[float], bool], wording: str, name: str) -> Callable[[str], Any]:
    """An argparse ``type``: a number of ``kind`` for which ``accepts`` holds, else "must be ``wording``"."""
    def parse(value: str) -> Any:
        number = _number(value, kind)
        if not accepts(number):
            raise argparse.ArgumentTypeError(f"must be {wording}, got {value!r}")
        return kind(number)

    parse.__name__ = name  # argparse names the type in some messages
    return parse


positive_int = _bounded(int, lambda n: n >= 1, "a positive integer", "positive_int")  # 5e6 accepted
non_negative_int = _bounded(int, lambda n: n >= 0, "an integer >= 0", "non_negative_int")
# a sequence or context: one token to condition on, one to predict
at_least_two = _bounded(int, lambda n: n >= 2, "an integer >= 2", "at_least_two")
positive_float = _bounded(float, lambda n: n > 0, "a positive number", "positive_float")
non_negative_float = _bounded(float, lambda n: n >= 0, "a number >= 0", "non_negative_float")
probability = _bounded(float, lambda n: 0 <= n < 1, "in [0, 1)", "probability")


def int_between(low: int, high: int, name: str) -> Callable[[str], Any]:
    """An integer type from ``low`` to ``high``: an option that sizes an allocation (a batch, padding,
    a context) is refused above what any machine holds, before anything is allocated."""
    return _bounded(int, lambda n: low <= n <= high, f"an integer from {low:,} to {high:,}", name)


# Upper limits far above any real use, far below what would exhaust a machine on the first allocation.
batch_size = int_between(1, 65_536, "batch_size")
sequence_length = int_between(2, 1_048_576, "sequence_length")
pad_multiple = int_between(1, 65_536, "pad_multiple")
token_budget = int_between(1, 10**13, "token_budget")
step_budget = int_between(1, 10**9, "step_budget")
rank = int_between(1, 4_096, "rank")
batch_tokens = int_between(1, 2**24, "batch_tokens")
minutes_budget = _bounded(float, lambda n: 0 < n <= 7 * 24 * 60, "a number of minutes above 0 and at most 10,080 (a week)", "minutes_budget")


def output_path(value: str) -> str:
    """A path to write to: not empty, ``~`` expanded here (a shell leaves ``--out=~/x`` as it is)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty; name the folder to write")
    return os.path.expanduser(value)


def report_path(value: str) -> str:
    """``--report FILE.html``: checked where it is parsed, before anything loads or trains
    (:func:`tokenshift.report.check_report_path`), so a long run never ends on a page it cannot write."""
    from .report.document import check_report_path

    try:
        return str(check_report_path(value, option=None))
    except (ValueError, OSError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error printed as one line (what is wrong, and where help is) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")
        sys.exit(2)
