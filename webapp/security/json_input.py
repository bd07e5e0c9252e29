"""The one reader of JSON that clients send: request bodies and JSON-valued fields alike.

Python's json module recurses once per level of nesting, so `[[[[...]]]]` a few
thousand deep raises RecursionError, not ValueError: `request.get_json(silent=True)`
and `except ValueError` let it through as a 500. And a value nested a few hundred
deep that does parse can still overflow whatever walks it later. Here anything that
is not JSON, or is nested deeper than MAX_DEPTH, is a 400 with a message; every route
reads JSON from a request through `request_json` or `loads`.
"""
from __future__ import annotations

import json

from flask import request

from webapp.errors import ApiError

MAX_DEPTH = 32      # lists and objects inside one another; Hark's own JSON needs 4


def loads(text: str | bytes, what: str = "the JSON body", hint: str = ""):
    """The value of `text`, or an ApiError (400) "`what`: not valid JSON (...)`hint`"."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
        too_deep = True
    except ValueError as exc:        # JSONDecodeError, and UnicodeDecodeError for bytes
        detail = (f"{exc.msg} at line {exc.lineno} column {exc.colno}"
                  if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text")
        raise ApiError(400, f"{what}: not valid JSON ({detail}){hint}") from None
    else:
        too_deep = _depth_over(value, MAX_DEPTH)
    if too_deep:
        raise ApiError(400, f"{what}: nested too deeply (at most {MAX_DEPTH} levels of lists "
                            f"and objects){hint}")
    return value


def request_json(empty=None):
    """The request's body as JSON (`empty` when the body is empty), or a 400 saying why not."""
    data = request.get_data(cache=True)
    if not data.strip():
        return empty
    return loads(data)


def _depth_over(value, limit: int) -> bool:
    """Whether lists and objects nest deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False
