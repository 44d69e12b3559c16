// Drops duplicates: a record whose id was already seen within the last `window_ms` (config,
// default 60000) is dropped; the others pass through unchanged. The id is the record's key, or
// the JSON field named by the config `field` when given.
//
// Seen ids live in the store `seen` (deploy with "stores": ["seen"]) with the timestamp they
// were first seen at; a record is a duplicate when its id was seen less than `window_ms`
// before its own timestamp. Each id sets an event-time timer `window_ms` after it was seen,
// which forgets it, so the store holds only about the last window's ids. Under exactly_once the
// decisions and the forgetting survive crashes: a duplicate never gets through twice.

const seen = weir.store("seen");
let windowMs = 60000;
let field = null;

export function init(config) {
  if (config.window_ms !== undefined) {
    windowMs = Number(config.window_ms);
    if (!Number.isFinite(windowMs) || windowMs <= 0) throw new Error(`window_ms must be a positive number of ms, got ${config.window_ms}`);
  }
  field = config.field || null;
}

function idOf(record) {
  if (field === null) {
    if (record.key === null) throw new Error("a record needs a key (its id), or deploy with config field=NAME");
    return record.key;
  }
  const id = record.json()[field];
  if (id === undefined || id === null) throw new Error(`the record has no field ${field}`);
  return String(id);
}

export function process(record, out) {
  const id = idOf(record);
  const first = seen.getText(id);
  if (first !== null && record.timestamp - Number(first) < windowMs) return; // a duplicate: drop it
  seen.set(id, String(record.timestamp));
  weir.setTimer(id, record.timestamp + windowMs, "event-time");
  out.forward(record);
}

export function onTimer(timer, out) {
  // Forget the id, unless it was seen again since this timer was set.
  const first = seen.getText(timer.key);
  if (first !== null && Number(first) + windowMs <= timer.at) seen.delete(timer.key);
}
