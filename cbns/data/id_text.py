"""How an id is written: one rule for the loaders and for serving (the ids a recommendation is asked for).

* **Integer ids** (LightGCN text; a run without an id file): a run of the ASCII digits ``0-9``,
  at most :data:`MAX_ID` (an embedding table cannot be larger). No sign, no spaces, no
  underscores, no other scripts' digits: ``+1``, `` 7 ``, ``1_0`` and ``٣`` are not ids.
* **Text ids** (tables; a run with ``user_ids.txt`` / ``item_ids.txt``): the text minus surrounding
  whitespace (what ``str.strip`` removes); not empty and without control characters or line
  breaks (an id file holds one id per line).

The readers apply these rules column-wise (:mod:`cbns.data.readers.lightgcn`,
:mod:`cbns.data.readers.id_columns`); :func:`integer_id` and :func:`text_id` are the same rules
for one value.
"""
from __future__ import annotations

import re

MAX_ID = 2**31 - 1
#: Characters a text id may not contain (after stripping): C0 and C1 controls, line/paragraph separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DIGITS = re.compile(r"[0-9]+")


def integer_id(value) -> int | None:
    """The id ``value`` spells (an int, a numpy integer, or its decimal text), or None if it is not one."""
    if isinstance(value, bool):
        return None
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu":
        value = int(value)
    if isinstance(value, int):
        return value if 0 <= value <= MAX_ID else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
        return number if number <= MAX_ID else None
    return None


def text_id(value) -> str | None:
    """The text id ``value`` stands for (stripped), or None if it is empty or holds a control character."""
    text = str(value).strip()
    return None if text == "" or CONTROL.search(text) else text
