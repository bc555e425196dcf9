"""Text formats shared by progress lines and tables, each defined once: durations and mean ± std cells."""

from __future__ import annotations

import math


def fmt_seconds(s: float) -> str:
    """``42.0 s`` below two minutes, ``3.5 min`` below two hours, else ``2.1 h``."""
    return f"{s:.1f} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h")


def fmt_mean_std(mean: float | None, std: float | None, digits: int = 4) -> str:
    """``0.0512 ± 0.0007``; ``0.0512`` without a finite std (one seed); ``—`` without a finite mean."""
    if mean is None or not math.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None and math.isfinite(std) else "")
