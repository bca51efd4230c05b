"""Sensitive-topic cue phrases planted by the synthetic network generator.

Owns the ground truth of *which words make a record sensitive*. Each topic has
a tuple of ``Cue(clause, phrase)``: ``clause`` is the first-person clause put
into a record (it may hold ``{SLOT}`` placeholders filled by the generator) and
``phrase`` is the distinctive substring that marks the topic (always a literal
part of ``clause``). A record is labelled with a topic exactly when one of that
topic's clauses was planted into it, and no cue phrase ever appears in any other
template (tests/demo check both).

Every ``job.application`` record opens with one of ``JOB_APPLICATION_CUES`` and
is therefore always labelled ``job_search``.

These lists are documented in docs/data-model.md. Detection code must not import
this module: a detector that reads the generator's answers measures nothing.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Cue(NamedTuple):
    clause: str
    phrase: str


TOPIC_CUES: Final[dict[str, tuple[Cue, ...]]] = {
    "health": (
        Cue("I was diagnosed with diabetes in the spring", "diagnosed with diabetes"),
        Cue("I have my chemotherapy sessions on {DAY}s", "my chemotherapy"),
        Cue("I'm on medical leave after my surgery", "medical leave"),
        Cue("I've been seeing a therapist for my anxiety", "therapist for my anxiety"),
        Cue("I'm still recovering from a heart attack", "heart attack"),
        Cue("I was diagnosed with cancer last year", "diagnosed with cancer"),
        Cue("I'm struggling with depression again", "struggling with depression"),
        Cue("I'm pregnant and due in {MONTH}", "I'm pregnant"),
        Cue("I live with a chronic illness that flares up", "chronic illness"),
        Cue("I started taking antidepressants", "antidepressants"),
        Cue("I have an MRI scheduled for my back injury", "MRI scheduled"),
    ),
    "compensation": (
        Cue("I can share that my salary is ${AMOUNT}", "my salary is"),
        Cue("I just got a raise to ${AMOUNT}", "got a raise"),
        Cue("I was offered ${AMOUNT} base plus equity", "base plus equity"),
        Cue("I negotiated my salary up to ${AMOUNT}", "negotiated my salary"),
        Cue("I got a {PCT}% bonus this year", "bonus this year"),
        Cue("I'm earning ${AMOUNT} in total compensation", "total compensation"),
        Cue("I asked my manager for a pay rise", "pay rise"),
        Cue("I found out I'm paid less than my peers", "paid less than"),
        Cue("I turned down a counteroffer of ${AMOUNT}", "counteroffer"),
    ),
    "job_search": (
        Cue("I'm interviewing at {COMPANY} next week", "I'm interviewing at"),
        Cue("I'm looking for a new job", "looking for a new job"),
        Cue("I've been applying to other companies", "applying to other companies"),
        Cue("I have a final-round interview with {COMPANY}", "final-round interview"),
        Cue("I'm thinking of quitting my job", "quitting my job"),
        Cue("I accepted an offer from {COMPANY}", "accepted an offer"),
        Cue("I'm quietly job hunting", "job hunting"),
        Cue("I updated my resume for a few openings", "updated my resume"),
        Cue("I was laid off and I'm searching for my next role", "laid off"),
    ),
    "legal": (
        Cue("I'm in the middle of a lawsuit with my landlord", "lawsuit"),
        Cue("I talked to my lawyer about the contract dispute", "my lawyer"),
        Cue("I have a court date on {DAY}", "court date"),
        Cue("I'm going through a divorce", "going through a divorce"),
        Cue("I filed a discrimination complaint with HR", "discrimination complaint"),
        Cue("I'm being sued by a former client", "being sued"),
        Cue("I signed a settlement agreement", "settlement agreement"),
        Cue("I was arrested years ago and it still follows me", "I was arrested"),
    ),
    "immigration": (
        Cue("I'm on an H-1B visa", "H-1B visa"),
        Cue("I have my green card interview in {MONTH}", "green card"),
        Cue("I'm still waiting on my work permit", "work permit"),
        Cue("I need visa sponsorship to stay in the country", "visa sponsorship"),
        Cue("I applied for asylum", "applied for asylum"),
        Cue("I need to renew my residence permit by {MONTH}", "residence permit"),
        Cue("I'm becoming a naturalized citizen in {MONTH}", "naturalized citizen"),
        Cue("I'm undocumented and worried about my status", "undocumented"),
    ),
    "union": (
        Cue("I joined the union last month", "joined the union"),
        Cue("I'm helping organize a union at work", "organize a union"),
        Cue("I'm a shop steward now", "shop steward"),
        Cue("I'll be on the picket line on {DAY}", "picket line"),
        Cue("I'm on the bargaining committee", "bargaining committee"),
        Cue("I've been talking to colleagues about unionizing", "unionizing"),
        Cue("I'm a member of the workers' union", "workers' union"),
    ),
    "religion": (
        Cue("I'm fasting for Ramadan", "Ramadan"),
        Cue("I go to church every Sunday", "go to church"),
        Cue("I'll be at the mosque for Friday prayers", "Friday prayers"),
        Cue("I observe Shabbat", "observe Shabbat"),
        Cue("I'm a practising Catholic", "practising Catholic"),
        Cue("I'm taking leave for Diwali", "Diwali"),
        Cue("I rely a lot on my faith", "my faith"),
        Cue("I'm converting to Buddhism", "Buddhism"),
    ),
    "sexual_orientation": (
        Cue("I'm gay and only recently told my team", "I'm gay"),
        Cue("I came out as bisexual last year", "came out as bisexual"),
        Cue("I'm a lesbian", "lesbian"),
        Cue("I'm bringing my same-sex partner to the party", "same-sex partner"),
        Cue("I'm co-chair of the LGBTQ+ employee group", "LGBTQ+"),
        Cue("I'm queer and out at work", "I'm queer"),
        Cue("I'm marching with the Pride contingent", "Pride contingent"),
    ),
    "political": (
        Cue("I'm volunteering for the Democratic campaign", "Democratic campaign"),
        Cue("I canvassed for the Republicans last weekend", "canvassed for the Republicans"),
        Cue("I'm a registered Democrat", "registered Democrat"),
        Cue("I'm a registered Republican", "registered Republican"),
        Cue("I'm running for city council", "running for city council"),
        Cue("I donate every month to a political party", "political party"),
        Cue("I went to the protest against the government", "protest against the government"),
        Cue("I'm a member of the Green Party", "Green Party"),
    ),
}

# Cover-letter openings; every job.application record starts with one, so every
# job.application record is labelled job_search.
JOB_APPLICATION_CUES: Final[tuple[Cue, ...]] = (
    Cue("I am applying for the {ROLE} position at {COMPANY}.", "applying for the"),
    Cue("Dear recruiting team, I would like to apply for the {ROLE} opening.", "apply for the"),
    Cue("Please accept my application for the {ROLE} role on your {TEAM} team.", "my application for"),
    Cue("I'm excited to submit my application for the {ROLE} job at {COMPANY}.", "my application for"),
    Cue("Hello, I am applying for the {ROLE} vacancy in {CITY}.", "applying for the"),
)

# How a cue clause is framed into a sentence, by kind of record. "{CUE}" is the clause.
TOPIC_FRAMES: Final[dict[str, tuple[str, ...]]] = {
    "message": (
        "Quick personal note: {CUE}.",
        "Between us, {CUE}.",
        "Not sure if I mentioned it, but {CUE}.",
        "{CUE}, so my availability may change.",
        "Full transparency: {CUE}.",
        "Please keep this to yourself: {CUE}.",
        "{CUE} and wanted you to hear it from me.",
        "FYI {CUE}.",
    ),
    "public": (
        "Sharing something personal: {CUE}.",
        "{CUE}, and I'm grateful for everyone who reached out.",
        "It took me a while to say this publicly, but {CUE}.",
        "Some news: {CUE}.",
    ),
    "prompt": (
        "Help me write a short note to my manager explaining that {CUE}.",
        "Rewrite this more professionally: {CUE}.",
        "Draft a message to my team saying {CUE}.",
    ),
    "output": (
        "Here is a draft: \"Hi, I wanted to let you know that {CUE}.\"",
        "Suggested wording: \"{CUE}, and I appreciate your understanding.\"",
    ),
}

# Topic mix (relative weights) of records that carry a topic clause.
TOPIC_WEIGHTS: Final[dict[str, float]] = {
    "health": 0.20,
    "compensation": 0.20,
    "job_search": 0.18,
    "legal": 0.08,
    "immigration": 0.08,
    "union": 0.07,
    "religion": 0.07,
    "sexual_orientation": 0.05,
    "political": 0.07,
}


def cue_phrases(topic: str) -> tuple[str, ...]:
    """Distinct cue phrases of ``topic`` (job-application openings included for job_search)."""
    cues = TOPIC_CUES[topic] + (JOB_APPLICATION_CUES if topic == "job_search" else ())
    return tuple(dict.fromkeys(c.phrase for c in cues))
