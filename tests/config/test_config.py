import pytest

from textvae.config import Recipe, apply_overrides, dump_recipe, load_recipe, recipe_from_dict
from textvae.errors import ConfigError

from tests.helpers import REPO

RECIPES = sorted(REPO.joinpath("recipes").rglob("*.yaml"))


def test_every_recipe_validates():
    assert len(RECIPES) >= 13
    for path in RECIPES:
        recipe = load_recipe(path)
        text = path.read_text()
        assert text.startswith("#"), f"{path} needs a header comment saying what it is and how to run it"
        assert "textvae train" in text
        assert recipe_from_dict(__import__("yaml").safe_load(dump_recipe(recipe))) == recipe


def test_overrides_set_nested_keys_with_yaml_types(tmp_path):
    recipe = load_recipe(RECIPES[0], ["model.latent_dim=64", "train.lr=3e-4", "objective.kl_schedule.kind=linear",
                                      "data.train_files=[a.txt,b.txt]", "model.min_logvar=null"])
    assert recipe.model.latent_dim == 64 and recipe.train.lr == pytest.approx(3e-4)
    assert recipe.objective.kl_schedule.kind == "linear"
    assert recipe.data.train_files == ["a.txt", "b.txt"] and recipe.model.min_logvar is None


@pytest.mark.parametrize("override,match", [
    ("model.latnt_dim=3", "Unknown recipe key 'model.latnt_dim'. Did you mean 'model.latent_dim'"),
    ("trian.lr=0.1", "Did you mean 'train'"),
    ("train.max_steps=abc", "train.max_steps must be of type int, got str 'abc'"),
    ("train.precision=fp8", "train.precision must be one of"),
    ("model.latent_dim=0", "model.latent_dim must be >= 1"),
    ("objective.preset=info_vae", "needs objective.alpha and objective.lam"),
    ("train.lr", "not of the form key.sub=value"),
    ("model.latent_dim.x=1", "'latent_dim' is a value, not a section"),
])
def test_bad_overrides_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_recipe(RECIPES[0], [override])


def test_lm_mode_needs_lm_preset():
    with pytest.raises(ConfigError, match="model.mode=lm and objective.preset=lm"):
        recipe_from_dict({"model": {"mode": "lm"}, "objective": {"preset": "elbo"}})


def test_missing_and_malformed_recipe_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("model: 3\n")
    with pytest.raises(ConfigError, match="model must be a mapping"):
        load_recipe(wrong)


def test_apply_overrides_does_not_mutate_input():
    base = {"train": {"lr": 0.1}}
    out = apply_overrides(base, ["train.lr=0.2"])
    assert base == {"train": {"lr": 0.1}} and out["train"]["lr"] == 0.2
    assert Recipe() == recipe_from_dict({})
