"""Read a policy YAML file into a validated ``Policy``, with file:line on every error.

Owns: composing the YAML into nodes (so every key keeps its line), turning the
nodes into plain Python (rejecting duplicate keys, keeping region keys and
version strings as written so that ``NO`` stays Norway and ``2024.10`` is not a
float), pydantic validation, and the vocabulary / cross-field checks. Every
problem raises one ``PolicyValidationError`` naming the file and line; the
first problem in file order wins.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from consentgate.datamodel import ENTITY_TYPES, TIERS, TOPICS
from consentgate.errors import PolicyValidationError
from consentgate.policy.compiled import expand_regions, glob_matches, is_glob, resolve_globs
from consentgate.policy.model import DEFAULT_KEY, Policy, version_key
from consentgate.policy.regions import region_key_problem

Path_ = tuple[Any, ...]
_RAW_SCALAR_KEYS: Final = frozenset({"version", "since"})


class _Lines:
    """Line number of every key / list item, by its path from the root."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.by_path: dict[Path_, int] = {(): 1}

    def line(self, path: Path_) -> int:
        for end in range(len(path), -1, -1):
            if path[:end] in self.by_path:
                return self.by_path[path[:end]]
        return 1

    def error(self, path: Path_, message: str) -> PolicyValidationError:
        line = self.line(path)
        field = _dotted(path) or "(top level)"
        return PolicyValidationError(f"{message} at {self.source}:{line}", file=self.source, line=line, field=field)


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def load_policy(path: Path) -> Policy:
    """Read and validate the policy at ``path``; ``Policy.sha256`` is the SHA-256 of its bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyValidationError(
            f"cannot read policy file {path}: {exc.strerror or type(exc).__name__}", file=str(path), hint="Check the path and permissions."
        ) from None
    return parse_policy(data, source=str(path))


def parse_policy(data: bytes, *, source: str = "<policy>") -> Policy:
    """Validate policy file bytes (``source`` names the file in messages)."""
    lines = _Lines(source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PolicyValidationError(f"the policy is not UTF-8 text at {source}:{line}", file=source, line=line) from None
    raw = _to_python(_compose(text, source), (), lines)
    if not isinstance(raw, dict):
        raise lines.error((), "the policy must be a YAML mapping of keys such as name, version, jurisdictions")
    policy = _validate(raw, lines)
    _check_semantics(policy, lines)
    policy._sha256 = hashlib.sha256(data).hexdigest()
    policy._source = source
    policy._body = text
    policy._lines = dict(lines.by_path)
    return policy


def _compose(text: str, source: str) -> Node:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or "invalid YAML"
        raise PolicyValidationError(f"YAML syntax error ({problem}) at {source}:{line}", file=source, line=line) from None
    except yaml.YAMLError as exc:
        raise PolicyValidationError(f"YAML error ({type(exc).__name__}) in {source}", file=source, line=1) from None
    if node is None:
        raise PolicyValidationError(f"the policy file is empty at {source}:1", file=source, line=1)
    return node


def _to_python(node: Node, path: Path_, lines: _Lines) -> Any:
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                raise PolicyValidationError(
                    f"keys must be plain words, not lists, mappings or merges ({_dotted(path) or 'top level'}) at {lines.source}:{key_line}",
                    file=lines.source, line=key_line,
                )
            key = str(key_node.value)
            if key in out:
                first = lines.by_path[path + (key,)]
                raise PolicyValidationError(
                    f"duplicate key {key!r} in {_dotted(path) or 'the top level'} (first at line {first}) at {lines.source}:{key_line}",
                    file=lines.source, line=key_line, field=_dotted(path + (key,)),
                )
            lines.by_path[path + (key,)] = key_line
            out[key] = _to_python(value_node, path + (key,), lines)
        return out
    if isinstance(node, SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines.by_path[path + (index,)] = item.start_mark.line + 1
            items.append(_to_python(item, path + (index,), lines))
        return items
    if path and path[-1] in _RAW_SCALAR_KEYS and isinstance(node, ScalarNode):
        return str(node.value)  # versions stay as written: 2024.10 is not the float 2024.1
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        line = node.start_mark.line + 1
        reason = str(exc).splitlines()[0] if isinstance(exc, ValueError) else type(exc).__name__
        raise PolicyValidationError(
            f"invalid value for {_dotted(path) or 'the policy'} ({reason}) at {lines.source}:{line}",
            file=lines.source, line=line, field=_dotted(path),
        ) from None


def _validate(raw: dict[str, Any], lines: _Lines) -> Policy:
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raw_errors = exc.errors()
        locs = [tuple(e["loc"]) for e in raw_errors]
        # A container error (e.g. "too short") that merely echoes a failing item is dropped.
        specific = [e for e, loc in zip(raw_errors, locs) if not any(o[: len(loc)] == loc and len(o) > len(loc) for o in locs)]
        errors = sorted(specific, key=lambda e: lines.line(tuple(e["loc"])))
        first = errors[0]
        loc = tuple(first["loc"])
        raise lines.error(loc, _describe(first, loc)) from None


def _describe(error: Any, loc: Path_) -> str:
    kind = error["type"]
    where = _dotted(loc[:-1]) or "the top level"
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r} in {where}"
    if kind == "missing":
        return f"missing required key {loc[-1]!r} in {where}"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60 else ""
    return f"invalid value for {_dotted(loc) or 'the policy'}: {message}{shown}"


def _check_semantics(policy: Policy, lines: _Lines) -> None:
    """Vocabulary and cross-field checks; raises at the first problem in file order."""
    problems: list[tuple[Path_, str]] = []
    problems += _check_dates(policy)
    problems += _check_recipients(policy)
    problems += _check_regions("jurisdictions", dict(policy.jurisdictions))
    problems += _check_regions("gpc", dict(policy.gpc))
    problems += _check_categories(policy)
    problems += _check_vocab("tiers", policy.tiers, TIERS, "member tier")
    problems += _check_vocab("sensitive_topics", policy.sensitive_topics, TOPICS + (DEFAULT_KEY,), "topic")
    problems += _check_vocab("pii", policy.pii, ENTITY_TYPES, "entity type")
    for tier, rule in policy.tiers.items():
        for index, pattern in enumerate(rule.exclude):
            if not glob_matches(pattern):
                problems.append((("tiers", tier, "exclude", index), f"unknown category {pattern!r} in tiers.{tier}.exclude"))
    if problems:
        path, message = min(problems, key=lambda p: lines.line(p[0]))
        raise lines.error(path, message)


def _check_dates(policy: Policy) -> list[tuple[Path_, str]]:
    if policy.effective_at < policy.published_at:
        return [(("effective_at",), f"effective_at {policy.effective_at.isoformat()} is before published_at {policy.published_at.isoformat()}")]
    return []


def _check_recipients(policy: Policy) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    seen: dict[str, int] = {}
    for index, recipient in enumerate(policy.recipients):
        if recipient.name in seen:
            problems.append((("recipients", index, "name"), f"duplicate recipient {recipient.name!r} (also recipients[{seen[recipient.name]}])"))
        seen.setdefault(recipient.name, index)
        if recipient.since is not None and version_key(recipient.since) > version_key(policy.version):
            problems.append((("recipients", index, "since"), f"recipient {recipient.name!r} since {recipient.since} is newer than the policy version {policy.version}"))
    return problems


def _check_regions(section: str, mapping: dict[str, Any]) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    for key in mapping:
        if key == DEFAULT_KEY:
            continue
        why = region_key_problem(key)
        if why is not None:
            problems.append(((section, key), f"unknown region {key!r} in {section}: {why}"))
    if not problems:
        for country, group_a, group_b in expand_regions(mapping)[2]:
            problems.append(((section, group_b), f"{section}: groups {group_a} and {group_b} give {country} different values; name {country} explicitly"))
    return problems


def _check_categories(policy: Policy) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    for key in policy.categories:
        if not glob_matches(key):
            kind = "pattern matches no known category" if is_glob(key) else "unknown category"
            problems.append((("categories", key), f"{kind} {key!r} (known: see datamodel.CATEGORIES)"))
    for category, key_a, key_b in resolve_globs(policy.categories)[1]:
        problems.append((("categories", key_b), f"categories {key_a!r} and {key_b!r} both match {category} with different rules"))
    return problems


def _check_vocab(section: str, mapping: dict[str, Any], vocabulary: tuple[str, ...], what: str) -> list[tuple[Path_, str]]:
    return [((section, key), f"unknown {what} {key!r} in {section} (known: {', '.join(vocabulary)})") for key in mapping if key not in vocabulary]
