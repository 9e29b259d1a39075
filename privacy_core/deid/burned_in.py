"""Burned-in annotation: find and blank the pixel regions where known devices print identifiers.

The rules come in RSNA CTP's DicomPixelAnonymizer script format: free-text headings, then rules made
of a boolean condition in ``{ ... }`` followed by one or more rectangles ``(x,y,w,h)``::

    GE
     CT Dose Series
      { Manufacturer.containsIgnoreCase("GE MEDICAL") * !Rows.equals("1024") }
      (0,0,512,110)

Conditions combine ``Attribute.method("text")`` terms with ``*`` (and), ``+`` (or), ``!`` (not) and
parentheses, with CTP's precedence (``!`` binds tightest, then ``*``, then ``+``). The attribute is a
DICOM keyword, a tag such as ``[0008,0070]``, or a ``::`` chain into the first item of a sequence. As in
CTP, a missing attribute reads as ``""`` and a multi-valued one as its values joined with ``\\``.

Matching (:func:`match_regions`) reads the original header; blanking (:func:`apply_regions`) decodes
the pixels, paints the rectangles display-black on every frame and sample, and writes them back
uncompressed. pydicom and NumPy are imported only when pixels or headers are touched, so importing
this module stays cheap.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    from pydicom.dataset import Dataset

__all__ = [
    "METHODS",
    "And",
    "BurnedInError",
    "BurnedInRule",
    "BurnedInRuleError",
    "Condition",
    "Const",
    "Not",
    "Or",
    "Region",
    "Term",
    "apply_regions",
    "format_condition",
    "load_library",
    "load_rules",
    "match_regions",
    "matching_rules",
    "parse_script",
    "rules_to_module",
]


class BurnedInRuleError(ValueError):
    """A rule script has a syntax error; the message gives the line and what to fix.

    :param problem: what is wrong and how to fix it.
    :param line: 1-based line number in the script.
    :param source: the script's file name, if it came from a file.
    """

    def __init__(self, problem: str, line: int, source: str | None = None) -> None:
        where = f"{source}, line {line}" if source else f"line {line}"
        super().__init__(f"{where}: {problem}")
        self.problem = problem
        self.line = line
        self.source = source

    def __reduce__(self) -> tuple[type[BurnedInRuleError], tuple[str, int, str | None]]:
        # Keep the fields when pickled, e.g. when a Dask worker sends the error back.
        return (type(self), (self.problem, self.line, self.source))


class BurnedInError(RuntimeError):
    """Pixels could not be blanked; the caller should quarantine the file.

    The message never contains attribute values from the dataset, so it is safe to log.

    :param reason: what went wrong and what to install or change.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Region:
    """A rectangle of pixels, in columns (``x``, ``width``) and rows (``y``, ``height``) from top left."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.x < 0 or self.y < 0:
            raise ValueError(f"Region x={self.x}, y={self.y} must not be negative; start at 0 or more")
        if self.width < 1 or self.height < 1:
            raise ValueError(
                f"Region width={self.width}, height={self.height} must both be at least 1; drop empty rectangles"
            )


@dataclass(frozen=True)
class Term:
    """One ``Attribute.method("argument")`` test.

    :param attribute: the attribute as written in the script (keyword, ``[gggg,eeee]`` or ``A::B``).
    :param tags: the resolved tag path; all but the last are sequences, read at their first item.
    :param method: a key of :data:`METHODS`.
    :param argument: the quoted text, ``""`` for methods without one.
    """

    attribute: str
    tags: tuple[int, ...]
    method: str
    argument: str


@dataclass(frozen=True)
class Not:
    """Negation (``!``)."""

    operand: Condition


@dataclass(frozen=True)
class And:
    """True when every operand is true (``*``)."""

    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    """True when any operand is true (``+``)."""

    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Const:
    """CTP's ``true.`` and ``false.`` reserved words."""

    value: bool


#: A condition tree; :func:`rules_to_module` renders it as nested tuples.
Condition: TypeAlias = Term | Not | And | Or | Const


@dataclass(frozen=True)
class BurnedInRule:
    """A condition on the header and the regions to blank when it holds.

    :param label: the nearest headings above the rule in the script (section / vendor / device), for reports.
    :param condition: the parsed condition.
    :param regions: rectangles to blank, in script order.
    """

    label: str
    condition: Condition
    regions: tuple[Region, ...]


# --------------------------------------------------------------------------------------------------
# Methods: CTP's DicomObject.matches() semantics (org.rsna.ctp.objects.DicomObject.Operand).


def _number(text: str) -> float:
    """CTP's numeric reading for isLessThan/isGreaterThan: keep only digits and dots (signs are dropped)."""
    return float(re.sub(r"[^0-9.]", "", text))


