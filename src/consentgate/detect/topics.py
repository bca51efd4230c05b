"""Sensitive-topic scoring over phrase hits, vectorised with numpy.

Owns the rule that turns topic-phrase hits into topic detections: per (row, topic)
the score is the sum of the weights of the *distinct* phrases found (a phrase
repeated ten times counts once), capped at 1.0. A topic is reported when the score
reaches the topic's threshold (``topics.yaml``); every hit of a reported topic is
returned as an evidence span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass
class TopicTable:
    """Indices of the hits kept as evidence and the score of their (row, topic)."""

    keep: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]


def score_topics(
    rows: npt.NDArray[np.int64],
    topic: npt.NDArray[np.int64],
    phrase: npt.NDArray[np.int64],
    weight: npt.NDArray[np.float64],
    thresholds: npt.NDArray[np.float64],
) -> TopicTable:
    """Score (row, topic) groups from per-hit arrays; see the module docstring."""
    if not rows.size:
        return TopicTable(np.zeros(0, np.int64), np.zeros(0, np.float64))
    n_topics = thresholds.size
    group = rows * n_topics + topic
    # Distinct phrases per group.
    pair = np.stack([group, phrase], axis=1)
    _, first = np.unique(pair, axis=0, return_index=True)
    groups, inverse = np.unique(group, return_inverse=True)
    distinct_group = np.searchsorted(groups, group[first])
    total = np.bincount(distinct_group, weights=weight[first], minlength=groups.size)
    score = np.minimum(total, 1.0)
    passes = score + 1e-9 >= thresholds[groups % n_topics]
    keep = np.nonzero(passes[inverse])[0].astype(np.int64)
    return TopicTable(keep, score[inverse[keep]])
