"""Publication and change control: may a build use this policy at this time?

Owns ``check_publishable`` (refuses an unpublished policy, one whose file differs
from what was published, one whose ``effective_at`` is earlier than the end of its
notice period, and a build before ``effective_at``) and
``published_fields`` (the values ``policy publish`` stores in the ledger).
The ledger's ``PublishedPolicy`` is accepted structurally so this module does not
depend on the ledger package.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from consentgate.errors import PolicyNotPublishedError
from consentgate.policy.model import Policy


class PublishedPolicyLike(Protocol):
    """The fields of ``consentgate.ledger.PublishedPolicy`` this module reads."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def published_at(self) -> datetime: ...
    @property
    def effective_at(self) -> datetime: ...
    @property
    def notice_days(self) -> int: ...
    @property
    def recorded_at(self) -> datetime | None: ...
    @property
    def backfilled(self) -> bool: ...
    @property
    def notice_from(self) -> datetime: ...
    @property
    def notice_end(self) -> datetime: ...


def _day(value: datetime) -> str:
    return value.isoformat()


def check_publishable(policy: Policy, published: PublishedPolicyLike | None, at: datetime) -> None:
    """Raise ``PolicyNotPublishedError`` (naming the dates) unless a build at ``at`` may use ``policy``."""
    label = f"policy {policy.name} {policy.version}"
    if published is None:
        raise PolicyNotPublishedError(
            f"{label} is not published in the ledger",
            policy=policy.name, version=policy.version,
        )
    if published.sha256 != policy.sha256:
        raise PolicyNotPublishedError(
            f"{label} differs from the published file (sha256 {policy.sha256[:12]}... vs published {published.sha256[:12]}...)",
            hint="Give a changed policy a new version and publish it; a published version never changes.",
            policy=policy.name, version=policy.version,
        )
    # Notice runs from when the ledger recorded the publication, not from the date the file
    # claims (``PublishedPolicy.notice_from``): a backdated file cannot shorten it.
    notice_end = published.notice_end
    if published.effective_at < notice_end:
        if published.notice_from == published.published_at or published.recorded_at is None:
            start = f"published {_day(published.notice_from)}"
        else:  # the file claims an earlier date than the ledger saw: notice starts the ledger's slack before its record
            slack_h = (published.recorded_at - published.notice_from).total_seconds() / 3600
            start = (f"counted from {_day(published.notice_from)} (the ledger recorded the publication "
                     f"{_day(published.recorded_at)}; a file's date may precede that by {slack_h:g} hours at most)")
        raise PolicyNotPublishedError(
            f"{label} takes effect {_day(published.effective_at)}, before its notice period ends: {start} "
            f"+ {published.notice_days} days = {_day(notice_end)}",
            hint="Publish a new version whose effective_at is at least its publication + notice_days.",
            policy=policy.name, version=policy.version,
        )
    if at < published.effective_at:
        raise PolicyNotPublishedError(
            f"{label} is not in effect at {_day(at)}; it takes effect {_day(published.effective_at)} "
            f"(published {_day(published.published_at)})",
            hint="Build as of a time on or after effective_at, or use the policy in effect then.",
            policy=policy.name, version=policy.version,
        )


def published_fields(policy: Policy) -> dict[str, Any]:
    """Keyword arguments for ``consentgate.ledger.PublishedPolicy`` describing ``policy``."""
    return {
        "name": policy.name,
        "version": policy.version,
        "sha256": policy.sha256,
        "published_at": policy.published_at,
        "effective_at": policy.effective_at,
        "notice_days": policy.notice_days,
        "body": policy.body,
    }
