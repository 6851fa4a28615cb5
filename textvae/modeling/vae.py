"""TextVAEModel: encoder → q(z|x) → decoder as an ``nn.Module``, with its config.json +
safetensors persistence; or short-run Langevin inference in place of (or after) the encoder, and
a Gaussian or energy-based prior (``model.inference``, ``model.prior``).

What users load and call — with its tokenizer, generate / encode / reconstruct — is
:class:`textvae.TextVAE` (``textvae/inference/api.py``), which extends this class; modeling
knows nothing of text, tokenizers or decoding.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, NamedTuple, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from textvae.config import ModelConfig, build_dataclass
from textvae.errors import ConfigError, ModelError
from textvae.modeling.linear_ce import linear_cross_entropy
from textvae.modeling.outputs import VAEOutput, VocabSpec
from textvae.modeling.langevin import chain_schedules, fit_gaussian, input_gradients, langevin_chain
from textvae.modeling.posterior import GaussianHead, sample_gaussian
from textvae.modeling.prior import build_prior
from textvae.modeling.registry import decoder_class, encoder_class
from textvae.utils.io import atomic_write, atomic_write_json
from textvae.utils.layout import (CONFIG_NAME, MODEL_DIR, RUN_RECIPE_NAME, WEIGHTS_NAME, intact_models,
                                  intact_models_sentence, is_run_dir, run_dir_of)

FORMAT_VERSION = 1
CHAIN_SEED = 0
"""Seeds the chains of :meth:`TextVAEModel.posterior` when no generator is given, so that
``encode`` of a short-run model returns the same features for the same batch every time."""


class TargetIndex(NamedTuple):
    """Where a batch's scored tokens are, found once (one host sync) and reused by every chain step."""

    flat: Tensor
    """(N,) indices of the real target positions in the flattened (B·(T−1)) decoder outputs."""
    rows: Tensor
    """(N,) the sentence of each."""
    targets: Tensor
    """(N,) the token ids to score."""
    n_tokens: Tensor
    """() N."""


