"""Units worth a look: every unit correlated with simple features of the text it read.

text_features computes the features (position in the line, inside quotes or brackets, start of a
word, vowel) for the whole text at once; find_units ranks the units whose activations follow one
of them most closely (Pearson r), at most a few per feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FINDINGS = 12  # units listed as worth a look
PER_FEATURE = 3  # at most this many of them for one feature
MIN_ABS_R = 0.2  # weaker correlations are not worth a look

QUOTES = '"'
OPEN_QUOTES, CLOSE_QUOTES = "\u201c\u00ab", "\u201d\u00bb"  # curly and guillemets
OPEN_BRACKETS, CLOSE_BRACKETS = "([{", ")]}"
VOWELS = "aeiouAEIOU"


@dataclass(frozen=True)
class Finding:
    """One unit that follows one feature of the text: Pearson r over the characters read."""

    series: str
    unit: int
    feature: str
    r: float


def text_features(text: str, mode: str = "stream") -> dict[str, np.ndarray]:
    """Simple features of the text at each character, as known after reading it (float arrays).

    position in the line (names: in the name), inside quotes, inside brackets, start of a word
    (not for names: a name is one word), vowel. Each is computed for the whole text at once.
    """
    n = len(text)
    chars = np.array(list(text), dtype="<U1") if n else np.zeros(0, dtype="<U1")
    index = np.arange(n)
    newline = chars == "\n"
    # characters since the last newline: a newline itself is 0, the next character 1
    last_newline = np.maximum.accumulate(np.where(newline, index, -1)) if n else index
    position = (index - last_newline).astype(np.float64)
    # inside quotes: an odd number of straight quotes read so far, or an open curly quote
    straight = np.cumsum(np.isin(chars, list(QUOTES))) % 2 == 1
    curly = _clipped_depth(np.isin(chars, list(OPEN_QUOTES)), np.isin(chars, list(CLOSE_QUOTES)))
    inside_quotes = straight | (curly > 0)
    brackets = _clipped_depth(np.isin(chars, list(OPEN_BRACKETS)),
                              np.isin(chars, list(CLOSE_BRACKETS)))
    letter = np.char.isalpha(chars)
    after_letter = np.concatenate([[False], letter[:-1]]) if n else letter
    features = {
        "position in the name" if mode == "lines" else "position in the line": position,
        "inside quotes": inside_quotes,
        "inside brackets": brackets > 0,
        "start of a word": letter & ~after_letter,
        "vowel": np.isin(chars, list(VOWELS)),
    }
    if mode == "lines":  # a name is one word: its start is position 1, already covered
        del features["start of a word"]
    return {name: values.astype(np.float64) for name, values in features.items()}


def _clipped_depth(opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """Nesting depth after each character, never below 0 (a stray closer is ignored):
    the running sum minus its lowest point so far, the reflected walk, without a loop."""
    walk = np.cumsum(opens.astype(np.int64) - closes.astype(np.int64))
    return walk - np.minimum(np.minimum.accumulate(walk), 0) if walk.size else walk


def correlations(values: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Pearson r of every feature (N, F) with every unit (N, H): (F, H), 0 where one is constant."""
    values = values - values.mean(axis=0)
    features = features - features.mean(axis=0)
    value_norm = np.sqrt(np.einsum("nh,nh->h", values, values))
    feature_norm = np.sqrt(np.einsum("nf,nf->f", features, features))
    scale = np.outer(feature_norm, value_norm)
    product = features.T @ values
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(scale > 1e-12 * max(float(scale.max(initial=0.0)), 1.0), product / scale, 0.0)
    return np.clip(r, -1.0, 1.0)


def find_units(text: str, series: dict[str, np.ndarray], mode: str = "stream",
               known: np.ndarray | None = None, limit: int = FINDINGS,
               per_feature: int = PER_FEATURE, min_abs_r: float = MIN_ABS_R) -> list[Finding]:
    """The units that follow a feature of the text most closely, strongest |r| first.

    Every unit of every series is correlated with every feature of text_features over the
    characters the model read (known ones with finite values). At most per_feature units are
    kept for one feature, so one easy feature cannot fill the whole list.
    """
    features = text_features(text, mode)
    names = list(features)
    matrix = np.stack([features[name] for name in names], axis=1)  # (N, F)
    readable = np.ones(len(text), dtype=bool) if known is None else np.asarray(known, bool)
    candidates: list[Finding] = []
    for series_name, values in series.items():
        values = np.asarray(values, dtype=np.float64)
        rows = readable & np.isfinite(values).all(axis=1)
        if rows.sum() < 3:
            continue
        r = correlations(values[rows], matrix[rows])  # (F, H)
        for f, feature in enumerate(names):
            best = np.argsort(-np.abs(r[f]), kind="stable")[:per_feature]
            candidates += [Finding(series_name, int(u), feature, float(r[f, u])) for u in best]
    strongest: dict[str, list[Finding]] = {}
    for finding in sorted(candidates, key=lambda item: -abs(item.r)):
        kept = strongest.setdefault(finding.feature, [])
        if abs(finding.r) >= min_abs_r and len(kept) < per_feature:
            kept.append(finding)
    ranked = sorted((item for kept in strongest.values() for item in kept),
                    key=lambda item: -abs(item.r))
    return ranked[:limit]
