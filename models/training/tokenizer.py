"""Word-level tokenizer over the world grammar's vocabulary, saved in the Hugging Face format
(tokenizer.json with a WordLevel model, Whitespace pre-tokenizer, [BOS] $A [EOS] template, fixed
padding), plus special_tokens_map.json, tokenizer_config.json and vocab.json.

Ids: [PAD]=0, [UNK]=1, [BOS]=2, [EOS]=3, then the grammar words in a fixed order. The empty prompt
"" encodes as [BOS] [EOS] [PAD]...: that is the unconditional input used for classifier-free guidance."""
import json
import os

import numpy as np

from . import grammar

MAX_LEN = 16
SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
PAD, UNK, BOS, EOS = 0, 1, 2, 3


class WordTokenizer:
    def __init__(self, words=None, max_len=MAX_LEN):
        words = list(words or grammar.WORDS)
        self.vocab = {t: i for i, t in enumerate(SPECIALS)}
        for w in words:
            if w not in self.vocab:
                self.vocab[w] = len(self.vocab)
        self.max_len = max_len

    def __len__(self):
        return len(self.vocab)

    def encode(self, text):
        ids = [BOS] + [self.vocab.get(w, UNK) for w in text.lower().split()] + [EOS]
        ids = ids[: self.max_len]
        if ids[-1] != EOS:  # truncated: keep the end token, as the post-processor does
            ids[-1] = EOS
        return ids + [PAD] * (self.max_len - len(ids))

    def __call__(self, texts):
        return np.array([self.encode(t) for t in texts], np.int64)

    def save(self, folder):
        os.makedirs(folder, exist_ok=True)
        added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for i, t in enumerate(SPECIALS)]
        tok = {
            "version": "1.0",
            "truncation": {"direction": "Right", "max_length": self.max_len, "strategy": "LongestFirst",
                           "stride": 0},
            "padding": {"strategy": {"Fixed": self.max_len}, "direction": "Right",
                        "pad_to_multiple_of": None, "pad_id": PAD, "pad_type_id": 0, "pad_token": "[PAD]"},
            "added_tokens": added,
            "normalizer": {"type": "Lowercase"},
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "[BOS]", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "[EOS]", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "[BOS]", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "[EOS]", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}},
                         {"SpecialToken": {"id": "[EOS]", "type_id": 1}}],
                "special_tokens": {
                    "[BOS]": {"id": "[BOS]", "ids": [BOS], "tokens": ["[BOS]"]},
                    "[EOS]": {"id": "[EOS]", "ids": [EOS], "tokens": ["[EOS]"]},
                },
            },
            "decoder": None,
            "model": {"type": "WordLevel", "vocab": self.vocab, "unk_token": "[UNK]"},
        }
        with open(os.path.join(folder, "tokenizer.json"), "w") as f:
            json.dump(tok, f, indent=1)
        with open(os.path.join(folder, "vocab.json"), "w") as f:
            json.dump(self.vocab, f, indent=1)
        with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
            json.dump({"bos_token": "[BOS]", "eos_token": "[EOS]", "unk_token": "[UNK]",
                       "pad_token": "[PAD]"}, f, indent=1)
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": self.max_len,
                       "padding_side": "right", "truncation_side": "right",
                       "bos_token": "[BOS]", "eos_token": "[EOS]", "unk_token": "[UNK]",
                       "pad_token": "[PAD]", "do_lower_case": True,
                       "model_input_names": ["input_ids", "attention_mask"],
                       "clean_up_tokenization_spaces": False}, f, indent=1)


def verify_with_hf(folder, texts, tok):
    """Round-trip check with the `tokenizers` library when it is installed (it is not on the Debian
    CPU machine; it is on the GPU image). Returns a note."""
    try:
        from tokenizers import Tokenizer  # type: ignore
    except Exception:
        return "skipped (tokenizers not importable)"
    t = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    for s in texts:
        got = t.encode(s).ids
        if got != tok.encode(s):
            raise RuntimeError(f"tokenizers disagrees on {s!r}: {got} vs {tok.encode(s)}")
    return f"ok ({len(texts)} prompts match the tokenizers library)"


if __name__ == "__main__":
    import sys
    t = WordTokenizer()
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/tokenizer"
    t.save(out)
    print(len(t), t.encode("two large blue squares left of a red circle"), verify_with_hf(out, ["a red circle"], t))