def target_index(ids: Tensor, lengths: Tensor) -> TargetIndex:
    """The scored positions of ids (B, T) [BOS, tokens…, EOS, pad…] with lengths (B,)."""
    steps = ids.shape[1] - 1
    mask = torch.arange(steps, device=ids.device) < (lengths - 1).unsqueeze(1)  # (B, T-1)
    flat = mask.reshape(-1).nonzero().squeeze(1)
    return TargetIndex(flat, torch.div(flat, steps, rounding_mode="floor"),
                       ids[:, 1:].reshape(-1).index_select(0, flat), mask.sum())


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
        if config.mode == "vae" and config.inference != "langevin":
            self.encoder = encoder_class(config.encoder.kind)(config.encoder, config, vocab)
            self.head = GaussianHead(self.encoder.output_dim, config.latent_dim, config.min_logvar,
                                     config.init_logvar, batchnorm_scale=config.posterior_batchnorm)
        else:
            self.encoder = self.head = None
        self.decoder = decoder_class(config.decoder.kind)(config.decoder, config, vocab)
        # Built last: the parts above draw the same initial weights whatever the prior.
        self.prior = build_prior(config) if config.mode == "vae" else None
        self.chain_steps = chain_schedules(config.langevin)  # (s_k, τ_k) of the posterior chain
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

    def amortized_posterior(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's q(z|x): ids (B, T) with BOS/EOS, lengths (B,) → μ, log σ² (B, D)."""
        if self.encoder is None:
            raise ValueError("this model has no encoder q(z|x) (model.mode=lm or model.inference=langevin).")
        return self.head(self.encoder(ids, lengths))

    def posterior(self, ids: Tensor, lengths: Tensor,
                  generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        """The Gaussian posterior textvae encodes with and measures: μ, log σ² (B, D).

        ``amortized``: q(z|x). With a posterior chain: the diagonal Gaussian fitted to
        ``model.langevin.fit_samples`` short-run samples of each sentence (its μ is their mean),
        the chains drawn from ``generator`` (when None, from one seeded with :data:`CHAIN_SEED`).
        """
        if not self.is_vae:
            raise ValueError("a language model (model.mode=lm) has no posterior q(z|x).")
        if self.config.inference == "amortized":
            return self.amortized_posterior(ids, lengths)
        if generator is None:
            generator = torch.Generator(device=ids.device).manual_seed(CHAIN_SEED)
        cfg, (b, d) = self.config.langevin, (ids.shape[0], self.latent_dim)
        z = self.posterior_samples(ids, lengths, generator, copies=cfg.fit_samples)
        return fit_gaussian(z.view(cfg.fit_samples, b, d), cfg.fit_min_variance)

    def posterior_samples(self, ids: Tensor, lengths: Tensor, generator: Optional[torch.Generator] = None,
                          copies: int = 1) -> Tensor:
        """``copies`` short-run posterior samples per sentence, (copies·B, D) sample-major, detached:
        chains from N(0, I) (``langevin``) or from samples of q(z|x) (``amortized+langevin``)."""
        b = ids.shape[0]
        if self.config.inference == "langevin":
            z0 = torch.randn(copies * b, self.latent_dim, device=ids.device, generator=generator)
        else:  # the encoder runs once; its Gaussian is sampled ``copies`` times
            mu, logvar = self.amortized_posterior(ids, lengths)
            z0 = sample_gaussian(mu.repeat(copies, 1), logvar.repeat(copies, 1), generator)
        if copies > 1:
            ids, lengths = ids.repeat(copies, 1), lengths.repeat(copies)
        return self.refine(ids, lengths, z0, generator)

    def refine(self, ids: Tensor, lengths: Tensor, z0: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """The ``model.langevin`` chain from z0 (B, D) toward p(z|x), guided by ∇_z log p(x, z). → (B, D) detached."""
        index = target_index(ids, lengths)

        def log_joint(z: Tensor) -> Tensor:  # log p(x|z) + log p(z) + const, (B,) fp32
            rec, _ = self.reconstruction_nll(ids, lengths, z, index=index, frozen_output=True)
            return self.prior.log_density(z) - rec

        with input_gradients(self.decoder):
            return langevin_chain(log_joint, z0, *self.chain_steps, generator, name="model.langevin")

    def sample_prior(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """(n, D) draws of p(z): N(0, I), or the energy-based prior's short-run chain."""
        return self.prior.sample(n, self.device, generator)

    def forward(self, ids: Tensor, lengths: Tensor, word_dropout: float = 0.0, sample: bool = True,
                generator: Optional[torch.Generator] = None,
                chain_generator: Optional[torch.Generator] = None) -> VAEOutput:
        """Infer z, draw it (or take μ when ``sample`` is False) and score the sentence.

        In training mode a posterior chain gives the z the decoder trains on (see
        ``model.inference``) and an energy-based prior adds the terms of its gradient; in ``eval()``
        mode a model with a posterior chain returns the Gaussian of :meth:`posterior` and a sample
        of it, as validation and evaluation measure it.

        Args:
            ids: (B, T) [BOS, tokens…, EOS, pad…].
            lengths: (B,) tokens + 2.
            word_dropout: rate at which decoder inputs are replaced by ``<unk>``.
            generator: RNG for z and word dropout (the global one when None).
            chain_generator: RNG of the Langevin chains (``generator`` when None).
        """
        if not self.is_vae:
            rec, n_tokens = self.reconstruction_nll(ids, lengths, None, word_dropout, generator)
            return VAEOutput(rec=rec, n_tokens=n_tokens)
        chains = chain_generator if chain_generator is not None else generator
        inference = self.config.inference
        if inference == "langevin" and self.training:
            z = self.posterior_samples(ids, lengths, chains)
            rec, n_tokens = self.reconstruction_nll(ids, lengths, z, word_dropout, generator)
            out = VAEOutput(rec=rec, n_tokens=n_tokens, z=z)
        else:
            trains_chain = inference == "amortized+langevin" and self.training
            mu, logvar = self.amortized_posterior(ids, lengths) if self.training or inference == "amortized" \
                else self.posterior(ids, lengths, chains)
            z = sample_gaussian(mu, logvar, generator) if sample else mu
            out = VAEOutput(rec=None, n_tokens=None, mu=mu, logvar=logvar, z=z)
            if trains_chain:  # the encoder's own term, then the decoder's on the refined z
                out.rec_encoder = self._encoder_reconstruction(ids, lengths, z, word_dropout, generator)
                out.refined = self.refine(ids, lengths, z, chains)
            out.rec, out.n_tokens = self.reconstruction_nll(ids, lengths, out.refined if trains_chain else z,
                                                            word_dropout, generator)
        if not self.prior.normalized:
            self._energy_terms(out, chains)
        return out

    def _encoder_reconstruction(self, ids: Tensor, lengths: Tensor, z: Tensor, word_dropout: float,
                                generator: Optional[torch.Generator]) -> Tensor:
        """−log p(x|z) (B,) whose gradient reaches z, and through it the encoder, but no decoder weight."""
        leaf = z.detach().requires_grad_(True)
        with torch.enable_grad():
            rec, _ = self.reconstruction_nll(ids, lengths, leaf, word_dropout, generator, frozen_output=True)
            grad, = torch.autograd.grad(rec.sum(), leaf)
        return _with_gradient(rec.detach(), grad, z)

    def _energy_terms(self, out: VAEOutput, generator: Optional[torch.Generator]) -> None:
        """An energy-based prior's part of ``out``: f_α(z) for the KL, and in training the two
        phases of its maximum-likelihood gradient with the prior chain's samples."""
        if out.mu is not None:
            if torch.is_grad_enabled() and out.z.requires_grad:
                leaf = out.z.detach().requires_grad_(True)
                f = self.prior.tilt(leaf)
                out.tilt = _with_gradient(f.detach(), torch.autograd.grad(f.sum(), leaf)[0], out.z)
            else:
                out.tilt = self.prior.tilt(out.z)
        if self.training:
            positives = out.refined if out.refined is not None else out.z
            out.prior_z = self.sample_prior(positives.shape[0], generator)
            out.energy_data = self.prior.tilt(positives.detach())
            out.energy_prior = self.prior.tilt(out.prior_z)

    def reconstruction_nll(self, ids: Tensor, lengths: Tensor, z: Optional[Tensor],
                           word_dropout: float = 0.0, generator: Optional[torch.Generator] = None, *,
                           index: Optional[TargetIndex] = None,
                           frozen_output: bool = False) -> tuple[Tensor, Tensor]:
        """−log p(x|z) per sentence (B,) in fp32, and the number of predicted tokens.

        The softmax runs over real (non-pad) positions only, and in fp32 even under autocast
        (the vocabulary matmul itself runs in the autocast dtype).

        Args:
            index: the batch's :func:`target_index`, when already found (a chain reuses it: no host sync).
            frozen_output: hold the output layer's weights fixed (no gradient computed for them),
                for passes that differentiate with respect to z only.
        """
        inputs = ids[:, :-1]  # (B, T-1)
        target_lengths = lengths - 1  # tokens + EOS
        if index is None:
            index = target_index(ids, lengths)
        if word_dropout > 0:
            inputs = self.drop_words(inputs, target_lengths, word_dropout, generator)
        hidden, _ = self.decoder(inputs, z, target_lengths)  # (B, T-1, H)
        output = self.decoder.output_layer()
        weight, bias = output.weight, output.bias
        if frozen_output:
            weight, bias = weight.detach(), None if bias is None else bias.detach()
        # (N,) over the N real target tokens; the (N, V) logits are never stored (linear_ce.py).
        scored = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index.flat)
        nll = linear_cross_entropy(scored, weight, bias, index.targets)
        rec = torch.zeros(ids.shape[0], device=ids.device, dtype=torch.float32).index_add_(0, index.rows, nll)
        return rec, index.n_tokens

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
        The model comes back in eval mode (dropout off), as Hugging Face's ``from_pretrained``
        gives it; call ``.train()`` to fine-tune.

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
        return model.to(device).eval()

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


def _with_gradient(value: Tensor, grad: Tensor, z: Tensor) -> Tensor:
    """``value`` (B,) exactly, with the gradient ``grad`` (B, D) · ∂z/∂θ: a term differentiated
    through z alone (the linear term adds x − x = 0 to the value)."""
    linear = (grad.detach() * z.float()).sum(-1)
    return value + (linear - linear.detach())


def _unfinished_run_message(run_dir: Path) -> str:
    found = intact_models(run_dir)
    if not found:
        return (f"{run_dir} is a run directory without a model yet: no {MODEL_DIR}/, best/ or checkpoint has been "
                "written. Let its training reach a validation or checkpoint step, or start it again.")
    return (f"{run_dir} is a run directory whose training has not finished: it has no {MODEL_DIR}/ yet. Load one "
            f"of its intact models instead: {', '.join(str(p) for p in found)}; or finish the run: textvae train "
            f"{run_dir / RUN_RECIPE_NAME} --output {run_dir} --resume.")
