"""Exceptions of privacy_core: each carries its fields as attributes as well as a message that says what to change."""

from __future__ import annotations


class PrivacyCoreError(Exception):
    """Base of every error privacy_core raises on purpose."""


class ConfigurationError(PrivacyCoreError, ValueError):
    """A caller-supplied setting is wrong; the message names the setting, the value class and the fix."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting = setting
        self.problem = problem
        self.fix = fix
        super().__init__(f"{setting}: {problem}; {fix}")


class SecretError(ConfigurationError):
    """The pseudonymisation secret is missing or too weak. The message never contains the secret."""


class QuarantineError(PrivacyCoreError):
    """One input item cannot be released; it goes to quarantine with ``category`` and ``detail``.

    ``category`` is a short fixed word safe for logs and summaries. ``detail`` may quote input values, so it
    is written only to the quarantine report, which lives outside the released tree.
    """

    def __init__(self, category: str, detail: str) -> None:
        self.category = category
        self.detail = detail
        super().__init__(category)


class SchemaValidationError(PrivacyCoreError, ValueError):
    """A record does not match its JSON Schema; names the schema and the first failing path."""

    def __init__(self, schema: str, path: str, message: str) -> None:
        self.schema = schema
        self.path = path
        super().__init__(f"record does not match schema {schema} at {path or '/'}: {message}")
