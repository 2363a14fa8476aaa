"""JSON Schema validation keywords compiled into plain functions over exact values.

Scalars are checked as they are translated, in both directions, so the JSON side is validated
without a second pass. A scalar check receives the string value (strings) or the JSON literal
(numbers: ``"0.10"``; booleans: ``"true"``) and returns a problem description or None. Numbers
are compared as :class:`~decimal.Decimal`, so ``0.1`` is ``0.10`` and big integers are exact,
as JSON Schema's value semantics require. Equivalence with the ``jsonschema`` library is proved
by ``tests/translate/test_checks_equivalence.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, cast

from proxy.translate.lexical import to_decimal
from proxy.translate.rules import T_INTEGER, T_NUMBER, T_STRING

__all__ = [
    "ARRAY_KEYWORDS",
    "NUMBER_KEYWORDS",
    "OBJECT_KEYWORDS",
    "STRING_KEYWORDS",
    "compile_scalar_checks",
    "is_multiple",
    "uniqueness_key",
]

STRING_KEYWORDS = frozenset({"minLength", "maxLength", "pattern"})
NUMBER_KEYWORDS = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
)
ARRAY_KEYWORDS = frozenset({"minItems", "maxItems", "uniqueItems"})
OBJECT_KEYWORDS = frozenset({"minProperties", "maxProperties", "dependentRequired"})
ANY_KEYWORDS = frozenset({"enum", "const"})

ScalarCheck = Callable[[str], "str | None"]


def _dec(value: Any) -> Decimal:
    # Schema numbers arrive from the JSON/YAML loader as int or float; str() of a float is its
    # shortest round-trip repr, which is the literal the schema author wrote in practice.
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def _enum_check(values: Sequence[Any], type_: int, kw: str) -> ScalarCheck:
    shown = ", ".join(_show(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
    if type_ == T_STRING:
        allowed_s = frozenset(v for v in values if isinstance(v, str))

        def check(v: str) -> str | None:
            return None if v in allowed_s else f"{_show(v)} is not one of {shown} ({kw})"

    elif type_ in (T_NUMBER, T_INTEGER):
        allowed_n = frozenset(_dec(v) for v in values if _is_number(v))

        def check(v: str) -> str | None:
            return None if to_decimal(v) in allowed_n else f"{v} is not one of {shown} ({kw})"

    else:
        allowed_b = frozenset(("true" if v else "false") for v in values if isinstance(v, bool))

        def check(v: str) -> str | None:
            return None if v in allowed_b else f"{v} is not one of {shown} ({kw})"

    return check


def _show(v: object) -> str:
    if isinstance(v, str):
        return repr(v) if len(v) <= 40 else repr(v[:37] + "...")
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


def _string_check(kw: str, value: Any) -> ScalarCheck:
    if kw == "minLength":
        n = int(value)
        return lambda v: None if len(v) >= n else f"shorter than {n} characters (minLength)"
    if kw == "maxLength":
        n = int(value)
        return lambda v: None if len(v) <= n else f"longer than {n} characters (maxLength)"
    # pattern: ECMA-262 regular expressions are matched with Python's re, as jsonschema does.
    rx = re.compile(value)
    return lambda v: None if rx.search(v) else f"does not match pattern {value!r}"


def _number_check(kw: str, value: Any) -> ScalarCheck:
    bound = _dec(value)
    fb = float(bound)
    # float() is monotonic, so a strict float comparison decides exactly; only a float tie
    # (0.1000000000000000001 vs 0.1) needs the Decimal comparison.
    if kw == "minimum":

        def minimum(v: str) -> str | None:
            fv = float(v)
            if fv > fb or (fv == fb and to_decimal(v) >= bound):
                return None
            return f"{v} is less than {value} (minimum)"

        return minimum
    if kw == "maximum":

        def maximum(v: str) -> str | None:
            fv = float(v)
            if fv < fb or (fv == fb and to_decimal(v) <= bound):
                return None
            return f"{v} is more than {value} (maximum)"

        return maximum
    if kw == "exclusiveMinimum":

        def exclusive_minimum(v: str) -> str | None:
            fv = float(v)
            if fv > fb or (fv == fb and to_decimal(v) > bound):
                return None
            return f"{v} is not more than {value} (exclusiveMinimum)"

        return exclusive_minimum
    if kw == "exclusiveMaximum":

        def exclusive_maximum(v: str) -> str | None:
            fv = float(v)
            if fv < fb or (fv == fb and to_decimal(v) < bound):
                return None
            return f"{v} is not less than {value} (exclusiveMaximum)"

        return exclusive_maximum

    def multiple(v: str) -> str | None:
        if len(v) > 1000:  # digit-by-digit work below; no real multipleOf needs this many
            return f"{v[:20]}... has too many digits to check multipleOf"
        return (
            None
            if is_multiple(to_decimal(v), bound)
            else f"{v} is not a multiple of {value} (multipleOf)"
        )

    return multiple


def _split(d: Decimal) -> tuple[int, int]:
    _, digits, exp = d.as_tuple()
    coef = 0
    for digit in digits:
        coef = coef * 10 + digit
    return coef, int(exp)


def _valuation(n: int, p: int) -> tuple[int, int]:
    k = 0
    while n and n % p == 0:
        n //= p
        k += 1
    return k, n


def is_multiple(d: Decimal, divisor: Decimal) -> bool:
    """Exactly whether ``d / divisor`` is an integer, without materialising ``10**exponent``
    (``1e999999999`` must not cost a gigabyte). With d = c1·10^e1 and divisor = c2·10^e2 the
    quotient is an integer iff the part of c2 coprime to 10 divides c1 and, for p in (2, 5),
    v_p(c1) + e1 - e2 >= v_p(c2)."""
    if not d.is_finite() or not divisor.is_finite() or divisor == 0:
        return False
    c1, e1 = _split(d.copy_abs())
    if c1 == 0:
        return True
    c2, e2 = _split(divisor.copy_abs())
    a2, rest = _valuation(c2, 2)
    a5, rest = _valuation(rest, 5)
    if c1 % rest:
        return False
    b2, _ = _valuation(c1, 2)
    b5, _ = _valuation(c1, 5)
    return b2 + e1 - e2 >= a2 and b5 + e1 - e2 >= a5


def compile_scalar_checks(type_: int, keywords: Sequence[tuple[str, Any]]) -> ScalarCheck | None:
    """One function for all applicable keywords of a scalar of ``type_``; None if none apply."""
    checks: list[ScalarCheck] = []
    for kw, value in keywords:
        if kw == "enum":
            checks.append(_enum_check(list(value), type_, "enum"))
        elif kw == "const":
            checks.append(_enum_check([value], type_, "const"))
        elif kw in STRING_KEYWORDS and type_ == T_STRING:
            checks.append(_string_check(kw, value))
        elif kw in NUMBER_KEYWORDS and type_ in (T_NUMBER, T_INTEGER):
            checks.append(_number_check(kw, value))
    if not checks:
        return None
    if len(checks) == 1:
        check = checks[0]
    else:

        def check(v: str) -> str | None:
            for c in checks:
                problem = c(v)
                if problem is not None:
                    return problem
            return None

    # A regular expression costs ten times a dict lookup and documents repeat such values
    # (currencies, country codes); the numeric checks are cheaper than remembering them.
    if type_ == T_STRING and any(kw == "pattern" for kw, _ in keywords):
        return _memoised(check)
    return check


_MISS: Any = object()
_MEMO_SIZE = 4096
_MEMO_VALUE_LEN = 64


def _memoised(check: ScalarCheck) -> ScalarCheck:
    """Remember verdicts for short values. Documents repeat them (currencies, statuses,
    quantities), and a regex or Decimal comparison costs ten times a dict lookup. Pure
    function of the value, bounded size; dict operations are atomic, so threads may share it."""
    memo: dict[str, str | None] = {}
    get = memo.get

    def cached(v: str) -> str | None:
        verdict = get(v, _MISS)
        if verdict is _MISS:
            verdict = check(v)
            if len(v) <= _MEMO_VALUE_LEN and len(memo) < _MEMO_SIZE:
                memo[v] = verdict
        return cast("str | None", verdict)

    return cached


# Tags for canonical values (kept distinct so that "1" the string never equals 1 the number).
_N, _S, _B, _Z, _A, _O = range(6)


def uniqueness_key(value: Any, number_type: type) -> Any:
    """Canonical hashable key of a parsed JSON value whose numbers are ``number_type`` (a str
    subclass carrying the literal) and whose objects are lists of (key, value) pairs or dicts."""
    if value is None:
        return (_Z,)
    if value is True or value is False:
        return (_B, value)
    if isinstance(value, number_type):
        return (_N, to_decimal(str(value)))  # Decimal hashes by value: 1.0 == 1
    if isinstance(value, str):
        return (_S, value)
    if isinstance(value, dict):
        return (_O, frozenset((k, uniqueness_key(v, number_type)) for k, v in value.items()))
    if isinstance(value, list) and getattr(value, "is_object", False):
        return (_O, frozenset((k, uniqueness_key(v, number_type)) for k, v in value))
    return (_A, tuple(uniqueness_key(v, number_type) for v in value))
