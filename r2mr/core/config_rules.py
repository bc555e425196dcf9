"""The valid range or choice list of every configuration field, in one table (:data:`RULES`).

Every config dataclass (``TrainConfig``, each model's ``Config``, ``RewriterConfig``, ``SynthConfig``)
inherits :class:`Validated`, whose ``__post_init__`` checks each field against its rule, so a value is
refused before any work starts, both at construction and after :func:`r2mr.core.config.apply` (which calls
``__post_init__`` once all overrides are set). Rules are keyed by field name, so a name means the same
thing in every model; a rule may look at other fields of the same config (``valid_metric`` and ``topk``).
A field without a rule is caught by the test suite (``tests/test_hardening.py``), not at run time.

A refused value reads, on one line::

    config key 'lr': -0.1 is not allowed (allowed: a finite number > 0); fix: set lr to a finite number > 0, \
e.g. the default 0.001

Decisions: ``topk`` given as one number (``--set topk=20``) is read as the one-element tuple ``(20,)``
(the parser wraps scalars) and then refused, since every result also reports the official test-based
rule, which reads Recall and NDCG at 10 and 20: ``topk`` must include both; ``patience=0`` is allowed and means
"stop at the first epoch that does not improve the validation metric"; ``max_rounds=0`` means R2MR never rewrites;
``dim=0`` means automatic width.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import ConfigError
from .names import METRIC_NAMES, REPORTED_METRICS, SEED_MAX

DEFAULT_MAX_FEATURE_WIDTH = 32768  # columns per feature matrix; lift with R2MR_MAX_FEATURE_WIDTH


def max_feature_width() -> int:
    """The widest feature matrix accepted: ``$R2MR_MAX_FEATURE_WIDTH`` if set (a positive integer), else 32768."""
    raw = os.environ.get("R2MR_MAX_FEATURE_WIDTH", "").strip()
    if not raw:
        return DEFAULT_MAX_FEATURE_WIDTH
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"environment variable R2MR_MAX_FEATURE_WIDTH: {raw!r} is not allowed (allowed: an "
                          f"integer >= 1); fix: set it to a column count, e.g. 65536, or unset it")
    return int(raw)


@dataclass(frozen=True)
class Rule:
    """``allowed`` says in words what ``ok(value, cfg)`` accepts; ``detail(cfg)`` adds the other fields it
    depends on (such rules are checked after the rest, so the field they read is reported first)."""

    allowed: str
    ok: Callable[[Any, Any], bool]
    detail: Callable[[Any], str] | None = None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int, hi: int | None = None, note: str = "") -> Rule:
    text = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
    return Rule(text + note, lambda v, c: _is_int(v) and v >= lo and (hi is None or v <= hi))


def number(lo: float, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Rule:
    """A finite number in the interval; ``*_open`` excludes the bound."""
    if hi is None:
        text = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def ok(v: Any, c: Any) -> bool:
        return (_is_num(v) and (v > lo if lo_open else v >= lo)
                and (hi is None or (v < hi if hi_open else v <= hi)))
    return Rule(text, ok)


def choice(*values: Any) -> Rule:
    return Rule("one of " + ", ".join(str(v) for v in values),
                lambda v, c: any(type(v) is type(x) and v == x for x in values))


BOOL = Rule("true or false", lambda v, c: isinstance(v, bool))


def optional(rule: Rule, meaning: str) -> Rule:
    """``None`` (``meaning``) or a value ``rule`` accepts."""
    return Rule(f"{rule.allowed}, or none ({meaning})", lambda v, c: v is None or rule.ok(v, c))


def int_tuple(lo: int) -> Rule:
    return Rule(f"a non-empty list of integers >= {lo}",
                lambda v, c: isinstance(v, (tuple, list)) and len(v) > 0 and all(_is_int(x) and x >= lo for x in v))


def _valid_metric_ok(v: Any, c: Any) -> bool:
    m = re.fullmatch(r"([a-z]+)@(\d+)", v) if isinstance(v, str) else None
    return bool(m) and m.group(1) in METRIC_NAMES and int(m.group(2)) in tuple(getattr(c, "topk", ()))


def _official_ks() -> set[int]:
    return {int(m.split("@")[1]) for m in REPORTED_METRICS}  # the test-based rule every result also reports


def _topk_ok(v: Any, c: Any) -> bool:
    return int_tuple(1).ok(v, c) and _official_ks() <= set(v)


def _widths_ok(v: Any, c: Any) -> bool:
    if not isinstance(v, str):
        return False
    pairs = [p.split(":") for p in v.split(",") if p.strip()]
    return (len(pairs) >= 2 and all(len(p) == 2 and p[0].strip() and p[1].strip().isdigit()
                                    and 1 <= int(p[1]) <= max_feature_width() for p in pairs))


def _latent_ok(v: Any, c: Any) -> bool:
    code = getattr(c, "rw_code_dim", 1)
    if not (_is_int(code) and code >= 1):
        return _is_int(v) and v >= 1  # rw_code_dim's own rule reports it
    return _is_int(v) and v >= 1 and v % code == 0


def _share() -> Rule:
    """A corruption share in [0, 1]; the three shares together at most 1."""
    def ok(v: Any, c: Any) -> bool:
        shares = [getattr(c, k, 0.0) for k in ("corrupt_text", "corrupt_image", "corrupt_both")]
        return _is_num(v) and 0 <= v <= 1 and all(_is_num(s) for s in shares) and sum(shares) <= 1 + 1e-12
    def total(c: Any) -> str:
        shares = [getattr(c, k, 0.0) for k in ("corrupt_text", "corrupt_image", "corrupt_both")]
        return f"the three sum to {sum(shares):g}" if all(_is_num(s) for s in shares) else "the three must be numbers"
    return Rule("a number in [0, 1], with corrupt_text + corrupt_image + corrupt_both <= 1", ok, total)


CONTENT = choice("real", "random", "frozen")
WIDTH = integer(1, None)
WEIGHT = number(0.0)  # a loss weight or regulariser: finite, >= 0
RATE = number(0.0, lo_open=True)  # a learning rate or temperature: finite, > 0

RULES: dict[str, Rule] = {
    # training (r2mr/training/trainer.py TrainConfig)
    "batch_size": integer(1),
    "lr": RATE,
    "optimizer": choice("adam", "adamw"),
    "weight_decay": WEIGHT,
    "lr_schedule": choice("exp", "linear"),
    "lr_decay": number(0.0, lo_open=True),
    "lr_decay_every": integer(1),
    "lr_linear_epochs": integer(1),
    "lr_clamp": BOOL,
    "max_epochs": integer(1),
    "patience": integer(0, note="; 0 stops at the first epoch without improvement"),
    "valid_metric": Rule("<metric>@<k> with metric one of recall, ndcg, precision, map and k one of topk",
                         _valid_metric_ok, lambda c: f"topk is {_show(c.topk)}"),
    "stop_rule": choice("valid", "official", "both"),
    "official_stopping_step": integer(1),
    "topk": Rule("a list of integers >= 1 that includes 10 and 20 (the official test-based rule, reported in "
                 "every result, reads recall and ndcg at 10 and 20), e.g. [10, 20, 50]", _topk_ok),
    "eval_batch_size": integer(1),
    "negatives": BOOL,
    "seed": integer(0, SEED_MAX),
    # shared by the models (r2mr/models/*.py)
    "embedding_size": WIDTH,
    "reg_weight": WEIGHT,
    "n_layers": integer(1),
    "n_ui_layers": integer(1),
    "n_mm_layers": integer(1),
    "dropout": number(0.0, 1.0, hi_open=True),
    "cl_weight": WEIGHT,
    "knn_k": integer(1),
    "mm_image_weight": number(0.0, 1.0),
    "feat_embed_dim": WIDTH,
    "lambda_coeff": number(0.0, 1.0),
    "l2_divisor": integer(1),
    "cl_loss": WEIGHT,
    "tau": RATE,
    # R2MR (r2mr/models/r2mr/model.py)
    "variant": choice("official", "paper"),
    "dim": integer(0, note="; 0 picks the width automatically"),
    "pca": choice("wider", "all", "image_only"),
    "content": CONTENT,
    "random_widths": Rule("modality:width pairs, at least two, widths >= 1, e.g. text:384,image:4096", _widths_ok),
    "n_perspectives": optional(integer(1), "the variant's preset"),
    "perspective_split": optional(BOOL, "the variant's preset"),
    "h_source": optional(choice("users", "item_id"), "the variant's preset"),
    "accept_rule": optional(choice("eta", "improve"), "the variant's preset"),
    "knn_hop": optional(BOOL, "the variant's preset"),
    "review_init": choice("uniform", "xavier"),
    "knn_image_weight": number(0.0, 1.0),
    "eta": number(0.0, 1.0, lo_open=True, hi_open=True),
    "gate_offset": WEIGHT,
    "reg": WEIGHT,
    "reg_divisor": integer(1),
    "rewrite_every": integer(1),
    "max_rounds": integer(0, note="; 0 never rewrites"),
    "freeze_after_first_rewrite": BOOL,
    "classes_from_last_batch": BOOL,
    "use_reviewer": BOOL,
    "reviewer_dtype": choice("float32", "float16"),
    "compile": choice("off", "default", "reduce-overhead"),  # models.r2mr.ops.COMPILE_MODES (a test checks)
    "tf32": BOOL,
    # the rewriter (r2mr/models/r2mr/rewriter.py RewriterConfig)
    "rw_prompt_dim": WIDTH,
    "rw_hidden": int_tuple(1),
    "rw_latent": Rule("an integer >= 1, a multiple of rw_code_dim", _latent_ok,
                      lambda c: f"rw_code_dim is {c.rw_code_dim}"),
    "rw_codebook": integer(1),
    "rw_code_dim": WIDTH,
    "rw_beta": WEIGHT,
    "rw_disc_hidden": int_tuple(1),
    "rw_gan_weight": WEIGHT,
    "rw_lr": RATE,
    "rw_disc_lr": RATE,
    "rw_batch": integer(1),
    "rw_first_epochs": integer(0),
    "rw_epochs": integer(0),
    "leak_disc_grad": BOOL,
    "rw_arch": choice("vq", "ae", "mlp"),
    "rw_discriminator": BOOL,
    # the synthetic generator (r2mr/data/synth.py SynthConfig)
    "n_users": integer(10),
    "n_items": integer(20),
    "latent_dim": integer(1),
    "mean_interactions": number(1.0),
    "popularity_alpha": WEIGHT,
    "temperature": RATE,
    "text_dim": Rule(f"an integer in [1, R2MR_MAX_FEATURE_WIDTH (default {DEFAULT_MAX_FEATURE_WIDTH})]",
                     lambda v, c: _is_int(v) and 1 <= v <= max_feature_width()),
    "image_dim": Rule(f"an integer in [1, R2MR_MAX_FEATURE_WIDTH (default {DEFAULT_MAX_FEATURE_WIDTH})]",
                      lambda v, c: _is_int(v) and 1 <= v <= max_feature_width()),
    "feature_noise": WEIGHT,
    "corrupt_text": _share(),
    "corrupt_image": _share(),
    "corrupt_both": _share(),
}


def _default(cfg: Any, key: str) -> Any:
    f = next(f for f in dataclasses.fields(cfg) if f.name == key)
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(map(str, value)) + "]"
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def message(key: str, value: Any, rule: Rule, default: Any, cfg: Any = None) -> str:
    """The one-line refusal of ``value`` for ``key``."""
    allowed = rule.allowed + (f"; {rule.detail(cfg)}" if rule.detail and cfg is not None else "")
    return (f"config key '{key}': {_show(value)} is not allowed (allowed: {allowed}); "
            f"fix: set {key} to an allowed value, e.g. the default {_show(default)}")


def validate(cfg: Any) -> None:
    """Check every field of the dataclass ``cfg`` that has a rule; raise :class:`ConfigError` on the first refusal."""
    rules = rules_of(type(cfg))
    ruled = [(f.name, rules[f.name]) for f in dataclasses.fields(cfg) if f.name in rules]
    for key, rule in sorted(ruled, key=lambda kr: kr[1].detail is not None):  # stable: independent ones first
        value = getattr(cfg, key)
        if not rule.ok(value, cfg):
            raise ConfigError(message(key, value, rule, _default(cfg, key), cfg))


def rules_of(cls: type) -> dict[str, Rule]:
    """The rules of ``cls``'s fields: :data:`RULES`, then the class's own ``field_rules`` (a model of your own)."""
    return {**RULES, **getattr(cls, "field_rules", {})}


def unruled(cls: type) -> list[str]:
    """Fields of the dataclass ``cls`` with no rule (the test suite requires none)."""
    rules = rules_of(cls)
    return [f.name for f in dataclasses.fields(cls) if f.name not in rules]


class Validated:
    """Mixin for config dataclasses: ``__post_init__`` validates every field against :data:`RULES` and the
    class's own ``field_rules`` (``{"dim": integer(1)}``: how a model of your own declares its ranges)."""

    field_rules: ClassVar[dict[str, Rule]] = {}

    def __post_init__(self) -> None:
        validate(self)
