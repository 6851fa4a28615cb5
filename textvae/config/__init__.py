"""Recipe configuration: dataclasses loaded from YAML, plus ``key.sub=value`` overrides.

:mod:`~textvae.config.schema` holds the five sections and their checks;
:mod:`~textvae.config.loading` reads YAML, applies overrides and converts values to the schema.
Everything public is importable from here (``from textvae.config import Recipe, load_recipe``).
"""

from textvae.config.loading import (apply_overrides, build_dataclass, dump_recipe, load_recipe, parse_override,
                                    read_yaml, recipe_from_dict)
from textvae.config.schema import (FREEZABLE_PARTS, TRANSFORMER_INJECTIONS, AggressiveConfig, ChainScheduleConfig,
                                   DataConfig, DecoderConfig, EncoderConfig, EnergyPriorConfig, KLScheduleConfig,
                                   LangevinConfig, ModelConfig, ObjectiveConfig, PosteriorLangevinConfig, Recipe,
                                   TokenizerConfig, TrainConfig)
from textvae.errors import ConfigError

__all__ = ["FREEZABLE_PARTS", "TRANSFORMER_INJECTIONS", "ConfigError", "DataConfig", "TokenizerConfig",
           "EncoderConfig", "DecoderConfig", "ChainScheduleConfig", "LangevinConfig",
           "PosteriorLangevinConfig", "EnergyPriorConfig", "ModelConfig", "KLScheduleConfig", "AggressiveConfig", "ObjectiveConfig",
           "TrainConfig", "Recipe", "apply_overrides", "build_dataclass", "dump_recipe", "load_recipe",
           "parse_override", "read_yaml", "recipe_from_dict"]
