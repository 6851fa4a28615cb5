"""Recipe keys of short-run inference and the energy-based prior: each bad setting stops with a
message that names the key and the fix."""

import pytest

from textvae.config import load_recipe
from textvae.errors import ConfigError

from tests.helpers import REPO


@pytest.mark.parametrize("recipe,overrides,match", [
    ("ptb/sri.yaml", ["model.langevin.step_size.start=0"], "model.langevin.step_size.start must be > 0"),
    ("ptb/sri.yaml", ["model.langevin.step_size.end=-0.1"], "model.langevin.step_size.end must be > 0"),
    ("ptb/sri.yaml", ["model.langevin.steps=2", "model.langevin.step_size.values=[0.1,-0.1]"],
     r"model.langevin.step_size.values\[1\] must be > 0"),
    ("ptb/sri.yaml", ["model.langevin.noise.start=-1"], "model.langevin.noise.start must be >= 0"),
    ("ptb/sri.yaml", ["model.langevin.steps=0"], "model.langevin.steps must be >= 1"),
    ("ptb/sri.yaml", ["model.langevin.noise.values=[0.1,0.1,0.1]"],
     "model.langevin.noise.values has 3 entries but model.langevin.steps is 20: give one value per step"),
    ("ptb/sri.yaml", ["model.langevin.fit_samples=1"], "model.langevin.fit_samples must be >= 2"),
    ("ptb/ebm_prior.yaml", ["model.ebm.langevin.steps=0"], "model.ebm.langevin.steps must be >= 1"),
    ("ptb/ebm_prior.yaml", ["model.ebm.langevin.step_size.start=0"], "model.ebm.langevin.step_size.start must be > 0"),
    ("ptb/ebm_prior.yaml", ["model.ebm.langevin.step_size.values=[0.1]"],
     "model.ebm.langevin.step_size.values has 1 entries but model.ebm.langevin.steps is 60"),
    ("ptb/ebm_prior.yaml", ["model.ebm.hidden_dims=[]"], "model.ebm.hidden_dims must list one or more widths"),
    ("ptb/ebm_prior.yaml", ["model.ebm.lr=0"], r"model.ebm.lr must be > 0 \(or null for train.lr\)"),
    ("ptb/ebm_prior.yaml", ["model.ebm.l2=-1"], "model.ebm.l2 must be >= 0 \\(0 turns the energy penalty off\\)"),
    ("ptb/ebm_prior.yaml", ["objective.free_bits=0.5"], "objective.free_bits floors the per-dimension KL"),
    ("ptb/lm.yaml", ["model.prior=ebm"], "model.mode=lm has no latent"),
    ("ptb/vae.yaml", ["model.prior=ebm", "objective.preset=lm"], "model.prior=ebm with objective.preset=lm"),
    ("ptb/sri.yaml", ["objective.preset=mmd_vae", "objective.lam=10"],
     "model.inference=langevin with objective.preset=mmd_vae.*Use objective.preset=elbo"),
    ("ptb/sri.yaml", ["objective.kl_schedule.kind=linear"], "model.inference=langevin has no KL term"),
    ("ptb/mmd_vae.yaml", ["model.inference=langevin", "objective.preset=elbo", "objective.lam=null"],
     "model.inference=langevin has no encoder and no q\\(z\\|x\\), so model.min_logvar"),
    ("ptb/aggressive.yaml", ["model.prior=ebm"], "objective.aggressive.enabled=true with model.prior=ebm"),
    ("ptb/sri.yaml", ["train.compile=true"], "train.compile=true with model.inference=langevin"),
    ("ptb/sri.yaml", ["model.inference=langevn"], "model.inference must be one of .*Did you mean 'langevin'"),
])
def test_bad_latent_settings_name_the_key_and_the_fix(recipe, overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_recipe(REPO / "recipes" / recipe, overrides)


def test_schedules_take_values_of_the_right_length():
    r = load_recipe(REPO / "recipes/ptb/sri.yaml", ["model.langevin.steps=3", "model.langevin.step_size.values=[0.3,0.2,0.1]"])
    assert r.model.langevin.step_size.values == [0.3, 0.2, 0.1]
    r = load_recipe(REPO / "recipes/ptb/sri.yaml")
    assert (r.model.inference, r.model.langevin.steps, r.model.langevin.step_size.start, r.model.langevin.step_size.end,
            r.model.langevin.noise.start, r.model.langevin.noise.end) == ("langevin", 20, 0.8, 0.05, 0.05, 0.2)
    r = load_recipe(REPO / "recipes/ptb/info_vae_ebm.yaml")
    assert r.model.prior == "ebm" and r.model.ebm.hidden_dims == [200, 200] and r.model.ebm.langevin.steps == 60
