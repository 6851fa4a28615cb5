"""One tokenizer interface over four kinds: word, byte-level BPE, unigram, and pretrained.

:class:`TextTokenizer` is what models, collators and metrics see: ``encode`` gives ids without
special tokens, the special ids come from the tokenizer (never hard-coded), ``save``/``load``
round-trip through a directory whose ``tokenizer_config.json`` names the kind.

Over 400 lines because the four kinds are small subclasses of one base whose ``train`` and
``load`` look the kind up in the registry at the end of this file: split into a module per kind,
the base would import every kind and every kind the base.

| kind | backend | files in the saved directory |
|---|---|---|
| ``word`` | ``tokenizers`` WordLevel, whitespace split | ``tokenizer.json`` |
| ``bpe`` | ``tokenizers`` byte-level BPE | ``tokenizer.json`` |
| ``unigram`` | ``sentencepiece`` unigram model | ``tokenizer.model`` |
| ``pretrained`` | ``transformers.AutoTokenizer`` | ``pretrained/`` (``save_pretrained``) |

The trained kinds share the specials ``<pad>`` ``<bos>`` ``<eos>`` ``<unk>`` (ids 0-3). PTB
already writes out-of-vocabulary words as the literal ``<unk>``; all three trained kinds map that
literal to ``unk_id``. ``decode(..., skip_special_tokens=True)`` drops pad/bos/eos but keeps
``<unk>``, which is content in PTB. A pretrained tokenizer keeps its own specials: missing
bos/eos/pad are filled in (GPT-2: bos = eos = pad = ``<|endoftext|>``), and ``unk_id`` may be
None for byte-level tokenizers, which never produce an unknown token.
"""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Optional

import sentencepiece as spm
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from textvae.config import TokenizerConfig
from textvae.utils.packages import resolve_package_path
from textvae.utils.text import one_line
from textvae.errors import DataError

CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "unk": "<unk>"}


