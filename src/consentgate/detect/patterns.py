"""The candidate patterns compiled into the multi-pattern scan.

Owns the regular expressions for the pattern entity types (EMAIL_ADDRESS, URL,
PHONE_NUMBER, CREDIT_CARD, IBAN_CODE, US_SSN, IP_ADDRESS, STREET_ADDRESS) and the
PERSON context cues. Every pattern is written once, in the syntax that both
Hyperscan and RE2 accept, as three parts:

    PREFIX (exactly one character)  BODY  SUFFIX (exactly one character)

Neither engine supports look-around, so word boundaries are expressed as one
consumed character on each side. The scan buffer puts a NUL byte before and after
every text, so the prefix and suffix always consume exactly one character and the
body offsets can be recovered (``backend.py``). Patterns are deliberately generous;
validators (``validators.py``) cut the false positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# One character that cannot be part of a word: ASCII non-alphanumerics, Latin-1
# punctuation, general punctuation, CJK punctuation, fullwidth punctuation and emoji.
# (A negated Unicode letter class would be simpler but makes Hyperscan's
# start-of-match databases too large to compile.)
WORD_EDGE: Final = (
    r"[\x{0}-\x{2F}\x{3A}-\x{40}\x{5B}-\x{60}\x{7B}-\x{A9}\x{AB}-\x{B4}\x{B6}-\x{B9}"
    r"\x{BB}-\x{BF}\x{D7}\x{F7}\x{2000}-\x{206F}\x{3000}-\x{303F}\x{FF00}-\x{FF0F}\x{1F300}-\x{1FAFF}]"
)
# One character that cannot continue a number or an identifier.
NUM_EDGE: Final = r"[^0-9A-Za-z_]"
NUM_EDGE_NO_DOT: Final = r"[^0-9A-Za-z_.]"

_UP: Final = r"[A-Z\x{C0}-\x{D6}\x{D8}-\x{DE}]"
_LOW: Final = r"[a-z\x{DF}-\x{F6}\x{F8}-\x{FF}\x{100}-\x{17F}]"
_WORD: Final = _UP + _LOW + r"+"
_LETTER: Final = r"[A-Za-z\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{17F}]"


@dataclass(frozen=True)
class PatternSpec:
    """One candidate pattern: what it finds and how its body is delimited."""

    name: str
    kind: str  # an entity type, or "CUE" for PERSON context cues
    body: str
    prefix: str = WORD_EDGE
    suffix: str = WORD_EDGE
    caseless: bool = False

    def full(self) -> str:
        """The pattern text with its one-character prefix and suffix."""
        return f"(?:{self.prefix})(?:{self.body})(?:{self.suffix})"

    def grouped(self) -> str:
        """The same pattern with the body as group 1 (for the RE2 backend)."""
        flags = "(?i)" if self.caseless else ""
        return f"{flags}(?:{self.prefix})({self.body})(?:{self.suffix})"


_STREET_SUFFIX_EN: Final = (
    r"(?:Street|Avenue|Road|Boulevard|Lane|Drive|Court|Way|Place|"
    r"Terrace|Circle|Parkway|Highway|Square|Trail|Turnpike|Crescent|Close|Row|Walk|"
    r"Gardens|Grove|Hill|Heights|Park|Plaza|Route|Gateway|Loop|Pike|Alley|Point|Ridge|Run|Station|"
    r"(?:St|Ave|Rd|Blvd|Ln|Dr|Ct|Pl|Pkwy|Hwy|Sq)\.?)"
)
_STREET_WORD_EU: Final = (
    r"(?:stra(?:ss|ß)e|str\.|gasse|weg|platz|allee|ring|damm|ufer|markt|straat|laan|plein|gracht|"
    r"kade|vej|gade|gata|gatan|vägen|väg|vegen|veien|vei|katu|tie|utca|tér|út|ulica|iela|gatvė)"
)
_STREET_PREFIX_EU: Final = (
    r"(?:Via|Viale|Piazza|Piazzale|Corso|Largo|Vicolo|Calle|Avenida|Avda\.|Plaza|Paseo|Carrer|"
    r"Rua|Travessa|[Rr]ue|[Aa]venue|[Bb]oulevard|Bd|[Pp]lace|[Cc]hemin|[Aa]llée|[Ii]mpasse|[Qq]uai|[Rr]oute|"
    r"ul\.|al\.|Ulica|Aleja|Strada|Bulevardul|Calea)"
)

PATTERNS: Final[tuple[PatternSpec, ...]] = (
    PatternSpec(
        "email",
        "EMAIL_ADDRESS",
        r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        prefix=r"[^A-Za-z0-9._%+@-]",
        suffix=r"[^A-Za-z0-9@-]",
    ),
    PatternSpec(
        "url_scheme",
        "URL",
        r"(?:[Hh][Tt][Tt][Pp][Ss]?://|[Ww][Ww][Ww]\.)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?"
        r"(?:[/?#][A-Za-z0-9._~:/?#@!$&'()*+,;=%-]*)?",
        prefix=r"[^A-Za-z0-9._%+@/-]",
        suffix=r"[^A-Za-z0-9._~:/?#@!$&'()*+,;=%-]|[.,;:!?)']",
    ),
    PatternSpec(
        "url_bare",
        "URL",
        r"(?:[A-Za-z0-9-]+\.)+(?:com|org|net|edu|gov|io|co|ai|dev|app|info|biz|uk|de|fr|nl|es|it|"
        r"se|no|dk|fi|pl|cz|hu|pt|br|ch|at|be|ie|eu|us|ca|au|in|jp|cn|ru)(?:/[A-Za-z0-9._~/?#=&%+-]*)?",
        prefix=r"[^A-Za-z0-9._%+@/:-]",
        suffix=r"[^A-Za-z0-9._~/?#=&%+@-]|[.,;:!?)]",
    ),
    PatternSpec(
        "phone",
        "PHONE_NUMBER",
        r"(?:\+|\()?\d[0-9 .\-/()]{4,22}\d(?: ?(?:x|ext\.?) ?\d{1,5})?",
        prefix=r"[^0-9A-Za-z_+.\-/]",
        suffix=NUM_EDGE,
    ),
    PatternSpec(
        "card",
        "CREDIT_CARD",
        r"\d(?:[ -]?\d){11,18}",
        prefix=r"[^0-9A-Za-z_.+\-]",
        suffix=NUM_EDGE,
    ),
    PatternSpec(
        "iban",
        "IBAN_CODE",
        r"[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?",
        prefix=r"[^0-9A-Za-z_]",
        suffix=NUM_EDGE,
    ),
    PatternSpec(
        "ssn",
        "US_SSN",
        r"\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{3}\.\d{2}\.\d{4}",
        prefix=r"[^0-9A-Za-z_.\-]",
        suffix=NUM_EDGE,
    ),
    PatternSpec(
        "ipv4",
        "IP_ADDRESS",
        r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)",
        prefix=NUM_EDGE_NO_DOT,
        suffix=r"[^0-9A-Za-z_]",
    ),
    PatternSpec(
        "ipv6",
        "IP_ADDRESS",
        r"[0-9A-Fa-f]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*[0-9A-Fa-f]|::",
        prefix=r"[^0-9A-Za-z_:]",
        suffix=r"[^0-9A-Za-z_:]",
    ),
    PatternSpec(
        "street_us",
        "STREET_ADDRESS",
        r"\d{1,6}(?: " + _WORD + r"){1,4} " + _STREET_SUFFIX_EN + r""
        r"(?:,? (?:Apt\.?|Suite|Unit|#) ?\d+)?",
        prefix=WORD_EDGE,
    ),
    PatternSpec(
        "street_eu_suffix",
        "STREET_ADDRESS",
        r"(?:\d{1,6} )?" + _UP + _LOW + r"*" + _STREET_WORD_EU + r" \d{1,4}[a-z]?",
        prefix=WORD_EDGE,
    ),
    PatternSpec(
        "street_eu_prefix",
        "STREET_ADDRESS",
        r"(?:\d{1,4},? )?" + _STREET_PREFIX_EU + r"(?: (?:de|del|della|dei|degli|delle|di|do|da|dos|das|du|des|de la|d')?)?"
        r"(?: " + _UP + _LOW + r"+){1,3}(?:,? \d{1,4}[a-z]?)?",
        prefix=WORD_EDGE,
    ),
    PatternSpec(
        "street_eu_zip",
        "STREET_ADDRESS",
        r"(?:" + _WORD + r" ){1,3}\d{1,4}[a-z]?, (?:\d{4} [A-Z]{2}|\d{2}-\d{3}|\d{4,5}) " + _WORD,
        prefix=WORD_EDGE,
    ),
    PatternSpec(
        "street_unit",
        "STREET_ADDRESS",
        r"(?:Apt\.|Apartment|Suite|Unit|P\.O\. Box|PO Box|PSC \d{1,5},) ?(?:Box )?\d{1,6}",
        prefix=WORD_EDGE,
    ),
    PatternSpec(
        "street_num_name_num",
        "STREET_ADDRESS",
        r"\d{1,6} " + _WORD + r"(?: " + _WORD + r")? \d{1,4}",
        prefix=WORD_EDGE,
    ),
    # PERSON cues: the name follows (or precedes) the cue; person.py reads it.
    PatternSpec(
        "cue_before",
        "CUE",
        r"(?:Hi|Hello|Hey|Dear|Thanks|Thank you|Thx|Cheers|Regards|Best|Best regards|Kind regards|"
        r"Sincerely|Yours|Love|Congrats|Congratulations|Welcome|Ask|Ping|Cc|CC|From|To|With|"
        r"Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.?|Prof\.?|Sir|Madam)[,!:]?[ \n]+",
        suffix=_UP,
    ),
    PatternSpec(
        "cue_intro",
        "CUE",
        r"(?:[Mm]y name is|[Mm]y name's|[Nn]ame:|I am|I'm|[Tt]his is|[Cc]alled|[Nn]amed|"
        r"[Ss]igned|[Aa]sk for|[Ss]peak to|[Tt]alk to)[ ]+",
        suffix=_LETTER,
    ),
    PatternSpec(
        "cue_after",
        "CUE",
        r" (?:wrote|said|says|writes|replied|asked|mentioned|told|posted|commented):?",
        prefix=_LETTER,
    ),
)

PATTERN_IDS: Final = {spec.name: i for i, spec in enumerate(PATTERNS)}
