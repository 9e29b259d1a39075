"""Exceptions of privacy_core: each carries its fields as attributes as well as a message that says what to change."""

from __future__ import annotations

from fractions import Fraction


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


def _show(amount: Fraction) -> str:
    """An exact amount for a message, with its decimal value when it is not an integer."""
    return str(amount) if amount.denominator == 1 else f"{amount} (≈{float(amount):.6g})"


class BudgetExceededError(PrivacyCoreError):
    """A spend would take a dataset's privacy budget over its cap; nothing was charged.

    Carries ``dataset``, ``accounting``, ``cap``, ``spent``, ``reserved``, ``requested`` and ``remaining``
    (exact Fractions, in ε for pure DP or ρ for zCDP).
    """

    def __init__(
        self, dataset: str, accounting: str, cap: Fraction, spent: Fraction, reserved: Fraction, requested: Fraction
    ) -> None:
        self.dataset = dataset
        self.accounting = accounting
        self.cap = cap
        self.spent = spent
        self.reserved = reserved
        self.requested = requested
        self.remaining = max(cap - spent - reserved, Fraction(0))
        loss = "rho" if accounting == "zcdp" else "epsilon"
        if self.remaining > 0:
            change = f"lower {loss} to at most {_show(self.remaining)}, or raise the cap"
        else:
            change = "the budget is exhausted: raise the cap"
        change += f" with raise_cap({dataset!r}, new_cap, reason)"
        if reserved > 0:
            change += ", or wait for reserved spends to commit or abort"
        super().__init__(
            f"dataset {dataset!r} ({accounting}): {loss}={_show(requested)} exceeds the remaining budget; "
            f"cap {_show(cap)}, spent {_show(spent)}, reserved {_show(reserved)}, requested {_show(requested)}, "
            f"remaining {_show(self.remaining)}; nothing was charged; {change}"
        )


class LedgerIntegrityError(PrivacyCoreError):
    """A budget ledger's stored state does not match its hash-chained entries, so it refuses to write.

    Carries ``dataset`` and ``problem``.
    """

    def __init__(self, dataset: str, problem: str) -> None:
        self.dataset = dataset
        self.problem = problem
        super().__init__(
            f"budget ledger of dataset {dataset!r} failed its integrity check: {problem}; nothing was written; "
            f"run verify({dataset!r}) for the full report and restore the ledger from a backup"
        )


class LedgerUnavailableError(PrivacyCoreError):
    """The budget ledger's database cannot be reached or opened. ``url`` is redacted: it never holds a password."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(
            f"cannot open the budget ledger at {url}: {detail}; check that the database is running and the URL "
            "is right (passwords are not shown)"
        )


class InsufficientSharesError(PrivacyCoreError):
    """Threshold decryption has fewer valid decryption shares of distinct key holders than the threshold.

    Carries ``threshold``, ``valid`` (holders whose shares verified), ``invalid`` (holder -> why its share was
    refused) and ``missing`` (how many more valid shares are needed). Nothing was decrypted.
    """

    def __init__(self, threshold: int, valid: list[int], invalid: dict[int, str]) -> None:
        self.threshold = threshold
        self.valid = sorted(valid)
        self.invalid = dict(sorted(invalid.items()))
        self.missing = max(threshold - len(self.valid), 0)
        refused = "; ".join(f"holder {holder}: {why}" for holder, why in self.invalid.items())
        super().__init__(
            f"threshold decryption needs {threshold} valid shares of distinct key holders, got {len(self.valid)} "
            f"(holders {self.valid or 'none'}); {self.missing} more needed"
            + (f"; refused {refused}" if refused else "")
            + "; ask more key holders for a partial decryption of these same ciphertexts; nothing was decrypted"
        )


class SecureProtocolError(PrivacyCoreError):
    """A step of a secure-aggregation round refuses to go on; it wrote nothing.

    Carries ``step`` (keygen, round, encrypt, aggregate, decrypt-share, combine), ``round_id``, ``problem`` and
    ``fix``. Messages never hold site values, key shares or decryption secrets.
    """

    def __init__(self, step: str, round_id: str, problem: str, fix: str) -> None:
        self.step = step
        self.round_id = round_id
        self.problem = problem
        self.fix = fix
        super().__init__(f"secure {step}, round {round_id!r}: {problem}; {fix}")


class RoundNotReadyError(SecureProtocolError):
    """The round's deadline has not passed and some allowed sites have not uploaded yet: try again later.

    Carries ``arrived`` (valid uploads so far), ``expected`` (allowed sites) and ``deadline`` (ISO UTC).
    """

    def __init__(self, round_id: str, arrived: int, expected: int, deadline: str) -> None:
        self.arrived = arrived
        self.expected = expected
        self.deadline = deadline
        super().__init__(
            "aggregate",
            round_id,
            f"{arrived} of {expected} allowed sites have uploaded and the deadline {deadline} has not passed",
            "aggregate after the deadline (a site that drops out is simply left out then)",
        )


class TooFewSitesError(SecureProtocolError):
    """Fewer uploads were accepted than the round's ``min_sites``, so the honest sites' noise would not reach
    the promised privacy: the coordinator refuses to combine. Carries ``arrived``, ``accepted`` and ``minimum``.
    """

    def __init__(self, round_id: str, arrived: int, accepted: int, minimum: int, rejected: dict[str, int]) -> None:
        self.arrived = arrived
        self.accepted = accepted
        self.minimum = minimum
        self.rejected = dict(rejected)
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.rejected.items())) or "none"
        super().__init__(
            "aggregate",
            round_id,
            f"{arrived} uploads arrived and {accepted} were accepted (rejected: {reasons}), but the round needs at "
            f"least {minimum}: each site's noise is sized so that {minimum} uploads together are private, fewer "
            "would release a total with too little noise",
            "nothing was combined; open a new round (a new round id) once enough sites can take part",
        )
