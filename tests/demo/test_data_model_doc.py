"""docs/data-model.md stays in step with the generator's vocabularies and lists."""

from __future__ import annotations

from pathlib import Path

from consentgate import datamodel
from consentgate.demo import cues, regions, templates

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"


def test_doc_lists_every_column_vocabulary_cue_and_region() -> None:
    text = DOC.read_text(encoding="utf-8")
    for schema in datamodel.TABLE_SCHEMAS.values():
        for name in schema.names:
            assert f"`{name}`" in text, name
    for word in (*datamodel.CATEGORIES, *datamodel.ENTITY_TYPES, *datamodel.TOPICS, *datamodel.SOURCES, *datamodel.SCOPES):
        assert f"`{word}`" in text, word
    for topic in datamodel.TOPICS:
        for phrase in cues.cue_phrases(topic):
            assert f"“{phrase}”" in text, phrase
    for region in regions.REGION_MIX:
        assert f"| {region.country} | {region.subdivision or '—'} | {region.weight:g} |" in text, region
    for cat, spec in templates.CATEGORY_TEXT.items():
        assert f"| {spec.topic_rate:.0%} | {spec.pii_rate:.0%} |" in text, cat
