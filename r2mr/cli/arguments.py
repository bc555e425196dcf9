"""Argument types and checks shared by the commands: each rejects a bad value before any work starts, with one
line naming the option, the value and what is allowed (the command line exits with status 2).

Light to import (no torch): ``python -m r2mr --help`` builds every parser.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from ..core.errors import ConfigError
from ..core.names import DEVICES, SEED_MAX


def seed(text: str) -> int:
    """A seed: an integer 0 ... 2**32 - 1."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed (allowed: an integer from 0 to {SEED_MAX})")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (epoch limits)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed (allowed: an integer >= 1)")
    return value


def device(text: str) -> str:
    """auto | cpu | cuda | cuda:N."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed (allowed: {', '.join(DEVICES)})")
    return text


class DeprecatedAlias(argparse.Action):
    """An old flag name kept for one release: hidden from --help, stores into the new flag and says so."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"note: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(ns, self.dest, self.const if self.nargs == 0 else values)


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data root holding <name>/ folders (default: $R2MR_DATA_DIR, else ./data)")


def add_seed(p: argparse.ArgumentParser, default: int | None, what: str) -> None:
    p.add_argument("--seed", type=seed, default=default, metavar="N", help=f"{what}; 0 to {SEED_MAX}")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=device, default="auto", metavar="{" + ",".join(DEVICES) + "}",
                   help="auto (default): cuda if PyTorch sees a GPU, else cpu; cuda:N picks the N-th GPU")


def add_epochs(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--epochs", type=positive_int, metavar="N", help=f"epoch limit {what}")
    p.add_argument("--max-epochs", dest="epochs", type=positive_int, action=DeprecatedAlias, new="--epochs")


def add_restart(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--restart", action="store_true", help=what)
    p.add_argument("--force", dest="restart", action=DeprecatedAlias, nargs=0, const=True, new="--restart")


def check_out_file(path: str) -> None:
    """``--out``: not a folder, and its folder (or the nearest existing one above it) is writable."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"--out {path}: is a folder; fix: name a file, e.g. {p / 'result.json'}")
    folder = p.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"--out {path}: {folder} is a file, not a folder; fix: choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path}: folder {folder} is not writable; fix: choose a writable folder")
