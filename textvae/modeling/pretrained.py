"""Loading a pretrained Hugging Face part (``model.encoder.pretrained``, ``model.decoder.pretrained``):
every failure becomes one actionable :class:`~textvae.errors.ModelError`, and the embeddings are
checked against the run's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import PreTrainedModel

from textvae.errors import ModelError
from textvae.modeling.outputs import VocabSpec
from textvae.utils.packages import resolve_package_path

__all__ = ["fit_vocabulary", "load_pretrained"]


def load_pretrained(model_class: type[PreTrainedModel], name: str, key: str, **overrides) -> PreTrainedModel:
    """``model_class.from_pretrained(name)``, turning every failure into one actionable message.

    transformers' own load report (a table of every unused or missing weight, printed on each load)
    is silenced: unused weights are expected (a checkpoint's heads, BERT's pooler, which the encoder
    does not build) and missing ones are an error here, not a warning. A folder of another
    architecture (a BERT given as the GPT-2 decoder) would otherwise load as a randomly initialised
    model, with only that table to say so.

    Args:
        model_class: e.g. ``BertModel`` or ``GPT2LMHeadModel``.
        name: a local directory, a hub name, or ``package:<module>/<dir>`` (an installed package's folder).
        key: the recipe key that named it (for the message), e.g. ``model.decoder.pretrained``.
        overrides: ``from_pretrained`` keyword arguments: config attributes to override (dropout
            rates), ``add_pooling_layer``.
    Raises:
        ModelError: it cannot be read, or it lacks weights the model needs.
    """
    from transformers.utils import logging as hf_logging

    path = resolve_package_path(name, key)  # ConfigError (a ValueError) before the try on purpose
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = model_class.from_pretrained(path, output_loading_info=True, **overrides)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(
            f"Could not load {key}={name!r} as a {model_class.__name__} ({type(err).__name__}: {err}). "
            "Without internet a hub name only works if it is already in the local cache. Save the model "
            f"once on a machine with access ({model_class.__name__}.from_pretrained(name).save_pretrained"
            f"('some/dir')) and set {key}=some/dir: a directory with config.json and model.safetensors."
        ) from err
    except RuntimeError as err:
        if not any(w in str(err) for w in ("size mismatch", "ignore_mismatched_sizes", "conversion")):
            raise  # not a damaged folder (e.g. out of memory): its own message says more than ours would
        raise ModelError(
            f"Could not load {key}={name!r} as a {model_class.__name__}: its weights do not match its "
            f"config.json ({str(err).splitlines()[0]}). The folder is damaged or mixes files of two models: "
            "save the model again with save_pretrained.") from err
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(info["missing_keys"])
    if missing:
        raise ModelError(
            f"{key}={name!r} is not a {model_class.__name__} checkpoint{_declared_type(path)}: {len(missing)} "
            f"of the weights the model needs are not in it ({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}), "
            f"so they would start untrained. Give {key} a {_FAMILY.get(model_class.__name__, model_class.__name__)} "
            "checkpoint (a hub name or a save_pretrained directory).")
    return model


# What each loaded class's checkpoints are called in the messages.
_FAMILY = {"BertModel": "BERT-family (model_type bert)", "GPT2LMHeadModel": "GPT-2 (model_type gpt2)"}


def _declared_type(path: str) -> str:
    """`` (its config.json says model_type 'x')`` for a local folder that declares one, else ``""``."""
    try:
        declared = json.loads((Path(path) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return ""
    return f" (its config.json says model_type {declared!r})" if declared else ""


def fit_vocabulary(model: PreTrainedModel, vocab: VocabSpec, resize: bool, key: str) -> None:
    """Check that the pretrained embeddings index the tokenizer's ids; resize them if allowed."""
    rows = model.get_input_embeddings().num_embeddings
    if rows == vocab.vocab_size:
        return
    section = key.rsplit(".", 1)[0]
    if not resize:
        raise ModelError(
            f"{key} embeds {rows} tokens but the run's tokenizer has {vocab.vocab_size}. Use the tokenizer "
            f"the model was trained with (tokenizer.kind=pretrained, tokenizer.name_or_path=<the same "
            f"model>), or set {section}.resize_embeddings=true to resize the embedding matrix (existing "
            "rows are kept, new ones start untrained).")
    model.resize_token_embeddings(vocab.vocab_size)
