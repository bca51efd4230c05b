"""PERSON detection from three signals: member directory, name lexicon, context cues.

Owns turning raw name-token and cue hits (from the multi-pattern scan) into PERSON
spans. The functions take the decoded text of a whole batch (texts separated by NUL
characters, which no rule crosses) and character offsets into it, and look only at
a few dozen characters around the hit, so a hit costs a few microseconds
regardless of the text length.

Rules (see docs/detection.md for the recall they reach):

* a member's full ``display_name`` is a PERSON wherever it appears (any case);
* a run of capitalised words joined by single spaces (optionally with a middle
  initial) that contains a first name from the lexicon or a member's name token is
  a PERSON; a run ending in a known last name is a PERSON when the word before it is
  capitalised and not a common word;
* a lone lexicon first name or member name token is a PERSON unless it is a common
  English word;
* after a cue ("Hi", "Dear", "Thanks,", "Mr.", "my name is", ...) or before
  "wrote:" / "said", the adjacent capitalised words are a PERSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from consentgate.detect.lexicon import NameLexicon

FIRST: Final = 1
LAST: Final = 2
MEMBER: Final = 4
MEMBER_FULL: Final = 8

_CAP: Final = r"[^\W\d_][^\W\d_'’-]*"
_RIGHT: Final = re.compile(r"(?:[ \t]+(?:[^\W\d_]\.?[ \t]+)?(" + _CAP + r"))")
_LEFT: Final = re.compile(r"(" + _CAP + r")[ \t]+(?:[^\W\d_]\.?[ \t]+)?$")
_WORD_AT: Final = re.compile(_CAP)
# Cues after which a lower-case known name still counts ("my name is vitoria").
_NAME_INTRO: Final = re.compile(r"(?i)(?:name is|name's|name:)")
WINDOW: Final = 96
# A lone lexicon first name counts as a PERSON unless it is a common word, a place
# or a language (lexicon.common). Turning this off halves recall on the
# presidio-research set (many texts name people by first name only).
LONE_FIRST_NAMES: Final = True
LONE_LAST_NAMES: Final = True


@dataclass
class PersonContext:
    """What the rules consult: the lexicon and the member name tokens."""

    lexicon: NameLexicon
    member_tokens: frozenset[str]

    def flags_of(self, token: str) -> int:
        f = 0
        if token in self.lexicon.first:
            f |= FIRST
        if token in self.lexicon.last:
            f |= LAST
        if token in self.member_tokens:
            f |= MEMBER
        return f

    def is_common(self, token: str) -> bool:
        return token.lower() in self.lexicon.common


def _is_cap(token: str) -> bool:
    """Capitalised like a name: upper-case first letter, not all capitals."""
    return token[:1].isupper() and not (len(token) > 1 and token.isupper())


def _sentence_start(text: str, i: int) -> bool:
    """True when position ``i`` starts the text, a line or a sentence."""
    j = i
    while j > 0 and text[j - 1] in " \t":
        j -= 1
    return j == 0 or text[j - 1] in ".!?\n:\"'(>-\x00"


def _letter(c: str) -> bool:
    """``[^\\W\\d_]`` of Python's ``re``: alphanumeric but not a decimal digit."""
    return c.isalnum() and not c.isdecimal()


def left_word(text: str, s: int, lo: int) -> tuple[int, int] | None:
    """Group 1 of ``_LEFT.search(text, lo, s)`` as (start, end), or None, where
    ``text[s - 1]`` is a space or tab.

    The same result as the regex (property-tested), without trying every start
    position of the window: the match is "word, spaces, optional initial, spaces"
    ending at ``s``, so it is read backwards from ``s``.
    """
    j = s
    while j > lo and text[j - 1] in " \t":
        j -= 1
    if j == s or j == lo:
        return None
    # "Word X. " / "Word X ": the word before an initial is the leftmost match.
    k = j - 1 if text[j - 1] == "." else j
    if k - 1 > lo and _letter(text[k - 1]) and text[k - 2] in " \t":
        m = k - 1
        while m > lo and text[m - 1] in " \t":
            m -= 1
        w = m
        while w > lo and _letter(text[w - 1]):
            w -= 1
        if w < m:
            return w, m
    w = j
    while w > lo and _letter(text[w - 1]):
        w -= 1
    return (w, j) if w < j else None


