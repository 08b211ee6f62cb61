"""The purchase rules, defined once.

Each rule is a pattern or a bound written here a single time and used twice:
by the code that validates (the storefront's `/buy` and reads, the ledger's
reads, the consumer's events) and by the JSON Schema fragments below, which
both services' OpenAPI documents are built from. Schema-driven fuzzing accepts
every value the schema admits and expects a 4xx for every value it does not
(tests/fuzz), so the two cannot drift apart unnoticed.

Patterns are written in the common subset of Python's `re` and ECMA-262 (what
JSON Schema validators read, with Unicode on as JSON Schema asks): ASCII classes,
`\\uXXXX` escapes, characters beyond the BMP as themselves, no lookaround. The code
matches them with `fullmatch`.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

REQUIRED_FIELDS = ("username", "userid", "price")
MAX_NAME_LENGTH = 200
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_PRICE_TEXT_LENGTH = 64  # a price written as a string; bounds the pattern's work
MAX_PRICE_DIGITS = 9  # whole digits below the maximum
MAX_PRICE = Decimal(10) ** MAX_PRICE_DIGITS
PRICE_PLACES = 2
CENTS = Decimal(1).scaleb(-PRICE_PLACES)
MAX_PRICE_EXPONENT = 9  # "1e2" is a price; "1e-9" .. "1e9" is the range of exponents written

NOT_A_NUMBER = "Price must be a valid number"
NEGATIVE = "Price cannot be negative"
TOO_LARGE = f"Price cannot be above {MAX_PRICE}"
TOO_PRECISE = f"Price cannot have more than {PRICE_PLACES} decimal places"
EXPONENT_RANGE = f"Price exponent must be between -{MAX_PRICE_EXPONENT} and {MAX_PRICE_EXPONENT}"
PRICE_TEXT_TOO_LONG = f"Price written as a string must be at most {MAX_PRICE_TEXT_LENGTH} characters"

# An Idempotency-Key: printable ASCII (space to tilde), 1 to MAX_IDEMPOTENCY_KEY_LENGTH of them.
IDEMPOTENCY_KEY_PATTERN = r"^[ -~]+$"
IDEMPOTENCY_KEY_LENGTH_RULE = f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
# Web servers hand a header value that is not ASCII over as an empty one (granian does), so
# an empty key is told the same: it holds none of the characters a key is made of.
IDEMPOTENCY_KEY_CHARACTERS_RULE = (
    "Idempotency-Key must hold printable ASCII characters only (letters, digits, punctuation, "
    "space), at least one"
)

# A userid goes into URL paths: letters, digits and -_.@:+~, and not dots alone
# ("." and ".." are path segments that HTTP clients remove).
USERID_CHARACTERS = r"A-Za-z0-9\-_.@:+~"
USERID_PATTERN = rf"^[.]*[A-Za-z0-9\-_@:+~][{USERID_CHARACTERS}]*$"
USERID_RULE = "userid may contain only letters, digits and -_.@:+~, and not only dots"

# A username is printable text: no control, format (invisible) or line-separator characters
# (Unicode categories Cc, Cf, Zl, Zp) in any plane. Characters beyond the Basic Multilingual
# Plane are written as themselves (Python's `\U` and ECMA-262's `\u{...}` escapes differ),
# so the pattern holds them as single code points for both.
USERNAME_FORBIDDEN = (
    r"\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2"
    r"\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
USERNAME_PATTERN = rf"^[^{USERNAME_FORBIDDEN}]+$"

_ASCII_SPACE = "[ \\t\\n\\r]*"


def _digits(low: int, high: int) -> str:
    """`[0-9]` repeated low to high times, as short as a regex says it."""
    if high <= 0:
        return ""
    return "[0-9]" + (f"{{{high}}}" if low == high else f"{{{low},{high}}}")


def _price_string_pattern() -> str:
    """The strings that hold a price: ASCII digits, at most two places, 0 to MAX_PRICE.

    One alternative per written exponent e, since the exponent moves digits
    across the decimal point: the integer part may have MAX_PRICE_DIGITS - e
    digits, a non-zero fraction PRICE_PLACES + e, and below -PRICE_PLACES an
    integer must end in enough zeros. Zero may be written with either sign.
    """
    zero = r"[+-]?(?:0+(?:\.0*)?|\.0+)(?:[eE][+-]?[0-9])?"
    forms = [zero]
    for e in range(-MAX_PRICE_EXPONENT, MAX_PRICE_EXPONENT + 1):
        whole_digits = MAX_PRICE_DIGITS - e
        fraction_digits = PRICE_PLACES + e
        trailing_zeros = "0" * max(0, -e - PRICE_PLACES)
        # exactly the maximum, e.g. 1000000000 or 1e9
        mantissas = [f"1{'0' * whole_digits}(?:\\.0*)?"]
        if whole_digits > len(trailing_zeros):  # an integer (with a fraction of zeros), e.g. 2999e-2
            free = whole_digits - 1 - len(trailing_zeros)
            mantissas.append(f"[1-9]{_digits(0, free)}{trailing_zeros}(?:\\.0*)?")
        if fraction_digits >= 1:  # a fraction whose last significant digit stays within the places
            whole = f"(?:[1-9]{_digits(0, whole_digits - 1)})?" if whole_digits >= 1 else ""
            mantissas.append(f"{whole}\\.{_digits(0, fraction_digits - 1)}[1-9]0*")
        sign = "\\+?" if e > 0 else "-"
        exponent = "(?:[eE][+-]?0)?" if e == 0 else f"[eE]{sign}{abs(e)}"
        forms.append(f"\\+?0*(?:{'|'.join(mantissas)}){exponent}")
    return f"^{_ASCII_SPACE}(?:{'|'.join(forms)}){_ASCII_SPACE}$"


PRICE_STRING_PATTERN = _price_string_pattern()
# Any decimal number in ASCII, to tell "not a number" from "out of range" in errors.
_NUMBER = re.compile(r"[ \t\n\r]*([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?[ \t\n\r]*")

_USERID = re.compile(USERID_PATTERN)
_USERNAME = re.compile(USERNAME_PATTERN)
_PRICE_STRING = re.compile(PRICE_STRING_PATTERN)
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_SURROGATES = re.compile("[\ud800-\udfff]")


class InvalidPurchase(ValueError):
    """A purchase that breaks the rules; the message is the client-facing text."""


@dataclass(frozen=True, slots=True)
class UnrepresentableNumber:
    """A JSON number whose exponent no Decimal holds (`1e99999999999999999999`), kept as its text."""

    text: str


def missing_fields(data: dict) -> list[str]:
    return [name for name in REQUIRED_FIELDS if data.get(name) is None]


def _amount_problem(price: Decimal) -> str | None:
    if price < 0:
        return NEGATIVE
    if price > MAX_PRICE:
        return TOO_LARGE
    if price != price.quantize(CENTS):
        return TOO_PRECISE
    return None


def _number_text_problem(text: str) -> str:
    """Why a number written as text is not a price (it did not match the price pattern)."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        return NOT_A_NUMBER
    sign, mantissa, exponent = match.groups()
    if not mantissa.strip("0."):
        return EXPONENT_RANGE  # zero, with an exponent longer than the pattern allows
    if sign == "-":
        return NEGATIVE
    if exponent is not None and len(exponent.lstrip("+-").lstrip("0")) > 6:  # beyond any Decimal
        return TOO_PRECISE if exponent.startswith("-") else TOO_LARGE
    return _amount_problem(Decimal(f"{mantissa}e{exponent or 0}")) or EXPONENT_RANGE


