"""The one exception tree of consentgate.

Every error the package raises on purpose derives from ``ConsentGateError``. Each
carries structured fields (``message``, ``hint``, ``details``) so that the CLI can
print ``Error: <message>`` plus a hint in one place, and the service can map the
class to an HTTP status in one handler. Messages name files, fields, rows and
values, never member-written text (no PII in errors).

    ConsentGateError
    ├── ConfigError                 bad consentgate.toml / CONSENTGATE_* / flag value
    ├── InputError                  bad input file or value (names file, field, row)
    │   └── SchemaError             a column is missing or of the wrong type
    ├── NotAvailableError           a command group that a later release fills
    ├── LedgerError                 consent ledger problems
    │   ├── LedgerIntegrityError    the hash chain is broken (names the sequence number)
    │   └── UnknownMemberError      no such member in the ledger
    ├── PolicyError                 policy problems
    │   ├── PolicyValidationError   the YAML is invalid (names file and line)
    │   └── PolicyNotPublishedError a build asked for an unpublished / too-early policy
    ├── DetectError                 PII / topic detection and redaction problems
    ├── BuildError                  dataset build problems
    │   └── BuildVerifyError        a built dataset does not match its manifest
    ├── LineageError                dataset / model lineage problems
    └── TranslogError               transparency log problems
"""

from __future__ import annotations

from typing import Any


class ConsentGateError(Exception):
    """Root of every consentgate error.

    ``message`` says what went wrong, ``hint`` what to do about it, ``details``
    holds structured fields (file, field, row, value, sequence number, ...).
    ``exit_code`` is what the CLI exits with.
    """

    exit_code: int = 2
    default_hint: str = "Run the command with --help for usage, or --debug for a traceback."

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, used by the service's error handler and --json output."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "details": {k: _jsonable(v) for k, v in self.details.items()},
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class ConfigError(ConsentGateError):
    default_hint = "Check consentgate.toml, CONSENTGATE_* environment variables and flags (docs/configuration.md)."


class InputError(ConsentGateError):
    default_hint = "Fix the named file, field or value and run the command again; nothing was written."


class SchemaError(InputError):
    default_hint = "See docs/data-model.md for the expected columns and types."


class NotAvailableError(ConsentGateError):
    default_hint = "This command group is not available in this version of consentgate."


class LedgerError(ConsentGateError):
    default_hint = "Check the ledger database URL (--db or CONSENTGATE_DB_URL) and run `consentgate ledger init`."


class LedgerIntegrityError(LedgerError):
    exit_code = 1
    default_hint = "The ledger was changed outside consentgate. Restore it from a backup and investigate."


class UnknownMemberError(LedgerError):
    default_hint = "Check the member id; the ledger has no events for it."


class PolicyError(ConsentGateError):
    default_hint = "See docs/policy-reference.md."


class PolicyValidationError(PolicyError):
    default_hint = "Fix the policy file at the named line; see docs/policy-reference.md."


class PolicyNotPublishedError(PolicyError):
    default_hint = "Publish the policy with `consentgate policy publish FILE` and wait for its notice period."


class DetectError(ConsentGateError):
    pass


class BuildError(ConsentGateError):
    pass


class BuildVerifyError(BuildError):
    exit_code = 1
    default_hint = "The dataset folder differs from its manifest; rebuild it from its spec."


class LineageError(ConsentGateError):
    pass


class TranslogError(ConsentGateError):
    pass
