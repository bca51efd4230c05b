"""The canonical data model shared by every stage (documented in docs/data-model.md).

Owns the Arrow schemas of the four canonical tables (members, records,
consent_events, labels) and the closed vocabularies (categories, scopes,
choices, sources, topics, entity types). Stages import these instead of
re-spelling column names.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

PURPOSES: Final = ("ai_training",)
SCOPES: Final = ("first_party", "affiliate", "third_party")
CHOICES: Final = ("grant", "deny")
SOURCES: Final = ("member", "gpc", "admin", "import")
TIERS: Final = ("free", "premium")

CATEGORIES: Final = (
    "message.direct",
    "message.inmail",
    "message.group",
    "post",
    "comment",
    "article",
    "profile.summary",
    "ai.prompt",
    "ai.output",
    "feedback",
    "job.application",
)
MESSAGE_CATEGORIES: Final = ("message.direct", "message.inmail", "message.group")

TOPICS: Final = (
    "health",
    "compensation",
    "job_search",
    "legal",
    "immigration",
    "union",
    "religion",
    "sexual_orientation",
    "political",
)

ENTITY_TYPES: Final = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "URL",
    "STREET_ADDRESS",
)

UTC_TS: Final = pa.timestamp("us", tz="UTC")

MEMBERS_SCHEMA: Final = pa.schema(
    [
        pa.field("member_id", pa.string(), nullable=False),
        pa.field("country", pa.string(), nullable=False),
        pa.field("subdivision", pa.string(), nullable=True),
        pa.field("birth_year", pa.int32(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("display_name", pa.string(), nullable=False),
        pa.field("email", pa.string(), nullable=False),
        pa.field("joined_at", UTC_TS, nullable=False),
    ]
)

RECORDS_SCHEMA: Final = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("author_id", pa.string(), nullable=False),
        pa.field("participants", pa.list_(pa.string()), nullable=False),
        pa.field("thread_id", pa.string(), nullable=True),
        pa.field("created_at", UTC_TS, nullable=False),
        pa.field("text", pa.string(), nullable=False),
    ]
)

CONSENT_EVENTS_SCHEMA: Final = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("member_id", pa.string(), nullable=False),
        pa.field("purpose", pa.string(), nullable=False),
        pa.field("scope", pa.string(), nullable=False),
        pa.field("choice", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=True),
        pa.field("recorded_at", UTC_TS, nullable=False),
    ]
)

# The ledger's consent snapshot, the input of every build engine and of the policy
# SQL: one row per (member_id, purpose, scope) holding the latest event at as_of, with
# its ledger sequence number in place of the event id (docs/interfaces.md).
CONSENT_SNAPSHOT_SCHEMA: Final = CONSENT_EVENTS_SCHEMA.remove(
    CONSENT_EVENTS_SCHEMA.get_field_index("event_id")
).append(pa.field("seq", pa.int64(), nullable=False))

# One row per ground-truth label. kind = "pii" rows carry entity_type/start/end
# (character offsets into records.text); kind = "topic" rows carry topic.
LABELS_SCHEMA: Final = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("entity_type", pa.string(), nullable=True),
        pa.field("start", pa.int32(), nullable=True),
        pa.field("end", pa.int32(), nullable=True),
        pa.field("topic", pa.string(), nullable=True),
    ]
)

TABLE_SCHEMAS: Final = {
    "members": MEMBERS_SCHEMA,
    "records": RECORDS_SCHEMA,
    "consent_events": CONSENT_EVENTS_SCHEMA,
    "labels": LABELS_SCHEMA,
}