def _compare(value: str, argument: str, less: bool) -> bool:
    """Compare as numbers the way CTP does; anything unparsable is simply false."""
    try:
        left, right = _number(value), _number(argument)
    except ValueError:
        return False
    return left < right if less else left > right


#: Supported methods: name -> test(value, argument). CTP lower-cases both sides for the IgnoreCase forms.
METHODS: dict[str, Callable[[str, str], bool]] = {
    "equals": lambda v, a: v == a,
    "equalsIgnoreCase": lambda v, a: v.lower() == a.lower(),
    "contains": lambda v, a: a in v,
    "containsIgnoreCase": lambda v, a: a.lower() in v.lower(),
    "startsWith": lambda v, a: v.startswith(a),
    "startsWithIgnoreCase": lambda v, a: v.lower().startswith(a.lower()),
    "endsWith": lambda v, a: v.endswith(a),
    "endsWithIgnoreCase": lambda v, a: v.lower().endswith(a.lower()),
    # Java String.matches() must match the whole value.
    "matches": lambda v, a: re.fullmatch(a, v) is not None,
    "isLessThan": lambda v, a: _compare(v, a, less=True),
    "isGreaterThan": lambda v, a: _compare(v, a, less=False),
    # Not in CTP's matcher (which evaluates an argument-less call as false); ours: empty or whitespace.
    "isBlank": lambda v, a: not v.strip(),
}

#: Methods written without an argument, e.g. ``PatientName.isBlank()``.
_NO_ARGUMENT = frozenset({"isBlank"})


# --------------------------------------------------------------------------------------------------
# Parsing


_TAG_RE = re.compile(r"\[\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\]")
_ATTRIBUTE_PART = r"(?:\[[^\]\n]*\]|[A-Za-z][A-Za-z0-9_]*)"
_ATTRIBUTE_RE = re.compile(rf"{_ATTRIBUTE_PART}(?:\s*::\s*{_ATTRIBUTE_PART})*")
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RECT_START_RE = re.compile(r"\(\s*[-+]?\d")
_RECT_RE = re.compile(r"\(\s*([-+]?\d+)\s*,\s*([-+]?\d+)\s*,\s*([-+]?\d+)\s*,\s*([-+]?\d+)\s*\)")
_RECT_LINE_RE = re.compile(r"\s*(?:\(\s*[-+]?\d[^()\n]*\)\s*)+")
_BANNER_RE = re.compile(r"\s*\*{3,}\s*")


def _line_at(text: str, pos: int) -> int:
    """1-based line number of offset ``pos``."""
    return text.count("\n", 0, pos) + 1


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "*" "+" "!" "term" "end"
    pos: int
    term: Term | Const | None = None


