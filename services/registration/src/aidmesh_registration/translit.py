"""Ukrainian names in Latin letters: the official form, and a key for matching.

`to_latin` is the national transliteration of the Cabinet of Ministers of Ukraine,
resolution No 55 of 27 January 2010 (the spelling in passports and on road signs). Five
letters are written differently at the start of a word (Є Ї Й Ю Я), "зг" becomes "zgh" so
that it is not read as "ж", and the soft sign and the apostrophe are not written.

`name_key` is for matching, not for display: the same person's name typed by a partner in
Cyrillic, in the official Latin form, in an older passport spelling or in a Russian-style
spelling should give the same key, so that blocking and fuzzy comparison see one name.
Pure and cached: the same names come back millions of times in a bulk import.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# The table of the 2010 resolution. Each letter maps to (at the start of a word, elsewhere).
_TABLE: dict[str, tuple[str, str]] = {
    "а": ("a", "a"),
    "б": ("b", "b"),
    "в": ("v", "v"),
    "г": ("h", "h"),
    "ґ": ("g", "g"),
    "д": ("d", "d"),
    "е": ("e", "e"),
    "є": ("ye", "ie"),
    "ж": ("zh", "zh"),
    "з": ("z", "z"),
    "и": ("y", "y"),
    "і": ("i", "i"),
    "ї": ("yi", "i"),
    "й": ("y", "i"),
    "к": ("k", "k"),
    "л": ("l", "l"),
    "м": ("m", "m"),
    "н": ("n", "n"),
    "о": ("o", "o"),
    "п": ("p", "p"),
    "р": ("r", "r"),
    "с": ("s", "s"),
    "т": ("t", "t"),
    "у": ("u", "u"),
    "ф": ("f", "f"),
    "х": ("kh", "kh"),
    "ц": ("ts", "ts"),
    "ч": ("ch", "ch"),
    "ш": ("sh", "sh"),
    "щ": ("shch", "shch"),
    "ь": ("", ""),
    "ю": ("yu", "iu"),
    "я": ("ya", "ia"),
}
# Apostrophes of every kind people type (', ’, ʼ, `): not written, and not a word boundary
# (Знам'янка → Znamianka: the я after it is not at the start of a word).
_APOSTROPHES = frozenset("'’ʼ`‘´")


def to_latin(text: str) -> str:
    """The official Latin form of Ukrainian text; characters outside the table are kept."""
    return _to_latin(text)


@functools.lru_cache(maxsize=1 << 16)
def _to_latin(text: str) -> str:
    out: list[str] = []
    at_word_start = True
    previous = ""
    for index, char in enumerate(text):
        lower = char.lower()
        if lower in _APOSTROPHES:
            continue  # inside a word: the next letter is not word-initial
        forms = _TABLE.get(lower)
        if forms is None:
            out.append(char)
            at_word_start = not char.isalpha()
            previous = ""
            continue
        latin = forms[0] if at_word_start else forms[1]
        if lower == "г" and previous == "з":
            latin = "gh"  # зг → zgh (Згорани → Zghorany), not "zh" which would read as ж
        if char != lower and latin:
            latin = latin.upper() if _shouting(text, index) else latin.capitalize()
        out.append(latin)
        at_word_start = False
        previous = lower
    return "".join(out)


def _shouting(text: str, index: int) -> bool:
    """Whether a capital letter is part of an all-capitals word (ЮРІЙ → YURII, not YuRII)."""
    neighbours = [c for c in text[max(0, index - 1) : index + 2] if c.isalpha()]
    return len(neighbours) > 1 and all(c.isupper() for c in neighbours)


# Letters of Russian spellings that Ukrainian lacks, as registrars in the region write them.
_RUSSIAN = str.maketrans({"ы": "y", "э": "e", "ё": "io", "ъ": ""})
# Latin letters with diacritics from Polish, Czech or scholarly spellings of the same names
# (Ševčenko, Kowalczuk, Łysenko): spelt out before accents are dropped.
_DIACRITICS = str.maketrans({"š": "sh", "č": "ch", "ž": "zh", "ł": "l", "ć": "ch", "ś": "s"})

# Rewrites applied in order to the lower-case Latin letters. Each folds spellings that
# registrars and older documents use for one Ukrainian sound into one form; the key is
# compared, never shown, so folding a little too much only costs a comparison.
_FOLDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # Other alphabets' letters for the same sounds (Kowalczuk, Alexander, Schewtschenko).
        (r"x", "ks"),
        (r"w", "v"),
        (r"q", "k"),
        (r"ph", "f"),
        (r"ck", "k"),
        (r"szcz|shtsh|shch|sch", "sh"),  # щ: Shcherbak / Scherbak / Szczerbak
        (r"tsch|tch|cz", "ch"),  # ч
        (r"tz|ts|c(?!h)", "c"),  # ц: Kravets / Kravetz / Kravec
        (r"kh|gh|g", "h"),  # г ґ х: Serhii / Sergii / Sergey, Khomenko / Homenko
        (r"zh", "z"),  # ж: Zhuk / Žuk / Zuk
        # Vowels: the y/i/j of every transliteration (Yurii / Yuriy / Iurii / Jurij / Yury)
        # become i; Russian "-ey" endings are the Ukrainian "-ii" (Andrey / Andrii).
        (r"[yj]", "i"),
        (r"ei$", "i"),
        (r"^ie", "e"),  # Ievgen / Yevhen / Evgen
        (r"ou", "u"),  # French spellings (Iouri)
        # Russian forms of Ukrainian given names: Aleksandr → Oleksandr, Aleksei → Oleksii;
        # "-ander" is the English form of "-andr".
        (r"^ale", "ole"),
        (r"ander$", "andr"),
    )
)
_REPEATS = re.compile(r"(.)\1+")
_NOT_LETTER = re.compile(r"[^a-z]")


def name_key(text: str) -> str:
    """The matching key of a name in either script: lower-case Latin letters, variants folded.

    >>> name_key("Юрій") == name_key("Yuriy") == name_key("IURII")
    True
    """
    return _name_key(text)


@functools.lru_cache(maxsize=1 << 18)
def _name_key(text: str) -> str:
    latin = to_latin(text.lower().translate(_RUSSIAN)).lower().translate(_DIACRITICS)
    # Remaining accents (é, ü, ï) are dropped; then anything not a letter (spaces, hyphens).
    latin = unicodedata.normalize("NFKD", latin).encode("ascii", "ignore").decode("ascii")
    words = [_fold(word) for word in _NOT_LETTER.sub(" ", latin).split()]
    return "".join(words)


def _fold(word: str) -> str:
    for pattern, replacement in _FOLDS:
        word = pattern.sub(replacement, word)
    return _REPEATS.sub(r"\1", word)


__all__ = ["name_key", "to_latin"]
