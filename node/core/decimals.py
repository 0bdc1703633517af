"""Exact decimal strings at the edges, integer units inside.

Prices and quantities travel as decimal strings ("12.50") and live in the engine as whole
numbers of ticks and lots. Binary floats never appear: a number is parsed from its text into
(mantissa, exponent) and divided exactly by the unit, so "0.1" is 1 tick of 0.1, never 0.1000000001.
"""

from __future__ import annotations

from decimal import Decimal

MAX_DECIMAL_CHARS = 40
"""Longer inputs are refused outright: they cannot be a sensible price or quantity."""


def parse_decimal(text: str) -> tuple[int, int] | None:
    """Return (mantissa, exponent) with value = mantissa / 10**exponent, or None if not a number.

    Accepts plain non-negative or negative decimals ("12", "0.5", "-3", ".5"), nothing else:
    no exponents, spaces, signs other than a leading '-', or non-ASCII digits.
    """
    if not text or len(text) > MAX_DECIMAL_CHARS or not text.isascii():
        return None
    negative = text[0] == "-"
    if negative:
        text = text[1:]
    whole, _, fraction = text.partition(".")
    if not (whole or fraction):
        return None
    if (whole and not whole.isdigit()) or (fraction and not fraction.isdigit()):
        return None
    fraction = fraction.rstrip("0")
    mantissa = int(whole + fraction) if (whole or fraction) else 0
    return (-mantissa if negative else mantissa), len(fraction)


def as_decimal_text(value: object) -> str | None:
    """The decimal text of a wire value: strings as they are, integers and exact decimals.

    Floats are refused (None): their text is not the number the sender meant.
    """
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")
    return None


class Unit:
    """A positive decimal step (tick or lot) and exact conversion to and from whole units."""

    __slots__ = ("_text_cache", "cache", "exponent", "mantissa", "text")

    CACHE_LIMIT = 65_536
    """Parsed-text cache entries kept before the cache is emptied (flows repeat prices a lot)."""

    NOT_A_NUMBER = -1
    OFF_STEP = -2

    def __init__(self, text: str) -> None:
        parsed = parse_decimal(text)
        if parsed is None or parsed[0] <= 0:
            raise ValueError(f"must be a positive decimal, got {text!r}")
        self.mantissa, self.exponent = parsed
        self.text = text
        self.cache: dict[str, int] = {}
        """Parsed text -> result of `units`; read directly by the validation hot path."""
        self._text_cache: dict[int, str] = {}

    def units(self, text: str) -> int:
        """Whole units in `text`: > 0, or NOT_A_NUMBER (not a number or <= 0), or OFF_STEP."""
        cached = self.cache.get(text)
        if cached is not None:
            return cached
        result = self._units_uncached(text)
        if len(self.cache) >= self.CACHE_LIMIT:
            self.cache.clear()
        self.cache[text] = result
        return result

    def _units_uncached(self, text: str) -> int:
        parsed = parse_decimal(text)
        if parsed is None or parsed[0] <= 0:
            return self.NOT_A_NUMBER
        mantissa, exponent = parsed
        numerator = mantissa * 10**self.exponent
        denominator = self.mantissa * 10**exponent
        whole, rest = divmod(numerator, denominator)
        return self.OFF_STEP if rest else whole

    def floor_units(self, text: str) -> int:
        """Whole units at or below a non-negative decimal (for upper bounds like max_qty)."""
        mantissa, exponent = _require(text)
        return (mantissa * 10**self.exponent) // (self.mantissa * 10**exponent)

    def ceil_units(self, text: str) -> int:
        """Whole units at or above a non-negative decimal (for lower bounds like min_qty)."""
        mantissa, exponent = _require(text)
        return -((-mantissa * 10**self.exponent) // (self.mantissa * 10**exponent))

    def text_of(self, units: int) -> str:
        """The canonical decimal text of `units` whole units ("12.5", never "12.50" or "1.25E1")."""
        cached = self._text_cache.get(units)
        if cached is not None:
            return cached
        text = format_scaled(units * self.mantissa, self.exponent)
        if len(self._text_cache) >= self.CACHE_LIMIT:
            self._text_cache.clear()
        self._text_cache[units] = text
        return text


def format_scaled(mantissa: int, exponent: int) -> str:
    """Text of mantissa / 10**exponent without trailing zeros after the point."""
    sign = "-" if mantissa < 0 else ""
    digits = str(abs(mantissa))
    if exponent <= 0:
        return sign + digits + "0" * -exponent
    digits = digits.rjust(exponent + 1, "0")
    whole, fraction = digits[:-exponent], digits[-exponent:].rstrip("0")
    return sign + whole + ("." + fraction if fraction else "")


def _require(text: str) -> tuple[int, int]:
    parsed = parse_decimal(text)
    if parsed is None or parsed[0] < 0:
        raise ValueError(f"must be a non-negative decimal, got {text!r}")
    return parsed
