"""Text templates of the synthetic network: what members write, by category.

Owns the sentence pools that record texts are assembled from. A record's text
is a sequence of *segments* (see ``render.py``): an opener, a body sentence, an
optional sensitive-topic sentence (``cues.py``), up to two PII sentences and an
optional closer. Each pool below is a tuple of templates whose ``{SLOT}``
placeholders are filled per record:

* PII slots (planted and labelled): ``PERSON``, ``RECIPIENT`` (the other
  participant's display name, labelled ``PERSON``), ``EMAIL_ADDRESS``,
  ``PHONE_NUMBER``, ``CREDIT_CARD``, ``IBAN_CODE``, ``US_SSN``, ``IP_ADDRESS``,
  ``URL``, ``STREET_ADDRESS``.
* Filler slots (not PII): see ``FILLERS``; a trailing digit (``SKILL2``) draws
  a second value of the same kind.

No template here may contain a topic cue phrase or a person's name; the tests
check the first, and the second holds because names only enter through slots.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

PII_SLOTS: Final = (
    "PERSON", "RECIPIENT", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE",
    "US_SSN", "IP_ADDRESS", "URL", "STREET_ADDRESS",
)

FILLERS: Final[dict[str, tuple[str, ...]]] = {
    "COMPANY": (
        "Northwind Traders", "Contoso", "Fabrikam", "Tailspin Toys", "Adventure Works", "Wide World Importers",
        "Litware", "Proseware", "Woodgrove Bank", "Alpine Ski House", "Coho Winery", "Blue Yonder Airlines",
        "Lucerne Publishing", "Trey Research", "Humongous Insurance", "Fourth Coffee", "Wingtip Toys", "VanArsdel",
    ),
    "ROLE": (
        "data engineer", "product manager", "staff software engineer", "UX researcher", "sales director",
        "account executive", "ML engineer", "financial analyst", "HR business partner", "solutions architect",
        "marketing lead", "site reliability engineer", "operations manager", "content strategist", "QA engineer",
    ),
    "SKILL": (
        "Python", "SQL", "Kubernetes", "negotiation", "public speaking", "Figma", "financial modelling", "Rust",
        "supply chain planning", "TypeScript", "stakeholder management", "data visualisation", "Spark", "copywriting",
    ),
    "PROJECT": (
        "Atlas", "Phoenix", "Q3 roadmap", "pricing revamp", "data platform migration", "onboarding redesign",
        "customer portal", "Horizon", "mobile checkout", "search relevance", "partner API", "billing cleanup",
    ),
    "TEAM": ("platform", "growth", "design", "finance", "partnerships", "security", "data science", "customer success", "infra", "brand"),
    "DAY": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    "MONTH": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"),
    "CITY": (
        "Berlin", "Austin", "São Paulo", "Bengaluru", "Zürich", "Montréal", "Kraków", "Malmö", "Dublin", "Toronto",
        "Singapore", "Lisbon", "Reykjavík", "München", "Chicago", "東京", "香港",
    ),
    "HASHTAG": (
        "#leadership", "#datascience", "#productmanagement", "#python", "#ux", "#sales", "#cloud", "#mentoring",
        "#engineering", "#startups", "#remotework", "#opensource",
    ),
    "EMOJI": ("🚀", "🎉", "🙌", "👏", "💡", "☕", "✅", "🔥", "📈", "🙏"),
    "NUM": ("2", "3", "4", "5", "6", "7", "8", "10", "12", "15"),
    "PCT": ("5", "8", "10", "12", "15", "20", "25", "30", "40"),
    "AMOUNT": tuple(f"{k:,}" for k in range(60_000, 400_001, 5_000)),
}

_SLOT_RE: Final = re.compile(r"\{([A-Z_]+?)(\d?)\}")


class Part(NamedTuple):
    literal: str  # text before the slot (or the whole tail when slot is None)
    slot: str | None


def parse(template: str) -> tuple[Part, ...]:
    """Split a template into (literal, slot) parts; the last part has slot None."""
    parts: list[Part] = []
    pos = 0
    for match in _SLOT_RE.finditer(template):
        slot = match.group(1) + match.group(2)
        kind = match.group(1)
        if kind not in FILLERS and kind not in PII_SLOTS:
            raise ValueError(f"unknown slot {{{slot}}} in template {template!r}")
        parts.append(Part(template[pos : match.start()], slot))
        pos = match.end()
    parts.append(Part(template[pos:], None))
    return tuple(parts)


def slot_kind(slot: str) -> str:
    """``SKILL2`` -> ``SKILL``."""
    return slot.rstrip("0123456789")


# ------------------------------------------------------------------ openers

_DM_OPENERS: Final = (
    "Hi {RECIPIENT},", "Hey {RECIPIENT}!", "Hello {RECIPIENT},", "Good morning {RECIPIENT},",
    "{RECIPIENT}, quick question.", "Hi {RECIPIENT}, hope your week is going well.", "Hi,", "Hey there,", "Morning!",
    "Thanks for connecting, {RECIPIENT}.",
)
_INMAIL_OPENERS: Final = (
    "Hi {RECIPIENT}, I came across your profile and was impressed by your work in {SKILL}.",
    "Dear {RECIPIENT},", "Hello {RECIPIENT}, I lead the {TEAM} team at {COMPANY}.",
    "Hi {RECIPIENT}, hope you don't mind the cold message.", "Hello, I found your profile through the {CITY} {SKILL} meetup.",
)
_GROUP_OPENERS: Final = (
    "Hi all,", "Team,", "Hi {RECIPIENT} and everyone,", "Morning folks!", "Hey team {EMOJI}", "Quick update for the group:",
    "Hello everyone,", "Hi {RECIPIENT}, hi all,",
)
_PUBLIC_OPENERS: Final = ("", "", "Big week!", "{EMOJI}", "A quick reflection.", "Some news from the {TEAM} team.")
_NONE: Final = ("",)

# ------------------------------------------------------------------ bodies

_MESSAGE_BODIES: Final = (
    "Are you free on {DAY} to go over the {PROJECT} plan?",
    "I pushed the latest numbers to the shared folder; let me know if anything looks off.",
    "Thanks for covering the {TEAM} sync while I was out.",
    "Could you take a look at the {PROJECT} draft before {DAY}?",
    "The {SKILL} workshop got moved to {DAY}.",
    "We're on track for the {PROJECT} launch, just waiting on final sign-off.",
    "I'll be in {CITY} for a conference next week if you want to grab coffee {EMOJI}",
    "Can we move our 1:1 to {DAY}?",
    "Great meeting you at the {CITY} meetup!",
    "Do you have the latest version of the {PROJECT} deck?",
    "The client loved the demo, nice work!",
    "I'm heads-down on the {PROJECT} migration until {DAY}.",
    "Let's sync on the {TEAM} headcount plan.",
    "I booked the big room on the third floor for {DAY} afternoon.",
    "Did the {TEAM} team ever send over their estimates?",
    "Running {NUM} minutes late, start without me.",
)
_INMAIL_BODIES: Final = (
    "We're growing our {TEAM} group and your {SKILL} experience would be a great match for a {ROLE} role.",
    "Would you be up for a short call on {DAY}?",
    "I'd love to tell you more about what we're building at {COMPANY}.",
    "Our team in {CITY} is working on {PROJECT}, and your background stood out.",
    "We're partnering with {COMPANY} on {PROJECT} and I think you'd enjoy the problem.",
    "I'm putting together a panel on {SKILL} in {CITY} and would love to have you speak.",
)
_POST_BODIES: Final = (
    "Excited to share that our team just shipped {PROJECT} {EMOJI}",
    "Three lessons from leading {PROJECT}: start small, measure everything, write it down.",
    "We're looking for a {ROLE} to join the {TEAM} team at {COMPANY}.",
    "Proud of the {TEAM} team for a record quarter!",
    "Just wrapped up a great week at the {CITY} summit.",
    "Hot take: most {SKILL} problems are really communication problems.",
    "Celebrating {NUM} years at {COMPANY} today {EMOJI}",
    "If you're in {CITY} next month, come say hi at our booth.",
    "What's one {SKILL} resource you'd recommend to a beginner?",
    "New write-up on how we cut our cloud bill by {PCT}% without slowing anyone down.",
    "Grateful to have mentored {NUM} new {ROLE}s this year.",
    "Our {PROJECT} beta is open, feedback welcome!",
)
_COMMENT_BODIES: Final = (
    "Congrats, well deserved!", "Great post, thanks for sharing.", "This matches what we saw on the {TEAM} team.",
    "Totally agree about {SKILL}.", "Would love to read more about how you handled {PROJECT}.", "So true {EMOJI}",
    "Interesting take, but I'd push back on the last point.", "Saved this for later!", "Same experience in {CITY}.",
    "Congratulations on {NUM} years!", "Which tools did you use for the {SKILL} part?",
)
_ARTICLE_BODIES: Final = (
    "In this article I walk through how our {TEAM} team rebuilt {PROJECT} from scratch. We started with a small "
    "pilot in {CITY}, measured adoption weekly, and only then scaled to every region.",
    "Why {SKILL} matters more than ever: after {NUM} years as a {ROLE}, here is what I have learned about "
    "shipping, feedback loops and keeping teams focused.",
    "A practical guide to {SKILL} for {ROLE}s. Part one covers the basics, part two the mistakes we made at "
    "{COMPANY}, and part three a checklist you can reuse.",
    "What {PROJECT} taught us about scope. We cut {PCT}% of the plan in week two and still delivered on time.",
)
_PROFILE_BODIES: Final = (
    "{ROLE} with {NUM} years of experience in {SKILL} and {SKILL2}.",
    "{ROLE} at {COMPANY}, based in {CITY}.",
    "I help teams ship faster with {SKILL}. Previously {ROLE} at {COMPANY}.",
    "Passionate about {SKILL}, mentoring and building inclusive teams.",
    "{ROLE} | {SKILL} | {SKILL2} | speaker and writer.",
)
_PROMPT_BODIES: Final = (
    "Rewrite this post to sound more confident: we shipped {PROJECT} last week.",
    "Summarise the key points from my notes of the {TEAM} meeting.",
    "Write a headline for a {ROLE} who specialises in {SKILL}.",
    "Suggest three questions to ask at the {CITY} meetup panel.",
    "Make this message shorter and friendlier.",
    "Translate my profile summary into German.",
    "Draft a thank-you note to a colleague who helped with {PROJECT}.",
    "Give me five talking points about {SKILL} for a {NUM}-minute talk.",
)
_OUTPUT_BODIES: Final = (
    "Here's a more confident version: \"Last week our team shipped {PROJECT}, and early feedback is strong.\"",
    "Here are three headline options for a {ROLE}: {SKILL} expert, builder, mentor.",
    "Summary: the {TEAM} team agreed to prioritise {PROJECT} and revisit scope on {DAY}.",
    "Here is a shorter version of your message.",
    "Talking points: why {SKILL} matters, a story from {PROJECT}, and one practical tip.",
    "Sure! A warm thank-you note: \"Thank you for all your help on {PROJECT}.\"",
)
_FEEDBACK_BODIES: Final = (
    "The new feed keeps showing me the same posts.",
    "The writing assistant suggested something inaccurate about {SKILL}.",
    "Search results for {ROLE} are not relevant in {CITY}.",
    "Love the new messaging layout {EMOJI}",
    "Notifications arrive twice on my phone.",
    "The app crashed when I opened my inbox on {DAY}.",
    "Please add a dark mode to the desktop site.",
)
_APPLICATION_BODIES: Final = (
    "I have {NUM} years of experience as a {ROLE}, most recently leading {PROJECT} at {COMPANY}.",
    "My background in {SKILL} and {SKILL2} matches the requirements listed.",
    "I'm based in {CITY} and can start in {MONTH}.",
    "At {COMPANY} I grew the {TEAM} function from {NUM} people and owned {PROJECT} end to end.",
)

# ------------------------------------------------------------------ closers

_CLOSERS: Final = ("", "Thanks!", "Cheers,", "Best,", "Talk soon.", "Thanks in advance {EMOJI}", "Let me know.", "")
_PUBLIC_CLOSERS: Final = ("", "", "{HASHTAG}", "{HASHTAG} {HASHTAG2}", "Thoughts?", "{EMOJI}{EMOJI}")
LOCAL_CLOSERS: Final[dict[str, tuple[str, ...]]] = {
    "de": ("Danke!", "Viele Grüße"), "ch": ("Merci vielmal!", "Liebe Grüße"), "fr": ("Merci !", "Bonne journée"),
    "qc": ("Merci !", "Bonne fin de semaine"), "es": ("¡Gracias!", "Un saludo"), "mx": ("¡Gracias!", "Saludos"),
    "it": ("Grazie!", "A presto"), "br": ("Obrigado!", "Abraços"), "se": ("Tack!", "Hälsningar"), "no": ("Takk!",),
    "is": ("Takk fyrir!",), "pl": ("Dziękuję!", "Pozdrawiam"), "cn": ("谢谢！", "辛苦了！"), "cn_latin": ("谢谢！",),
    "hk": ("多謝！", "唔該晒！"), "hk_latin": ("多謝！",), "jp": ("よろしくお願いします。", "ありがとうございます！"),
    "jp_latin": ("よろしくお願いします。",), "kr": ("감사합니다!",),
}


class CategoryText(NamedTuple):
    openers: tuple[str, ...]
    bodies: tuple[str, ...]
    closers: tuple[str, ...]
    frame: str  # key of cues.TOPIC_FRAMES
    topic_rate: float  # share of records with a topic sentence
    pii_rate: float  # share of records with a first PII sentence


# Rates are documented in docs/data-model.md; job.application openers come from cues.JOB_APPLICATION_CUES.
CATEGORY_TEXT: Final[dict[str, CategoryText]] = {
    "message.direct": CategoryText(_DM_OPENERS, _MESSAGE_BODIES, _CLOSERS, "message", 0.15, 0.35),
    "message.inmail": CategoryText(_INMAIL_OPENERS, _INMAIL_BODIES, _CLOSERS, "message", 0.08, 0.30),
    "message.group": CategoryText(_GROUP_OPENERS, _MESSAGE_BODIES, _CLOSERS, "message", 0.10, 0.25),
    "post": CategoryText(_PUBLIC_OPENERS, _POST_BODIES, _PUBLIC_CLOSERS, "public", 0.06, 0.10),
    "comment": CategoryText(_NONE, _COMMENT_BODIES, _NONE, "public", 0.05, 0.10),
    "article": CategoryText(_NONE, _ARTICLE_BODIES, _PUBLIC_CLOSERS, "public", 0.08, 0.10),
    "profile.summary": CategoryText(_NONE, _PROFILE_BODIES, ("", "Always happy to connect."), "public", 0.04, 0.35),
    "ai.prompt": CategoryText(_NONE, _PROMPT_BODIES, _NONE, "prompt", 0.12, 0.20),
    "ai.output": CategoryText(_NONE, _OUTPUT_BODIES, _NONE, "output", 0.06, 0.10),
    "feedback": CategoryText(_NONE, _FEEDBACK_BODIES, _NONE, "public", 0.04, 0.15),
    "job.application": CategoryText(_NONE, _APPLICATION_BODIES, ("", "Thank you for your consideration."), "message", 0.08, 0.60),
}
SECOND_PII_RATE: Final = 0.25  # share of records with a first PII sentence that get a second one

# PII sentences: one planted value each. Entity weights are relative.
PII_SENTENCES: Final[dict[str, tuple[str, ...]]] = {
    "PERSON": (
        "Looping in {PERSON}, who ran the {PROJECT} pilot.", "{PERSON} from the {TEAM} team can help with this.",
        "I spoke with {PERSON} yesterday about {PROJECT}.", "Congrats to {PERSON} on the launch!",
        "Thanks to {PERSON} for the introduction.", "Can you ask {PERSON} to review the {PROJECT} doc?",
    ),
    "EMAIL_ADDRESS": (
        "You can email me at {EMAIL_ADDRESS} instead.", "Send the deck to {EMAIL_ADDRESS} when it's ready.",
        "My personal address is {EMAIL_ADDRESS} if the work one bounces.", "Please cc {EMAIL_ADDRESS} on the follow-up.",
    ),
    "PHONE_NUMBER": (
        "Call me on {PHONE_NUMBER} if that's easier.", "My cell is {PHONE_NUMBER}, text any time.",
        "Text {PHONE_NUMBER} when you land.", "The dial-in is {PHONE_NUMBER} and no code is needed.",
    ),
    "CREDIT_CARD": (
        "Can you put the conference tickets on card {CREDIT_CARD} please?", "I paid with {CREDIT_CARD} and it went through.",
        "Use the team card {CREDIT_CARD} for the offsite dinner.",
    ),
    "IBAN_CODE": (
        "Please wire the deposit to {IBAN_CODE} by {DAY}.", "My bank details for the reimbursement: {IBAN_CODE} (in my name).",
        "The invoice should be paid to IBAN {IBAN_CODE} this month.",
    ),
    "US_SSN": (
        "For the benefits enrollment form, my SSN is {US_SSN} if you need it.",
        "HR asked for my social security number, it's {US_SSN} for the record.",
        "SSN {US_SSN} is on the onboarding sheet.",
    ),
    "IP_ADDRESS": (
        "The VPN gateway is {IP_ADDRESS} if you need it.", "I keep getting blocked from {IP_ADDRESS} at home.",
        "Can you allowlist {IP_ADDRESS} for the demo?",
    ),
    "URL": (
        "Slides are at {URL} if you want a look.", "Here's the link: {URL} (edit access is open).",
        "Book a slot at {URL} whenever suits.", "I wrote up the details at {URL} last week.",
    ),
    "STREET_ADDRESS": (
        "Ship the laptop to {STREET_ADDRESS} please.", "We moved; the new office is at {STREET_ADDRESS} now.",
        "The dinner is at {STREET_ADDRESS} at seven.",
    ),
}
PII_WEIGHTS: Final[dict[str, float]] = {
    "PERSON": 0.22, "EMAIL_ADDRESS": 0.15, "PHONE_NUMBER": 0.17, "CREDIT_CARD": 0.07, "IBAN_CODE": 0.07,
    "US_SSN": 0.05, "IP_ADDRESS": 0.06, "URL": 0.12, "STREET_ADDRESS": 0.09,
}
