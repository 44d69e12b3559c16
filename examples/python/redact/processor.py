"""Masks e-mail addresses and card numbers in JSON values.

Every string in the value (at any depth) is scanned. An e-mail address keeps its first
character and its domain (``alice@example.com`` -> ``a***@example.com``); a card number (13 to
19 digits, spaces or dashes between them, passing the Luhn check) keeps its last four digits
(``4111 1111 1111 1111`` -> ``**** **** **** 1111``). Digit runs that fail the Luhn check, such
as order numbers, are left alone.

Config: ``fields`` (optional), a comma-separated list of top-level fields to scan; all of them
when absent. A value that is not a JSON object fails: it goes to the dead-letter topic with
the reason.
"""

import json
import re

import weir

EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")

fields = None
redacted = 0


def init(config):
    global fields
    names = [f.strip() for f in config.get("fields", "").split(",") if f.strip()]
    fields = set(names) or None
    weir.log("redacting %s" % (", ".join(sorted(fields)) if fields else "every field"))


def luhn_ok(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def mask_card(match):
    text = match.group(0)
    digits = [c for c in text if c.isdigit()]
    if not luhn_ok(digits):
        return text
    keep = len(digits) - 4
    out, seen = [], 0
    for c in text:
        if c.isdigit():
            out.append("*" if seen < keep else c)
            seen += 1
        else:
            out.append(c)
    return "".join(out)


def mask(value):
    if isinstance(value, str):
        value = EMAIL.sub(lambda m: m.group(1) + "***@" + m.group(2), value)
        return CARD.sub(mask_card, value)
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    return value


def process(record, out):
    doc = record.json()
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object, got %s" % type(doc).__name__)
    for name in doc:
        if fields is None or name in fields:
            doc[name] = mask(doc[name])
    out.emit(json.dumps(doc, separators=(",", ":")), key=record.key, headers=record.headers)