class TextTokenizer(ABC):
    """Text ↔ ids, and the special ids a model needs. Build with :meth:`train` or :meth:`load`."""

    kind: ClassVar[str] = ""
    is_word_level: ClassVar[bool] = False
    """True for ``word``: perplexity is then per word (+ one end-of-sentence per sentence)."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def train(cls, cfg: TokenizerConfig, texts: Iterable[str]) -> TextTokenizer:
        """Train the tokenizer ``cfg.kind`` names on ``texts`` (``pretrained``: load it; texts unused)."""
        return TOKENIZER_KINDS[cfg.kind]._train(cfg, texts)

    @classmethod
    def load(cls, directory: str | Path) -> TextTokenizer:
        """Read a tokenizer written by :meth:`save`.

        Raises:
            DataError: the directory holds no textvae tokenizer or names an unknown kind.
        """
        directory = Path(directory)
        path = directory / CONFIG_FILE
        if not path.is_file():
            raise DataError(f"{directory} holds no tokenizer ({CONFIG_FILE} is missing). Point at the "
                            "tokenizer/ folder of a textvae run or at a folder written by TextTokenizer.save.")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            kind_cls = TOKENIZER_KINDS[meta["kind"]]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"{path} does not describe a textvae tokenizer ({err!r}); kinds are "
                            f"{', '.join(TOKENIZER_KINDS)}.") from err
        return kind_cls._load(directory, meta)

    @staticmethod
    def _require(path: Path) -> Path:
        if not path.exists():
            raise DataError(f"{path} is missing; the tokenizer folder {path.parent} is incomplete. "
                            "Copy the whole tokenizer/ folder of the run, or train the tokenizer again.")
        return path

    @classmethod
    @abstractmethod
    def _train(cls, cfg: TokenizerConfig, texts: Iterable[str]) -> TextTokenizer:
        """Build this kind from a config and training texts."""

    @classmethod
    @abstractmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> TextTokenizer:
        """Read this kind's files; ``meta`` is the parsed ``tokenizer_config.json``."""

    def save(self, directory: str | Path) -> None:
        """Write the tokenizer files and ``tokenizer_config.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "special_tokens": self.special_tokens(), **self._save_files(directory)}
        (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @abstractmethod
    def _save_files(self, directory: Path) -> dict[str, Any]:
        """Write the backend's files; return extra entries for the config file."""

    # ------------------------------------------------------------------ vocabulary

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, specials included: the size of the embedding and output layers."""

    @property
    def pad_id(self) -> int:
        return self._special_id("pad")

    @property
    def bos_id(self) -> int:
        return self._special_id("bos")

    @property
    def eos_id(self) -> int:
        return self._special_id("eos")

    @property
    def unk_id(self) -> Optional[int]:
        return self._special_id("unk")

    def _special_id(self, role: str) -> Optional[int]:
        token = self.special_tokens()[role]
        return None if token is None else self.token_to_id(token)

    def special_tokens(self) -> dict[str, Optional[str]]:
        """Role (pad/bos/eos/unk) → token string."""
        return dict(SPECIAL_TOKENS)

    @abstractmethod
    def id_to_token(self, index: int) -> Optional[str]:
        """The vocabulary entry of an id."""

    @abstractmethod
    def token_to_id(self, token: str) -> Optional[int]:
        """The id of a vocabulary entry, or None when ``token`` is not one."""

    # ------------------------------------------------------------------ text ↔ ids

    def encode(self, text: str) -> list[int]:
        """Ids of one text, without bos/eos."""
        return self.encode_batch([text])[0]

    @abstractmethod
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of many texts at once (the fast path), without bos/eos."""

    @abstractmethod
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` (a list or a tensor); with ``skip_special_tokens``, pad/bos/eos are left out."""

    def decode_batch(self, batch: Iterable[Sequence[int]], skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(ids, skip_special_tokens) for ids in batch]

    def _content_ids(self, ids: Any, skip_special_tokens: bool) -> list[int]:
        """``ids`` (list or tensor) as ints, without pad/bos/eos when asked."""
        ids = ids.tolist() if hasattr(ids, "tolist") else [int(i) for i in ids]
        if not skip_special_tokens:
            return ids
        drop = {self.pad_id, self.bos_id, self.eos_id}
        return [i for i in ids if i not in drop]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kind={self.kind!r}, vocab_size={self.vocab_size}, pad_id={self.pad_id}, "
                f"bos_id={self.bos_id}, eos_id={self.eos_id}, unk_id={self.unk_id})")


def _hide_specials(texts: Iterable[str]) -> Iterator[str]:
    """Texts with literal special tokens blanked out, for training.

    The ``tokenizers`` WordLevel trainer counts a literal ``<unk>`` (PTB has 45k) as a word and
    then leaves a hole in the id range; sentencepiece would learn ``<``/``unk``/``>`` pieces from
    it. At encode time the literal still maps to ``unk_id``.
    """
    for text in texts:
        for token in SPECIAL_TOKENS.values():
            if token in text:
                text = text.replace(token, " ")
        yield text


# --------------------------------------------------------------------------- word and bpe


class _RustTokenizer(TextTokenizer):
    """A ``tokenizers.Tokenizer`` whose specials are the four of :data:`SPECIAL_TOKENS`."""

    def __init__(self, tokenizer: Any):
        self._tok = tokenizer
        ids = sorted(tokenizer.get_vocab(with_added_tokens=True).values())
        if ids != list(range(len(ids))):  # an embedding row per id: a gap would be an index error
            raise DataError(f"The {self.kind} vocabulary has ids that are not 0..{len(ids) - 1}; "
                            "the tokenizer file is damaged. Train the tokenizer again.")
        missing = [t for t in SPECIAL_TOKENS.values() if tokenizer.token_to_id(t) is None]
        if missing:
            raise DataError(f"The {self.kind} tokenizer lacks the special tokens {missing}; train it again.")

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> TextTokenizer:
        return cls(Tokenizer.from_file(str(cls._require(directory / "tokenizer.json"))))

    def _save_files(self, directory: Path) -> dict[str, Any]:
        self._tok.save(str(directory / "tokenizer.json"))
        return {}

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def id_to_token(self, index: int) -> Optional[str]:
        return self._tok.id_to_token(int(index))

    def token_to_id(self, token: str) -> Optional[int]:
        return self._tok.token_to_id(token)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        # The backend's own skipping would also drop <unk>, a real word of PTB.
        return self._tok.decode(self._content_ids(ids, skip_special_tokens), skip_special_tokens=False)


class WordTokenizer(_RustTokenizer):
    """Whitespace-separated words; rare words (beyond ``vocab_size`` or below ``min_freq``) → ``<unk>``."""

    kind = "word"
    is_word_level = True

    @classmethod
    def _train(cls, cfg: TokenizerConfig, texts: Iterable[str]) -> TextTokenizer:
        tok = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk"]))
        if cfg.lowercase:
            tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_freq,
                                            special_tokens=list(SPECIAL_TOKENS.values()), show_progress=False)
        tok.train_from_iterator(_hide_specials(texts), trainer)
        return cls(tok)


class BPETokenizer(_RustTokenizer):
    """Byte-level BPE (GPT-2 style): any text encodes without ``<unk>``; decoding gives it back.

    The 256 byte symbols are always in the vocabulary, so it holds at least 260 ids.
    """

    kind = "bpe"

    @classmethod
    def _train(cls, cfg: TokenizerConfig, texts: Iterable[str]) -> TextTokenizer:
        tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk"]))
        steps = [normalizers.NFC()] + ([normalizers.Lowercase()] if cfg.lowercase else [])
        tok.normalizer = normalizers.Sequence(steps)
        # A prefix space makes a word the same token at the start of a sentence as inside it.
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_freq,
                                      special_tokens=list(SPECIAL_TOKENS.values()),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(_hide_specials(texts), trainer)
        return cls(tok)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        text = super().decode(ids, skip_special_tokens)
        return text[1:] if text.startswith(" ") else text  # the prefix space added when encoding


# --------------------------------------------------------------------------- unigram


class UnigramTokenizer(TextTokenizer):
    """A sentencepiece unigram model. ``min_freq`` does not apply; ``vocab_size`` is a soft target
    (``hard_vocab_limit=False``) so that small corpora train."""

    kind = "unigram"
    MODEL_FILE = "tokenizer.model"

    def __init__(self, model_proto: bytes):
        self._proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def _train(cls, cfg: TokenizerConfig, texts: Iterable[str]) -> TextTokenizer:
        model = io.BytesIO()
        ids = {f"{role}_id": i for i, role in enumerate(SPECIAL_TOKENS)}
        pieces = {f"{role}_piece": token for role, token in SPECIAL_TOKENS.items()}
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=(t for t in _hide_specials(texts) if t.strip()), model_writer=model,
                model_type="unigram", vocab_size=cfg.vocab_size, hard_vocab_limit=False,
                character_coverage=1.0,  # every character of the training text gets a piece
                normalization_rule_name="nmt_nfkc_cf" if cfg.lowercase else "nmt_nfkc",
                max_sentence_length=1 << 16,  # keep long documents (Yahoo) instead of skipping them
                minloglevel=2, **ids, **pieces)
        except RuntimeError as err:
            raise DataError(f"sentencepiece could not train a unigram model with tokenizer.vocab_size="
                            f"{cfg.vocab_size}: {one_line(err).rstrip('.')}. Try another vocab_size or "
                            "more training text.") from err
        return cls(model.getvalue())

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> TextTokenizer:
        return cls(cls._require(directory / cls.MODEL_FILE).read_bytes())

    def _save_files(self, directory: Path) -> dict[str, Any]:
        (directory / self.MODEL_FILE).write_bytes(self._proto)
        return {}

    def __getstate__(self) -> dict[str, Any]:
        return {"proto": self._proto}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["proto"])

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def id_to_token(self, index: int) -> Optional[str]:
        index = int(index)
        return self._sp.id_to_piece(index) if 0 <= index < self.vocab_size else None

    def token_to_id(self, token: str) -> Optional[int]:
        index = self._sp.piece_to_id(token)
        return None if index == self._sp.unk_id() and token != SPECIAL_TOKENS["unk"] else index

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        # sentencepiece would spell a literal "<unk>" as pieces; encode around it and put unk_id there.
        unk, marker = self._sp.unk_id(), SPECIAL_TOKENS["unk"]
        texts = list(texts)
        if not any(marker in t for t in texts):
            return self._sp.encode(texts)
        parts = [t.split(marker) for t in texts]
        encoded = iter(self._sp.encode([p for ps in parts for p in ps]))
        result = []
        for ps in parts:
            ids = list(next(encoded))
            for _ in ps[1:]:
                ids += [unk] + next(encoded)
            result.append(ids)
        return result

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        # sentencepiece shows unk as " ⁇ " and control symbols as nothing; write them as tokens.
        visible = {self.unk_id} if skip_special_tokens else {self.pad_id, self.bos_id, self.eos_id, self.unk_id}
        words, segment = [], []
        for i in self._content_ids(ids, skip_special_tokens):
            if i in visible:
                words += [self._sp.decode(segment), self._sp.id_to_piece(i)]
                segment = []
            else:
                segment.append(i)
        words.append(self._sp.decode(segment))
        return " ".join(w for w in words if w)


# --------------------------------------------------------------------------- pretrained


class PretrainedTokenizer(TextTokenizer):
    """A ``transformers`` tokenizer (hub name or local directory), with bos/eos/pad filled in."""

    kind = "pretrained"
    SUBDIR = "pretrained"

    def __init__(self, tokenizer: Any, name_or_path: str):
        self._tok = tokenizer
        self.name_or_path = name_or_path
        _fill_specials(tokenizer)

    @classmethod
    def _train(cls, cfg: TokenizerConfig, texts: Iterable[str]) -> TextTokenizer:
        path = resolve_package_path(str(cfg.name_or_path), "tokenizer.name_or_path")  # package:<module>/<dir>
        return cls(_auto_tokenizer(path), str(cfg.name_or_path))

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> TextTokenizer:
        tok = _auto_tokenizer(str(cls._require(directory / cls.SUBDIR)))
        for role, token in meta.get("special_tokens", {}).items():
            if token is not None and getattr(tok, f"{role}_token") is None:
                setattr(tok, f"{role}_token", token)
        return cls(tok, meta.get("name_or_path", str(directory)))

    def _save_files(self, directory: Path) -> dict[str, Any]:
        self._tok.save_pretrained(str(directory / self.SUBDIR))
        return {"name_or_path": self.name_or_path}

    def special_tokens(self) -> dict[str, Optional[str]]:
        return {role: getattr(self._tok, f"{role}_token") for role in SPECIAL_TOKENS}

    @property
    def vocab_size(self) -> int:
        return len(self._tok)  # added tokens included, unlike the backend's vocab_size

    def id_to_token(self, index: int) -> Optional[str]:
        return self._tok.convert_ids_to_tokens(int(index))

    def token_to_id(self, token: str) -> Optional[int]:
        index = self._tok.convert_tokens_to_ids(token)
        unknown = index is None or (index == self._tok.unk_token_id and token != self._tok.unk_token)
        return None if unknown else index

    @property
    def pad_id(self) -> int:
        return self._tok.pad_token_id

    @property
    def bos_id(self) -> int:
        return self._tok.bos_token_id

    @property
    def eos_id(self) -> int:
        return self._tok.eos_token_id

    @property
    def unk_id(self) -> Optional[int]:
        return self._tok.unk_token_id

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._tok(list(texts), add_special_tokens=False, verbose=False)["input_ids"]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode(self._content_ids(ids, skip_special_tokens), skip_special_tokens=False)


def _auto_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer  # slow to import; only this kind needs it

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError, KeyError) as err:
        raise DataError(
            f"Could not load the pretrained tokenizer {name_or_path!r} ({type(err).__name__}: {one_line(err)}). "
            "Without internet, a hub name only works if it is already in the local cache: download it "
            "once elsewhere with AutoTokenizer.from_pretrained(name).save_pretrained('some/dir') and set "
            "tokenizer.name_or_path=some/dir.") from err


def _fill_specials(tok: Any) -> None:
    """Give a transformers tokenizer the bos, eos and pad a sentence VAE needs.

    eos: eos, else sep, else bos; bos: bos, else cls, else eos; pad: pad, else eos (the collator
    masks by length, so pad may equal eos). Without any of them, ``<bos>``/``<eos>`` are added.
    unk is left as it is: None for byte-level tokenizers.
    """
    if tok.eos_token is None and (tok.sep_token or tok.bos_token):
        tok.eos_token = tok.sep_token or tok.bos_token
    if tok.bos_token is None and (tok.cls_token or tok.eos_token):
        tok.bos_token = tok.cls_token or tok.eos_token
    if tok.eos_token is None:
        tok.add_special_tokens({"bos_token": SPECIAL_TOKENS["bos"], "eos_token": SPECIAL_TOKENS["eos"]})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token


TOKENIZER_KINDS: dict[str, type[TextTokenizer]] = {
    "word": WordTokenizer,
    "bpe": BPETokenizer,
    "unigram": UnigramTokenizer,
    "pretrained": PretrainedTokenizer,
}
