"""JSON that keeps money exact in both directions.

Decimals are written as JSON numbers from their exact digits (`87.49`, never a
float's approximation) and numbers are read back as `Decimal`.
"""

import json
from decimal import Decimal
from typing import Any

import orjson

from purchases_project.rules import UnrepresentableNumber, decimal_or_text


def _default(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data: Any, *, indent: bool = False) -> bytes:
    return orjson.dumps(data, default=_default, option=orjson.OPT_INDENT_2 if indent else None)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_float=decimal_or_text, parse_constant=_reject_constant)


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as a Decimal; NaN and Infinity are refused.

    Whatever the input, a failure is a ValueError: nesting too deep for the parser
    included. A number whose exponent no Decimal holds becomes an
    `UnrepresentableNumber`, which the price rule refuses with a clear reason.
    """
    if isinstance(text, bytes | bytearray):
        # What json.loads does with bytes: UTF-8, -16 or -32, told apart by the first bytes.
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def holds_unrepresentable(data: Any) -> bool:
    """Whether parsed JSON holds an `UnrepresentableNumber` anywhere (walked without recursion:
    the parser allows nesting deeper than Python's stack would)."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, UnrepresentableNumber):
            return True
    return False
