"""The running average of a JSON field, per key: for each input record (a JSON object keyed by,
say, its sensor), one output with the same key and the average of the field over every record
of that key so far, as ``{"average": 21.25, "count": 4}``.

The sum and count of each key live in the store ``sums`` (deploy with ``"stores": ["sums"]``),
so the averages survive restarts and crashes, and under ``exactly_once`` no reading is counted
twice. Config: ``field`` (default ``value``), the field to average. A record without a key, or
whose field is not a number, fails: it goes to the dead-letter topic and leaves the average as
it was.
"""

import weir

sums = weir.Store("sums")
field = "value"


def init(config):
    global field
    field = config.get("field", "value")


def process(record, out):
    if record.key is None:
        raise ValueError("a reading needs a key (the sensor it is from)")
    reading = record.json()[field]
    if isinstance(reading, bool) or not isinstance(reading, (int, float)):
        raise ValueError("field %r is %r, not a number" % (field, reading))
    total = sums.get_json(record.key) or {"sum": 0, "count": 0}
    total["sum"] += reading
    total["count"] += 1
    sums.set(record.key, total)
    out.emit({"average": total["sum"] / total["count"], "count": total["count"]}, key=record.key)