def parse_price(value) -> Decimal:
    """The price as an exact Decimal with two places, or InvalidPurchase.

    A JSON number (parsed as Decimal or int) or a string of ASCII digits; floats,
    booleans and everything else are not numbers.
    """
    if isinstance(value, UnrepresentableNumber):
        raise InvalidPurchase(_number_text_problem(value.text))
    if isinstance(value, str):
        if len(value) > MAX_PRICE_TEXT_LENGTH:  # before any pattern: their work grows with the text
            raise InvalidPurchase(PRICE_TEXT_TOO_LONG)
        if not _PRICE_STRING.fullmatch(value):
            raise InvalidPurchase(_number_text_problem(value))
        return abs(Decimal(value.strip(" \t\n\r")).quantize(CENTS))
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise InvalidPurchase(NOT_A_NUMBER)
    price = Decimal(value)
    if not price.is_finite():
        raise InvalidPurchase(NOT_A_NUMBER)
    if problem := _amount_problem(price):
        raise InvalidPurchase(problem)
    return abs(price.quantize(CENTS))  # abs() turns -0.00 into 0.00


def _check_text(field: str, value) -> str:
    if not isinstance(value, str):
        raise InvalidPurchase(f"{field} must be a string")
    if not value:
        raise InvalidPurchase(f"{field} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidPurchase(f"{field} must be at most {MAX_NAME_LENGTH} characters")
    if _SURROGATES.search(value):  # half of a UTF-16 pair: not text (JSON's "\ud800" makes one)
        raise InvalidPurchase(f"{field} must be valid Unicode text")
    return value


def parse_username(value) -> str:
    value = _check_text("username", value)
    if not _USERNAME.fullmatch(value):
        raise InvalidPurchase("username must not contain control characters")
    return value


def parse_userid(value) -> str:
    value = _check_text("userid", value)
    if not _USERID.fullmatch(value):
        raise InvalidPurchase(USERID_RULE)
    return value


def parse_idempotency_key(value: str | None) -> str | None:
    """The header's value as sent (None when absent), or InvalidPurchase with the rule it breaks."""
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidPurchase(IDEMPOTENCY_KEY_CHARACTERS_RULE)
    if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidPurchase(IDEMPOTENCY_KEY_LENGTH_RULE)
    return value


def decimal_or_text(text: str) -> Decimal | UnrepresentableNumber:
    """A JSON number's text as an exact Decimal (the JSON parser's `parse_float`)."""
    try:
        return Decimal(text)
    except InvalidOperation:
        if not text.lower().split("e")[0].strip("+-0."):
            return Decimal(0)  # zero, whatever its exponent
        return UnrepresentableNumber(text)


# JSON Schema, from the same patterns and bounds.
USERID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": USERID_PATTERN,
    "description": "Letters, digits and -_.@:+~ (user ids, UUIDs, e-mail addresses), not only dots",
    "example": "user123",
}
USERNAME_SCHEMA = {
    "type": "string",
    # The length lives in the pattern, not in minLength/maxLength: schemathesis folds those into
    # the pattern and writes the characters beyond the BMP back as Python's `\U` escapes, which
    # the ECMA-262 validators it checks with refuse. Both count code points, as len() does.
    "pattern": rf"^[^{USERNAME_FORBIDDEN}]{{1,{MAX_NAME_LENGTH}}}$",
    "description": (
        f"Printable text, 1 to {MAX_NAME_LENGTH} characters: no control, format or line-separator "
        "characters (Unicode Cc, Cf, Zl, Zp) in any plane"
    ),
    "example": "john",
}
PRICE_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": int(MAX_PRICE), "multipleOf": float(CENTS)},
        {"type": "string", "maxLength": MAX_PRICE_TEXT_LENGTH, "pattern": PRICE_STRING_PATTERN},
    ],
    "description": (
        f"0 to {MAX_PRICE:,}, at most {PRICE_PLACES} decimal places: a JSON number, or a string "
        f'of ASCII digits holding one ("29.99", "1e2"; exponents -{MAX_PRICE_EXPONENT} to '
        f"{MAX_PRICE_EXPONENT}; at most {MAX_PRICE_TEXT_LENGTH} characters)"
    ),
    "example": 29.99,
}
PURCHASE_REQUEST_SCHEMA = {
    "type": "object",
    "required": list(REQUIRED_FIELDS),
    "properties": {"username": USERNAME_SCHEMA, "userid": USERID_SCHEMA, "price": PRICE_SCHEMA},
}
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
    "pattern": IDEMPOTENCY_KEY_PATTERN,
}