def extend_name(ctx: PersonContext, text: str, start: int, end: int, flags: int) -> tuple[int, int] | None:
    """The PERSON span (character offsets in ``text``) around a name-token hit, or None."""
    if flags & MEMBER_FULL:
        return start, end
    s, e = start, end
    tokens = [text[start:end]]
    # A capitalised non-name word next to the hit makes it part of a longer proper
    # noun ("Trey Research", "San Francisco"), which a lone name must not be.
    in_proper_noun = False
    # Extend right over up to two capitalised words (with an optional middle initial).
    for _ in range(2):
        m = _RIGHT.match(text, e)
        if not m or not _is_cap(m.group(1)):
            break
        if ctx.is_common(m.group(1)) and not ctx.flags_of(m.group(1)) & LAST:
            in_proper_noun = True
            break
        tokens.append(m.group(1))
        e = m.end(1)
    # Extend left over one capitalised word when it is a name or the hit is a last name.
    lw = left_word(text, s, max(0, s - 48)) if s >= 2 and text[s - 1] in " \t" else None
    if lw is not None and _is_cap(text[lw[0] : lw[1]]):
        left = text[lw[0] : lw[1]]
        left_flags = ctx.flags_of(left)
        usable = not ctx.is_common(left) or (left_flags & FIRST and not _sentence_start(text, lw[0]))
        if usable and (left_flags or (flags & LAST)):
            tokens.insert(0, left)
            s = lw[0]
        elif not _sentence_start(text, lw[0]):
            in_proper_noun = True
    if len(tokens) >= 2:
        any_first = any(ctx.flags_of(t) & (FIRST | MEMBER) for t in tokens)
        ends_last = bool(ctx.flags_of(tokens[-1]) & LAST)
        if any_first or ends_last:
            return s, e
        return None
    token = tokens[0]
    if ctx.is_common(token) or not _is_cap(token) or in_proper_noun:
        return None
    before, after = text[s - 1 : s], text[e : e + 2]
    if before == "-" or after[:1] == "-" or after in ("'t", "’t"):
        return None  # "Mayo-Walters" (a company), "Don't"
    if flags & MEMBER or (flags & FIRST and LONE_FIRST_NAMES) or (flags & LAST and LONE_LAST_NAMES):
        return s, e
    return None


def cue_name(ctx: PersonContext, text: str, cue_start: int, cue_end: int, after: bool) -> tuple[int, int] | None:
    """The name next to a cue: following it, or (``after``) preceding "wrote:" and the like."""
    if after:
        # Walk back over up to three capitalised words ending right before the cue.
        e = cue_start
        s = e
        count = 0
        while count < 3:
            j = s
            while j > 0 and (text[j - 1].isalpha() or text[j - 1] in "'’-"):
                j -= 1
            word = text[j:s]
            if not word or not _is_cap(word) or ctx.is_common(word):
                break
            s = j
            count += 1
            if s > 0 and text[s - 1] == " ":
                s -= 1
            else:
                break
        while s < e and text[s] == " ":
            s += 1
        return (s, e) if count else None
    m = _WORD_AT.match(text, cue_end)
    if not m:
        return None
    word = m.group(0)
    if ctx.is_common(word):
        return None
    known = bool(ctx.flags_of(word.capitalize()))
    if word.endswith("ing") and not known:
        return None  # "Hi, Running late": a verb, not a name
    if not _is_cap(word) and not (known and _NAME_INTRO.search(text, max(0, cue_start - 1), cue_end)):
        return None
    e = m.end()
    lower_ok = not _is_cap(word)
    for _ in range(2):
        r = _RIGHT.match(text, e)
        if not r or ctx.is_common(r.group(1)):
            break
        if not _is_cap(r.group(1)) and not (lower_ok and r.group(1).capitalize() in ctx.lexicon.last):
            break
        e = r.end(1)
    return m.start(), e
