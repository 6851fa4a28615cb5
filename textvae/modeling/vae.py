"""TextVAEModel: encoder → q(z|x) → decoder as an ``nn.Module``, with its config.json +
safetensors persistence.

What users load and call — with its tokenizer, generate / encode / reconstruct — is
:class:`textvae.TextVAE` (``textvae/inference/api.py``), which extends this class; modeling
knows nothing of text, tokenizers or decoding.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from textvae.config import ModelConfig, build_dataclass
from textvae.errors import ConfigError, ModelError
from textvae.modeling.linear_ce import linear_cross_entropy
from textvae.modeling.outputs import VAEOutput, VocabSpec
from textvae.modeling.posterior import GaussianHead, sample_gaussian
from textvae.modeling.registry import decoder_class, encoder_class
from textvae.utils.io import atomic_write, atomic_write_json
from textvae.utils.layout import (CONFIG_NAME, MODEL_DIR, RUN_RECIPE_NAME, WEIGHTS_NAME, intact_models,
                                  intact_models_sentence, is_run_dir, run_dir_of)

FORMAT_VERSION = 1


class TextVAEModel(nn.Module):
    """A sentence VAE (``mode: vae``) or the same decoder as a plain LM (``mode: lm``).

    Args:
        config: the ``model`` section of a recipe.
        vocab: special ids and vocabulary size from the tokenizer.
    """

    def __init__(self, config: ModelConfig, vocab: VocabSpec):
        super().__init__()
        # A private copy: parts loaded from `pretrained` record their architecture in it (hf_config),
        # which save_pretrained writes, while the caller's recipe stays as written.
        config = copy.deepcopy(config)
        self.config, self.vocab = config, vocab
        if config.mode == "vae":
            self.encoder = encoder_class(config.encoder.kind)(config.encoder, config, vocab)
            self.head = GaussianHead(self.encoder.output_dim, config.latent_dim, config.min_logvar,
                                     config.init_logvar, batchnorm_scale=config.posterior_batchnorm)
        else:
            self.encoder = self.head = None
        self.decoder = decoder_class(config.decoder.kind)(config.decoder, config, vocab)
        self.apply_freeze()

    # ------------------------------------------------------------------ properties

    @property
    def is_vae(self) -> bool:
        return self.config.mode == "vae"

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ forward

    def posterior(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x) parameters: ids (B, T) with BOS/EOS, lengths (B,) → μ, log σ² (B, D)."""
        if not self.is_vae:
            raise ValueError("a language model (model.mode=lm) has no posterior q(z|x).")
        return self.head(self.encoder(ids, lengths))

    def forward(self, ids: Tensor, lengths: Tensor, word_dropout: float = 0.0, sample: bool = True,
                generator: Optional[torch.Generator] = None) -> VAEOutput:
        """Encode, draw z (or take μ when ``sample`` is False) and score the sentence.

        Args:
            ids: (B, T) [BOS, tokens…, EOS, pad…].
            lengths: (B,) tokens + 2.
            word_dropout: rate at which decoder inputs are replaced by ``<unk>``.
            generator: RNG for z and word dropout (the global one when None).
        """
        if not self.is_vae:
            rec, n_tokens = self.reconstruction_nll(ids, lengths, None, word_dropout, generator)
            return VAEOutput(rec=rec, n_tokens=n_tokens)
        mu, logvar = self.posterior(ids, lengths)
        z = sample_gaussian(mu, logvar, generator) if sample else mu
        rec, n_tokens = self.reconstruction_nll(ids, lengths, z, word_dropout, generator)
        return VAEOutput(rec=rec, n_tokens=n_tokens, mu=mu, logvar=logvar, z=z)

    def reconstruction_nll(self, ids: Tensor, lengths: Tensor, z: Optional[Tensor],
                           word_dropout: float = 0.0,
                           generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        """−log p(x|z) per sentence (B,) in fp32, and the number of predicted tokens.

        The softmax runs over real (non-pad) positions only, and in fp32 even under autocast
        (the vocabulary matmul itself runs in the autocast dtype).
        """
        inputs, targets = ids[:, :-1], ids[:, 1:]  # (B, T-1) each
        target_lengths = lengths - 1  # tokens + EOS
        if word_dropout > 0:
            inputs = self.drop_words(inputs, target_lengths, word_dropout, generator)
        hidden, _ = self.decoder(inputs, z, target_lengths)  # (B, T-1, H)
        mask = torch.arange(inputs.shape[1], device=ids.device) < target_lengths.unsqueeze(1)
        output = self.decoder.output_layer()
        # (N,) over the N real target tokens; the (N, V) logits are never stored (linear_ce.py).
        nll = linear_cross_entropy(hidden[mask], output.weight, output.bias, targets[mask])
        rows = torch.arange(ids.shape[0], device=ids.device).unsqueeze(1).expand_as(mask)[mask]
        rec = torch.zeros(ids.shape[0], device=ids.device, dtype=torch.float32).index_add_(0, rows, nll)
        return rec, mask.sum()

    def drop_words(self, inputs: Tensor, lengths: Tensor, rate: float,
                   generator: Optional[torch.Generator] = None) -> Tensor:
        """Replace decoder inputs after BOS by ``<unk>`` with probability ``rate`` (Bowman et al.)."""
        replacement = self.vocab.unk_id if self.vocab.unk_id is not None else self.vocab.pad_id
        noise = torch.rand(inputs.shape, device=inputs.device, generator=generator)
        positions = torch.arange(inputs.shape[1], device=inputs.device).unsqueeze(0)
        drop = (noise < rate) & (positions > 0) & (positions < lengths.unsqueeze(1))
        return inputs.masked_fill(drop, replacement)

    # ------------------------------------------------------------------ persistence

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``.

        Each file is written to a temporary name and renamed, so a crash leaves the previous
        files readable.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_model(self, str(tmp), metadata={"format": "pt"}))
        atomic_write_json(directory / CONFIG_NAME, {
            "format_version": FORMAT_VERSION,
            "model": dataclasses.asdict(self.config),
            "vocab": dataclasses.asdict(self.vocab),
        })
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "TextVAEModel":
        """Rebuild a model from a directory written by :meth:`save_pretrained`, or from a run
        directory (``textvae train --output DIR``), whose ``model/`` it loads, as the CLI does.

        Raises:
            ModelError: a file is missing or damaged; the message names it. For a run's
                ``model/`` or ``best/`` it also names the run's intact models (best/, checkpoints).
        """
        directory = Path(directory)
        run_dir = run_dir_of(directory)
        if is_run_dir(directory) and not (directory / CONFIG_NAME).is_file():
            run_dir, directory = directory, directory / MODEL_DIR
            if not directory.is_dir():
                raise ModelError(_unfinished_run_message(run_dir))
        try:
            return cls._load_pretrained(directory, device)
        except ModelError as err:
            if run_dir is None or directory.parent != run_dir:  # checkpoints: --resume picks another itself
                raise
            raise ModelError(f"{err} {intact_models_sentence(run_dir, skip=directory)}") from err

    @classmethod
    def _load_pretrained(cls, directory: Path, device: str | torch.device) -> "TextVAEModel":
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not directory.is_dir():
            what = "is a file, not a directory" if directory.exists() else "does not exist"
            raise ModelError(
                f"{directory} {what}. Point at a textvae run directory (the --output of `textvae train`), its "
                "model/ or best/ folder, or a directory written by TextVAE.save_pretrained"
                + (f": here {directory.parent}." if directory.name in (CONFIG_NAME, WEIGHTS_NAME) else "."))
        if not config_path.is_file():
            found = (f" It holds {WEIGHTS_NAME}, but weights cannot be rebuilt without the architecture "
                     f"that {CONFIG_NAME} records: copy {CONFIG_NAME} from the directory these weights came from."
                     if weights_path.is_file() else
                     " Point at a directory written by `textvae train` (a run directory, or its model/ or best/ "
                     "folder) or by TextVAE.save_pretrained.")
            raise ModelError(f"{directory} is not a textvae model directory: it has no {CONFIG_NAME} "
                                 f"({config_path} is missing).{found}")
        try:
            meta = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelError(f"{config_path} is not valid JSON ({err}); the model directory is damaged.") from err
        version = meta.get("format_version") if isinstance(meta, dict) else None
        if version != FORMAT_VERSION:
            raise ModelError(
                f"{config_path} has format_version {version!r}; this textvae reads version {FORMAT_VERSION}. "
                "Upgrade textvae (pip install -U textvae) or re-save the model with this version.")
        try:
            config = build_dataclass(ModelConfig, meta["model"], "model")
            vocab = VocabSpec(**meta["vocab"])
        except (KeyError, TypeError, ConfigError) as err:
            raise ModelError(f"{config_path} does not describe a textvae model: {err}") from err
        model = cls(config, vocab, **cls._load_extras(directory, vocab))
        if not weights_path.is_file():
            raise ModelError(f"{directory} has no {WEIGHTS_NAME}; the weights were not saved or were removed.")
        try:
            missing, unexpected = load_model(model, str(weights_path), strict=False)
        except (SafetensorError, OSError, RuntimeError, ValueError) as err:
            raise ModelError(
                f"{weights_path} cannot be read as safetensors weights for this config ({err}). The file is "
                "truncated or altered; use another checkpoint of the run (checkpoints/ or best/).") from err
        if missing or unexpected:
            raise ModelError(
                f"{weights_path} does not match {config_path}: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}. The files come from different models.")
        return model.to(device)

    @classmethod
    def _load_extras(cls, directory: Path, vocab: VocabSpec) -> dict[str, Any]:
        """Constructor arguments a subclass reads from a model directory besides the weights
        (:class:`textvae.TextVAE`: its tokenizer); checked before the weights are read."""
        return {}

    # ------------------------------------------------------------------ freezing

    def apply_freeze(self) -> None:
        """Fix the parts named in ``config.freeze`` (``requires_grad`` False).

        ``encoder`` and ``decoder`` fix a part's body: ``body_parameters()`` where the part defines
        it (a Transformer decoder keeps its z projection trainable), else all its parameters; the
        Gaussian head always trains. ``embeddings`` fixes every token/position embedding table.
        """
        parts = {"encoder": self.encoder, "decoder": self.decoder}
        for name in self.config.freeze:
            if name == "embeddings":
                params = [p for m in self.modules() if isinstance(m, nn.Embedding) for p in m.parameters()]
            else:
                part = parts[name]
                params = part.body_parameters() if hasattr(part, "body_parameters") else list(part.parameters())
            for param in params:
                param.requires_grad_(False)


def _unfinished_run_message(run_dir: Path) -> str:
    found = intact_models(run_dir)
    if not found:
        return (f"{run_dir} is a run directory without a model yet: no {MODEL_DIR}/, best/ or checkpoint has been "
                "written. Let its training reach a validation or checkpoint step, or start it again.")
    return (f"{run_dir} is a run directory whose training has not finished: it has no {MODEL_DIR}/ yet. Load one "
            f"of its intact models instead: {', '.join(str(p) for p in found)}; or finish the run: textvae train "
            f"{run_dir / RUN_RECIPE_NAME} --output {run_dir} --resume.")
