"""Data: corpora as ``datasets.DatasetDict``, tokenizers, length-bucketed batches.

    corpus = load_corpus(recipe.data, seed=recipe.train.seed)
    tokenizer = TextTokenizer.train(recipe.tokenizer, corpus["train"]["text"])
    corpus, stats = tokenize_corpus(corpus, tokenizer, recipe.data)
    loader = make_loader(corpus["train"], tokenizer, batch_size=32, shuffle=True, seed=0)
"""

from textvae.data.batching import (Batch, Collator, LengthBucketSampler, TokenizedDataset, make_loader,
                                   tokenize_corpus)
from textvae.data.columns import label_names
from textvae.data.corpora import Corpus, load_corpus
from textvae.data.files import FORMATS
from textvae.data.lines import read_text_lines
from textvae.data.options import OptionNames
from textvae.data.report import corpus_notes, corpus_report
from textvae.data.shipped import SHIPPED_CORPORA, ShippedCorpus, data_root
from textvae.data.tokenizers import (SPECIAL_TOKENS, TOKENIZER_KINDS, BPETokenizer, PretrainedTokenizer,
                                     TextTokenizer, UnigramTokenizer, WordTokenizer)
from textvae.errors import DataError

__all__ = ["Batch", "Collator", "LengthBucketSampler", "TokenizedDataset", "make_loader", "tokenize_corpus",
           "FORMATS", "SHIPPED_CORPORA", "Corpus", "DataError", "OptionNames", "ShippedCorpus", "corpus_notes",
           "corpus_report", "data_root", "label_names", "load_corpus", "read_text_lines", "SPECIAL_TOKENS",
           "TOKENIZER_KINDS", "BPETokenizer", "PretrainedTokenizer", "TextTokenizer", "UnigramTokenizer",
           "WordTokenizer"]
