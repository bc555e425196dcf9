"""Store keys stay valid: the key of every model's default configuration (and of the converged plan's quick-size
R2MR) on a fixed data fingerprint equals the key that the archived runs were made under. A new or renamed config
field, a changed default or a changed key recipe changes these keys, and every stored and archived run would
silently be retrained: such a change must come with a migration (and a new expected key here)."""

from __future__ import annotations

import pytest

from r2mr.core import config as cfgmod
from r2mr.runs import store
from r2mr.runs.experiment import make_configs
from r2mr.runs.plan_specs import CONVERGED_LIMIT, QUICK

FINGERPRINT = "0123456789ab"
EXPECTED = {  # first 16 hex digits of the key, data set "tiktok", seed 999
    ("bpr", False): "1f442fc93f4cac25",
    ("lightgcn", False): "a52dc1e339db8daa",
    ("vbpr", False): "46c8c69792359abf",
    ("lattice", False): "4d5aa5ea952977d8",
    ("freedom", False): "45d74613bb1038cf",
    ("bm3", False): "2724dd3e93707cde",
    ("mgcn", False): "abda481186d22dd5",
    ("r2mr", False): "a4faabcd85b6fb27",
    ("r2mr", True): "55ebfbda475ccc60",  # the converged plan's R2MR: quick size, limit 1000
}


@pytest.mark.parametrize(("model", "converged"), sorted(EXPECTED))
def test_key_of_default_configuration_is_unchanged(model: str, converged: bool) -> None:
    overrides = dict(QUICK["r2mr"]) if converged else None
    cls, mcfg, tcfg = make_configs(model, overrides, 999, CONVERGED_LIMIT if converged else None, dataset="tiktok")
    req = store.make_request(model, "tiktok", 999, cfgmod.to_dict(tcfg, mcfg), FINGERPRINT, cls.maths_version)
    assert req.key[:16] == EXPECTED[(model, converged)]