class _ConditionParser:
    """Tokenise and parse one ``{ ... }`` body; positions are offsets into the whole script."""

    def __init__(self, script: str, start: int, end: int, source: str | None) -> None:
        self.script = script
        self.end = end
        self.source = source
        self.tokens = list(self._tokenise(start))
        self.index = 0

    def error(self, problem: str, pos: int) -> BurnedInRuleError:
        return BurnedInRuleError(problem, _line_at(self.script, pos), self.source)

    # tokens -------------------------------------------------------------------------------------

    def _skip_space(self, pos: int) -> int:
        text = self.script
        while pos < self.end:
            if text[pos].isspace():
                pos += 1
            elif text.startswith("//", pos):  # CTP allows // comments inside conditions
                newline = text.find("\n", pos, self.end)
                pos = self.end if newline < 0 else newline + 1
            else:
                break
        return pos

    def _tokenise(self, pos: int) -> Iterator[_Token]:
        text = self.script
        while True:
            pos = self._skip_space(pos)
            if pos >= self.end:
                yield _Token("end", pos)
                return
            char = text[pos]
            if char in "()*+!":
                yield _Token(char, pos)
                pos += 1
            elif char == "[" or char.isalpha():
                term, pos = self._term(pos)
                yield _Token("term", pos, term)
            elif char == "{":
                raise self.error("'{' inside a condition; close the previous condition with '}' first", pos)
            else:
                raise self.error(
                    f'unexpected {char!r} in condition; terms look like Keyword.method("text") and '
                    "combine with * (and), + (or), ! (not) and parentheses",
                    pos,
                )

    def _term(self, start: int) -> tuple[Term | Const, int]:
        text = self.script
        found = _ATTRIBUTE_RE.match(text, start, self.end)
        if found is None:  # only when '[' has no closing ']' on the line
            raise self.error("tag is missing its closing ']'; write tags as [gggg,eeee]", start)
        attribute = re.sub(r"\s+", "", found.group())
        pos = found.end()
        if attribute in ("true", "false"):  # CTP reserved words, written "true." / "false."
            if pos < self.end and text[pos] == ".":
                pos += 1
            return Const(attribute == "true"), pos
        tags = self._resolve(attribute, start)
        pos = self._skip_space(pos)
        if pos >= self.end or text[pos] != ".":
            raise self.error(f'expected .method("text") after {attribute!r}', pos)
        pos = self._skip_space(pos + 1)
        name = _NAME_RE.match(text, pos, self.end)
        if name is None:
            raise self.error(f"expected a method name after '{attribute}.'", pos)
        method = name.group()
        if method not in METHODS:
            known = ", ".join(sorted(METHODS))
            raise self.error(f"unknown method {method!r}; use one of {known}", pos)
        pos = self._skip_space(name.end())
        if pos >= self.end or text[pos] != "(":
            raise self.error(f"expected '(' after {attribute}.{method}", pos)
        pos = self._skip_space(pos + 1)
        argument: str | None = None
        if pos < self.end and text[pos] == '"':
            close = text.find('"', pos + 1, self.end)
            if close < 0:
                raise self.error(f"unterminated string in {attribute}.{method}(...); add the closing '\"'", pos)
            argument = text[pos + 1 : close]
            pos = self._skip_space(close + 1)
        if pos >= self.end or text[pos] != ")":
            raise self.error(
                f"expected ')' to close {attribute}.{method}(; the argument must be one \"quoted\" string",
                pos,
            )
        if method in _NO_ARGUMENT and argument is not None:
            raise self.error(f"{method}() takes no argument; write {attribute}.{method}()", start)
        if method not in _NO_ARGUMENT and argument is None:
            raise self.error(f'{method} needs a quoted argument, e.g. {attribute}.{method}("text")', start)
        if method == "matches":
            try:
                re.compile(argument or "")
            except re.error as exc:
                raise self.error(f"matches() pattern is not a valid regular expression ({exc.msg})", start) from None
        return Term(attribute, tags, method, argument or ""), pos + 1

    def _resolve(self, attribute: str, pos: int) -> tuple[int, ...]:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        tags: list[int] = []
        parts = attribute.split("::")
        for i, part in enumerate(parts):
            if part.startswith("["):
                found = _TAG_RE.fullmatch(part)
                if found is None:
                    raise self.error(f"tag {part!r} must be [gggg,eeee] with eight hex digits", pos)
                tag = int(found.group(1) + found.group(2), 16)
            else:
                keyword_tag = tag_for_keyword(part)
                if keyword_tag is None:
                    raise self.error(
                        f"{part!r} is not a DICOM keyword; fix the spelling or write the tag as [gggg,eeee]",
                        pos,
                    )
                tag = keyword_tag
                if i < len(parts) - 1 and dictionary_VR(tag) != "SQ":
                    raise self.error(f"{part!r} is not a sequence, so it cannot come before '::'", pos)
            tags.append(tag)
        return tuple(tags)

    # grammar: expression := product ('+' product)* ; product := factor ('*' factor)* ;
    #          factor := '!' factor | '(' expression ')' | term

    def parse(self) -> Condition:
        if self.tokens[0].kind == "end":
            raise self.error('empty condition; put a test such as Modality.equals("US") inside { }', self.end)
        condition = self._expression()
        token = self.tokens[self.index]
        if token.kind == ")":
            raise self.error("')' without a matching '('", token.pos)
        if token.kind != "end":
            raise self.error("missing * (and) or + (or) between terms", token.pos)
        return condition

    def _next(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _expression(self) -> Condition:
        operands = [self._product()]
        while self.tokens[self.index].kind == "+":
            self.index += 1
            operands.append(self._product())
        return _combine(Or, operands)

    def _product(self) -> Condition:
        operands = [self._factor()]
        while self.tokens[self.index].kind == "*":
            self.index += 1
            operands.append(self._factor())
        return _combine(And, operands)

    def _factor(self) -> Condition:
        token = self._next()
        if token.kind == "!":
            return Not(self._factor())
        if token.kind == "(":
            inner = self._expression()
            close = self._next()
            if close.kind != ")":
                raise self.error("'(' is never closed; add ')'", token.pos)
            return inner
        if token.kind == "term" and token.term is not None:
            return token.term
        what = "end of condition" if token.kind == "end" else repr(token.kind)
        raise self.error(f"expected a term, '(' or '!' but found {what}", token.pos)


def _combine(kind: type[And] | type[Or], operands: list[Condition]) -> Condition:
    """Build a flat And/Or: ``a * (b * c)`` and ``a * b * c`` give the same tree."""
    if len(operands) == 1:
        return operands[0]
    flat: list[Condition] = []
    for operand in operands:
        if isinstance(operand, And | Or) and type(operand) is kind:
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return kind(tuple(flat))


class _Headings:
    """Track the section banner, vendor line and device line above each rule, for labels."""

    def __init__(self) -> None:
        self.section = ""
        self.vendor = ""
        self.device = ""
        self._banner: list[str] | None = None

    def feed(self, text: str, script: str, offset: int, source: str | None) -> None:
        pos = offset
        for line in text.split("\n"):
            stripped = " ".join(line.split())
            if _BANNER_RE.fullmatch(line):
                if self._banner is None:
                    self._banner = []
                else:
                    self.section, self.vendor, self.device = " ".join(self._banner), "", ""
                    self._banner = None
            elif "}" in line:
                raise BurnedInRuleError("'}' without a matching '{'", _line_at(script, pos + line.index("}")), source)
            elif _RECT_LINE_RE.fullmatch(line):
                raise BurnedInRuleError(
                    "rectangle is not directly after a { condition }; CTP would silently attach it to the "
                    "rule above, so move it up under its condition or give it its own condition",
                    _line_at(script, pos),
                    source,
                )
            elif stripped and self._banner is not None:
                self._banner.append(stripped)
            elif stripped and line[:1].isspace():
                self.device = stripped
            elif stripped:
                self.vendor, self.device = stripped, ""
            pos += len(line) + 1

    @property
    def label(self) -> str:
        return " / ".join(part for part in (self.section, self.vendor, self.device) if part)


def parse_script(text: str, *, source: str | None = None) -> list[BurnedInRule]:
    """Parse a CTP DicomPixelAnonymizer script into rules, in file order.

    Stricter than CTP, which skips what it cannot read: a rule that would silently never match or
    never blank anything is an error here, because that leaves identifiers in the pixels.

    :param text: the script text.
    :param source: file name to put in error messages.
    :raises BurnedInRuleError: on a syntax error, with the line number and the fix.

    >>> rules = parse_script('GE\\n{ Manufacturer.contains("GE") * Rows.equals("512") }\\n(0,0,512,40)')
    >>> rules[0].label, rules[0].regions
    ('GE', (Region(x=0, y=0, width=512, height=40),))
    """
    rules: list[BurnedInRule] = []
    headings = _Headings()
    pos = 0
    while True:
        open_brace = text.find("{", pos)
        headings.feed(text[pos : len(text) if open_brace < 0 else open_brace], text, pos, source)
        if open_brace < 0:
            return rules
        close_brace = text.find("}", open_brace + 1)
        if close_brace < 0:
            raise BurnedInRuleError(
                "'{' is never closed; end the condition with '}'", _line_at(text, open_brace), source
            )
        condition = _ConditionParser(text, open_brace + 1, close_brace, source).parse()
        regions, pos = _parse_regions(text, close_brace + 1, source)
        if not regions:
            raise BurnedInRuleError(
                "condition has no rectangles; add one or more (x,y,width,height) after the '}'",
                _line_at(text, open_brace),
                source,
            )
        rules.append(BurnedInRule(headings.label, condition, tuple(regions)))


def _parse_regions(text: str, pos: int, source: str | None) -> tuple[list[Region], int]:
    """Read the ``(x,y,w,h)`` rectangles after a ``}``; return them and where the heading text resumes."""
    regions: list[Region] = []
    while True:
        start = pos
        while start < len(text) and text[start].isspace():
            start += 1
        if not _RECT_START_RE.match(text, start):
            return regions, pos
        found = _RECT_RE.match(text, start)
        line = _line_at(text, start)
        if found is None:
            raise BurnedInRuleError(
                "rectangle must be (x,y,width,height): four integers separated by commas", line, source
            )
        x, y, width, height = (int(group) for group in found.groups())
        if x < 0 or y < 0:
            raise BurnedInRuleError(f"rectangle x={x}, y={y} must not be negative", line, source)
        if width < 1 or height < 1:
            raise BurnedInRuleError(f"rectangle width={width}, height={height} must both be at least 1", line, source)
        regions.append(Region(x, y, width, height))
        pos = found.end()


def format_condition(condition: Condition) -> str:
    """Render a condition back in CTP syntax, for reports.

    >>> format_condition(parse_script('{ !Modality.equals("CT") + Rows.equals("1") }(0,0,1,1)')[0].condition)
    '!Modality.equals("CT") + Rows.equals("1")'
    """
    if isinstance(condition, Term):
        argument = "" if condition.method in _NO_ARGUMENT else f'"{condition.argument}"'
        return f"{condition.attribute}.{condition.method}({argument})"
    if isinstance(condition, Const):
        return "true." if condition.value else "false."
    if isinstance(condition, Not):
        inner = format_condition(condition.operand)
        return f"!{inner}" if isinstance(condition.operand, Term | Const | Not) else f"!({inner})"
    if isinstance(condition, And):
        parts = (
            f"({format_condition(op)})" if isinstance(op, Or) else format_condition(op) for op in condition.operands
        )
        return " * ".join(parts)
    return " + ".join(format_condition(op) for op in condition.operands)


# --------------------------------------------------------------------------------------------------
# Generated library module


def _condition_source(condition: Condition, indent: int) -> str:
    """Render a condition as a Python literal: nested tuples of str, int and bool."""
    if isinstance(condition, Term):
        tags = "".join(f"0x{tag:08X}, " for tag in condition.tags).rstrip(" ")
        return f"('term', {condition.attribute!r}, ({tags}), {condition.method!r}, {condition.argument!r})"
    if isinstance(condition, Const):
        return f"('const', {condition.value!r})"
    if isinstance(condition, Not):
        return f"('not', {_condition_source(condition.operand, indent)})"
    kind = "and" if isinstance(condition, And) else "or"
    pad = " " * indent
    inner = "".join(f"{pad}    {_condition_source(op, indent + 4)},\n" for op in condition.operands)
    return f"({kind!r}, (\n{inner}{pad}))"


def rules_to_module(rules: list[BurnedInRule], provenance: str) -> str:
    """Return the source of ``_burned_in_library.py``: the rules as plain literal data, in rule order.

    :param rules: rules from :func:`parse_script`.
    :param provenance: where the rules came from, for the first line; one line of text.
    """
    if "\n" in provenance or "\r" in provenance:
        raise ValueError("provenance must be a single line; it goes into the module's first-line comment")
    lines = [
        f"# auto-generated by tools/generate_deid_tables.py from {provenance}; do not edit",
        '"""Burned-in annotation rules (RSNA CTP DicomPixelAnonymizer regions) as plain data.',
        "",
        "Rule: (label, condition, ((x, y, width, height), ...)).",
        "Condition: ('term', attribute, (tag, ...), method, argument) | ('not', condition)",
        "| ('and', (condition, ...)) | ('or', (condition, ...)) | ('const', bool).",
        "Read it through ``privacy_core.deid.burned_in.load_library()``.",
        '"""',
        "",
        "RULES: tuple[tuple[str, object, tuple[tuple[int, int, int, int], ...]], ...] = (",
    ]
    for rule in rules:
        regions = "".join(f"({r.x}, {r.y}, {r.width}, {r.height}), " for r in rule.regions).rstrip(" ")
        lines += [
            "    (",
            f"        {rule.label!r},",
            f"        {_condition_source(rule.condition, 8)},",
            f"        ({regions}),",
            "    ),",
        ]
    lines.append(")")
    return "\n".join(lines) + "\n"


def _condition_from_literal(data: object) -> Condition:
    """Rebuild a condition from :func:`_condition_source` data."""
    if isinstance(data, tuple) and data:
        kind = data[0]
        if kind == "term" and len(data) == 5:
            _, attribute, tags, method, argument = data
            tag_ints = _ints(tags)
            if (
                isinstance(attribute, str)
                and tag_ints
                and isinstance(method, str)
                and method in METHODS
                and isinstance(argument, str)
            ):
                return Term(attribute, tag_ints, method, argument)
        elif kind == "not" and len(data) == 2:
            return Not(_condition_from_literal(data[1]))
        elif kind in ("and", "or") and len(data) == 2 and isinstance(data[1], tuple):
            operands = tuple(_condition_from_literal(item) for item in data[1])
            return And(operands) if kind == "and" else Or(operands)
        elif kind == "const" and len(data) == 2 and isinstance(data[1], bool):
            return Const(data[1])
    raise ValueError(
        f"malformed condition {data!r} in the burned-in library; regenerate it with tools/generate_deid_tables.py"
    )


def _ints(data: object) -> tuple[int, ...]:
    """``data`` as a tuple of ints, or ``()`` if it is anything else."""
    if isinstance(data, tuple) and all(isinstance(item, int) and not isinstance(item, bool) for item in data):
        return tuple(int(item) for item in data)
    return ()


def _rules_from_literal(data: object) -> tuple[BurnedInRule, ...]:
    """Rebuild rules from a ``RULES`` literal."""
    if not isinstance(data, tuple):
        raise ValueError("RULES must be a tuple; regenerate it with tools/generate_deid_tables.py")
    rules = []
    for row in data:
        if not (isinstance(row, tuple) and len(row) == 3 and isinstance(row[0], str) and isinstance(row[2], tuple)):
            raise ValueError(f"malformed rule {row!r}; regenerate it with tools/generate_deid_tables.py")
        rects = [_ints(rect) for rect in row[2]]
        if not all(len(rect) == 4 for rect in rects):
            raise ValueError(f"malformed regions {row[2]!r}; regenerate it with tools/generate_deid_tables.py")
        regions = tuple(Region(*rect) for rect in rects)
        rules.append(BurnedInRule(row[0], _condition_from_literal(row[1]), regions))
    return tuple(rules)


@functools.cache
def _library() -> tuple[BurnedInRule, ...]:
    from privacy_core.deid import _burned_in_library

    return _rules_from_literal(_burned_in_library.RULES)


def load_library() -> list[BurnedInRule]:
    """Return the bundled CTP rule library (``_burned_in_library.py``), parsed once per process.

    >>> any("US" in rule.label for rule in load_library())
    True
    """
    return list(_library())


def load_rules(path: str | Path | None) -> list[BurnedInRule]:
    """Load rules: the bundled library for ``None``, else a CTP-format script file.

    :param path: a DicomPixelAnonymizer script, or ``None`` for :func:`load_library`.
    :raises BurnedInRuleError: if the file has a syntax error; the message names the file and line.
    """
    if path is None:
        return load_library()
    path = Path(path)
    return parse_script(path.read_text(encoding="utf-8", errors="replace"), source=str(path))


# --------------------------------------------------------------------------------------------------
# Matching


def _text(value: object) -> str:
    """One value as CTP would print it; bytes are read as Latin-1 with padding removed."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1").rstrip("\x00 ")
    return str(value)


def _attribute_text(ds: Dataset, tags: tuple[int, ...]) -> str:
    """The attribute's value as text; missing, sequence or unreadable values read as ``""``."""
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence as DicomSequence

    current: Dataset = ds
    try:
        for depth, tag in enumerate(tags):
            last = depth == len(tags) - 1
            container = getattr(current, "file_meta", None) if tag >> 16 == 0x0002 else current
            if container is None or tag not in container:
                return ""
            value = container[tag].value
            if isinstance(value, DicomSequence):
                if last or len(value) == 0:
                    return ""
                current = value[0]
                continue
            if not last:
                return ""
            if isinstance(value, MultiValue | list | tuple):
                return "\\".join(_text(item) for item in value)
            return _text(value)
    except Exception:  # an odd header must not stop de-identification; CTP reads it as "" too
        return ""
    return ""


_Predicate = Callable[[Callable[[tuple[int, ...]], str]], bool]
_COMPILED: dict[Condition, _Predicate] = {}


def _compile(condition: Condition) -> _Predicate:
    """Turn a condition tree into nested closures once, so evaluating it per image does no type dispatch."""
    if condition in _COMPILED:
        return _COMPILED[condition]
    predicate: _Predicate
    if isinstance(condition, Term):
        method, tags, argument = METHODS[condition.method], condition.tags, condition.argument

        def predicate(lookup: Callable[[tuple[int, ...]], str]) -> bool:
            return method(lookup(tags), argument)

    elif isinstance(condition, Not):
        inner = _compile(condition.operand)

        def predicate(lookup: Callable[[tuple[int, ...]], str]) -> bool:
            return not inner(lookup)

    elif isinstance(condition, And | Or):
        parts = tuple(_compile(op) for op in condition.operands)
        combine = all if isinstance(condition, And) else any

        def predicate(lookup: Callable[[tuple[int, ...]], str]) -> bool:
            return combine(part(lookup) for part in parts)

    else:
        value = condition.value

        def predicate(lookup: Callable[[tuple[int, ...]], str]) -> bool:
            return value

    _COMPILED[condition] = predicate
    return predicate


_RULE_SETS: dict[int, tuple[Sequence[BurnedInRule], list[tuple[BurnedInRule, _Predicate]]]] = {}


def _predicates(rules: Sequence[BurnedInRule]) -> list[tuple[BurnedInRule, _Predicate]]:
    """Each rule with its compiled condition, compiled once per rule list (an engine keeps its list)."""
    cached = _RULE_SETS.get(id(rules))
    if cached is None or cached[0] is not rules:
        cached = (rules, [(rule, _compile(rule.condition)) for rule in rules])
        _RULE_SETS[id(rules)] = cached
    return cached[1]


def matching_rules(ds: Dataset, rules: Sequence[BurnedInRule]) -> list[BurnedInRule]:
    """Return the rules whose condition holds for ``ds`` (the original header), in rule order.

    :param ds: the dataset before de-identification.
    :param rules: rules from :func:`load_rules`.
    """
    cache: dict[tuple[int, ...], str] = {}

    def lookup(tags: tuple[int, ...]) -> str:
        if tags not in cache:
            cache[tags] = _attribute_text(ds, tags)
        return cache[tags]

    return [rule for rule, predicate in _predicates(rules) if predicate(lookup)]


def match_regions(ds: Dataset, rules: Sequence[BurnedInRule]) -> list[Region]:
    """Return the regions of every matching rule, deduplicated, in rule order.

    CTP stops at the first matching rule; we take the union, so a more specific rule listed after a
    general one (e.g. the second ADAC rule in the CTP library) still adds its regions.

    :param ds: the dataset before de-identification.
    :param rules: rules from :func:`load_rules`.

    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.Manufacturer = "ADAC"
    >>> ds.Rows, ds.Columns = 832, 1024
    >>> len(match_regions(ds, load_library()))
    2
    """
    regions: dict[Region, None] = {}
    for rule in matching_rules(ds, rules):
        regions.update(dict.fromkeys(rule.regions))
    return list(regions)


# --------------------------------------------------------------------------------------------------
# Blanking

#: Photometric interpretations ``Dataset.set_pixel_data`` can write.
_SET_PIXEL_DATA_PI = frozenset({"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422"})
_DECODER_HELP = (
    "install the codecs extra (pip install 'airflow-imaging-privacy[codecs]': pylibjpeg with its libjpeg, "
    "openjpeg and rle plugins) or convert the file to an uncompressed transfer syntax first"
)


def _clip(regions: Sequence[Region], rows: int, columns: int) -> list[tuple[int, int, int, int]]:
    """Clip rectangles to the image as (row0, row1, col0, col1); drop those left empty."""
    boxes = []
    for region in regions:
        row0, row1 = min(region.y, rows), min(region.y + region.height, rows)
        col0, col1 = min(region.x, columns), min(region.x + region.width, columns)
        if row0 < row1 and col0 < col1:
            boxes.append((row0, row1, col0, col1))
    return boxes


def _syntax_name(uid: str) -> str:
    """The transfer syntax's dictionary name; never the raw value, which came from the file."""
    from pydicom.uid import UID

    name = UID(uid).name
    return "this transfer syntax" if name == str(uid) else f"the {name} transfer syntax"


def _darkest_palette_index(ds: Dataset, bits_stored: int) -> int:
    """The stored value whose palette colour is darkest: black for PALETTE COLOR images."""
    import numpy as np
    from pydicom.pixels.processing import apply_color_lut

    candidates = np.arange(1 << min(bits_stored, 16), dtype=np.uint16 if bits_stored > 8 else np.uint8)
    try:
        rgb = apply_color_lut(candidates, ds).astype(np.int64)
    except Exception:
        raise BurnedInError(
            "PALETTE COLOR image has no usable Palette Color Lookup Table, so black cannot be chosen; "
            "fix the (0028,1101-1203) elements or quarantine the file"
        ) from None
    luminance = rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114
    return int(np.argmin(luminance))


def _blank_values(ds: Dataset, photometric: str, bits_stored: int, signed: bool, samples: int) -> list[int]:
    """Display-black per sample for the decoded photometric interpretation."""
    if photometric == "MONOCHROME2":
        return [-(1 << (bits_stored - 1)) if signed else 0]
    if photometric == "MONOCHROME1":
        return [(1 << (bits_stored - 1)) - 1 if signed else (1 << bits_stored) - 1]
    if photometric == "RGB":
        return [0] * samples
    if photometric in ("YBR_FULL", "YBR_FULL_422") and samples == 3:
        return [0, 1 << (bits_stored - 1), 1 << (bits_stored - 1)]
    if photometric == "PALETTE COLOR":
        return [_darkest_palette_index(ds, bits_stored)]
    raise BurnedInError(
        "the decoded Photometric Interpretation is retired or unsupported for masking (supported: "
        "MONOCHROME1, MONOCHROME2, PALETTE COLOR, RGB, YBR_FULL); convert the image or quarantine it"
    )


def _decode(ds: Dataset) -> tuple[np.ndarray, dict[str, str | int]]:
    """Decode all frames (YCbCr converted to RGB); errors never carry dataset values."""
    from pydicom.pixels.decoders.base import get_decoder

    file_meta = getattr(ds, "file_meta", None)
    uid = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if not uid:
        raise BurnedInError(
            "the dataset has no (0002,0010) Transfer Syntax UID, so its Pixel Data cannot be decoded; "
            "set ds.file_meta.TransferSyntaxUID"
        )
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise BurnedInError(
            f"pydicom has no pixel decoder for {_syntax_name(uid)}; convert the file to an uncompressed "
            "transfer syntax first (e.g. gdcmconv --raw)"
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise BurnedInError(f"no installed plugin can decode {_syntax_name(uid)} ({missing}); {_DECODER_HELP}")
    try:
        return decoder.as_array(ds)
    except Exception as exc:  # decoder messages may quote header values, so only the type is kept
        raise BurnedInError(
            f"the Pixel Data in {_syntax_name(uid)} could not be decoded ({type(exc).__name__}); the file "
            f"may be corrupt or need another decoder plugin (gdcm, pyjpegls); {_DECODER_HELP}"
        ) from None


def apply_regions(ds: Dataset, regions: Sequence[Region]) -> None:
    """Blank ``regions`` in the pixel data of ``ds`` in place, on every frame and sample.

    The pixels are decoded (YCbCr becomes RGB), set to display-black (0 for MONOCHROME2 and RGB,
    the most negative value for signed MONOCHROME2, the maximum for MONOCHROME1, the darkest palette
    entry for PALETTE COLOR) and written back as Explicit VR Little Endian, with Photometric
    Interpretation and Planar Configuration updated to match. Nothing else in the header changes;
    the caller records Burned In Annotation and any UID changes. Rectangles are clipped to the
    image; if none overlaps it, the dataset is left untouched.

    :param ds: a dataset with (7FE0,0010) Pixel Data and a file_meta Transfer Syntax UID.
    :param regions: rectangles from :func:`match_regions`.
    :raises BurnedInError: if there is no Pixel Data or it cannot be decoded; quarantine the file.
    """
    if not regions:
        return
    if "PixelData" not in ds:
        kind = (
            "Float or Double Float Pixel Data"
            if ("FloatPixelData" in ds or "DoubleFloatPixelData" in ds)
            else "no Pixel Data"
        )
        raise BurnedInError(
            f"the dataset has {kind} but burned-in masking needs (7FE0,0010) Pixel Data; "
            "quarantine it for manual review"
        )
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if not isinstance(rows, int) or not isinstance(columns, int):
        raise BurnedInError("(0028,0010) Rows or (0028,0011) Columns is missing; fix the Image Pixel module")
    if not _clip(regions, rows, columns):
        return

    import numpy as np

    arr, props = _decode(ds)
    photometric = str(props["photometric_interpretation"])
    samples = int(props["samples_per_pixel"])
    frames = int(props["number_of_frames"])
    rows, columns = int(props["rows"]), int(props["columns"])
    bits_allocated = int(props["bits_allocated"])
    bits_stored = int(props.get("bits_stored", bits_allocated))
    signed = arr.dtype.kind == "i"
    blank = np.array(_blank_values(ds, photometric, bits_stored, signed, samples), dtype=arr.dtype)

    # Native little-endian, C-ordered, as (frames, rows, columns, samples), so slicing covers every frame.
    pixels = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).reshape(frames, rows, columns, samples)
    for row0, row1, col0, col1 in _clip(regions, rows, columns):
        pixels[:, row0:row1, col0:col1, :] = blank

    keep_frames = "NumberOfFrames" in ds or frames > 1
    shape: tuple[int, ...] = (frames,) if keep_frames else ()
    shape += (rows, columns) if samples == 1 else (rows, columns, samples)
    pixels = pixels.reshape(shape)
    _write_pixels(ds, pixels, photometric, bits_allocated, bits_stored, samples)


def _write_pixels(
    ds: Dataset, pixels: np.ndarray, photometric: str, bits_allocated: int, bits_stored: int, samples: int
) -> None:
    """Store decoded pixels uncompressed with a consistent Image Pixel module."""
    from pydicom.pixels.utils import pack_bits
    from pydicom.uid import ExplicitVRLittleEndian

    low = 0 if pixels.dtype.kind == "u" else -(1 << (bits_stored - 1))
    high = (1 << bits_stored) - 1 if pixels.dtype.kind == "u" else (1 << (bits_stored - 1)) - 1
    fits = pixels.size == 0 or (int(pixels.min()) >= low and int(pixels.max()) <= high)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if (
        pixels.dtype.itemsize in (1, 2)
        and bits_allocated == pixels.dtype.itemsize * 8
        and photometric in _SET_PIXEL_DATA_PI
        and fits
    ):
        ds.set_pixel_data(pixels, photometric, bits_stored, generate_instance_uid=False)
        return
    # 1-bit and 32-bit data, or stored values outside Bits Stored: keep the pixel module as it is.
    data = pack_bits(pixels) if bits_allocated == 1 else pixels.tobytes()
    ds.PixelData = data + b"\x00" if len(data) % 2 else data
    element = ds["PixelData"]
    element.VR = "OB" if bits_allocated <= 8 else "OW"
    element.is_undefined_length = False
    ds.PhotometricInterpretation = photometric
    if samples > 1:
        ds.PlanarConfiguration = 0
    if ds.get("BitsStored") != bits_stored:
        ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    if ds.get("PixelRepresentation") != int(pixels.dtype.kind == "i"):
        ds.PixelRepresentation = int(pixels.dtype.kind == "i")
