import argparse
from pathlib import Path

import pytest

from movierec import config


def test_defaults_then_environment_then_flags():
    parser = argparse.ArgumentParser()
    config.add_flags(parser)
    env = {"MOVIEREC_TOP_K": "50", "MOVIEREC_CF_WEIGHT": "0.6", "MOVIEREC_SKIP_QUALITY_GATE": "yes"}
    s = config.from_args(parser.parse_args(["--top-k", "20"]), env)
    assert (s.top_k, s.cf_weight, s.cb_weight, s.skip_quality_gate) == (20, 0.6, 0.3, True)


@pytest.mark.parametrize("env, message", [
    ({"MOVIEREC_TOP_K": "ten"}, "MOVIEREC_TOP_K / --top-k: invalid literal"),
    ({"MOVIEREC_TOP_K": "0"}, "top_k must be at least 1"),
    ({"MOVIEREC_SKIP_QUALITY_GATE": "maybe"}, "not a boolean"),
    ({"MOVIEREC_CF_WEIGHT": "-1"}, "must be non-negative"),
])
def test_bad_values_say_what_is_wrong(env, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_env(env)


def test_readme_documents_every_setting():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [config.env_name(f) for f in config.Settings.__dataclass_fields__ if config.env_name(f) not in readme]
    assert not missing, f"README lacks {missing}: paste `movierec config --markdown`"
