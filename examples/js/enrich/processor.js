// Enriches orders and routes them by value.
//
// An order is a JSON object with `items`, a list of `{"sku", "price", "qty"}`. The processor
// adds `total` (sum of price x qty, rounded to cents), `item_count` (sum of qty),
// `received_at` (the record's timestamp as ISO-8601) and `tier`: "priority" when the total
// reaches the `threshold` config parameter (default 100), else "standard". Priority orders go
// to the first output topic, standard ones to the second; key and headers are kept, and a
// `tier` header is added.
//
// A value that is not JSON, or has no `items` list, or an item without a numeric price and
// quantity, fails: the record goes to the dead-letter topic with the reason.

let threshold = 100;

export function init(config) {
  if (config.threshold !== undefined) {
    threshold = Number(config.threshold);
    if (!Number.isFinite(threshold)) throw new Error(`threshold must be a number, got "${config.threshold}"`);
  }
  console.log(`priority orders from ${threshold}`);
}

export function process(record, out) {
  const order = record.json();
  if (order === null || typeof order !== "object" || !Array.isArray(order.items)) {
    throw new Error("an order needs an items list");
  }
  let total = 0;
  let count = 0;
  order.items.forEach((item, i) => {
    if (typeof item.price !== "number" || typeof item.qty !== "number") {
      throw new Error(`item ${i} needs a numeric price and qty`);
    }
    total += item.price * item.qty;
    count += item.qty;
  });
  order.total = Math.round(total * 100) / 100;
  order.item_count = count;
  order.received_at = new Date(record.timestamp).toISOString();
  order.tier = order.total >= threshold ? "priority" : "standard";
  const headers = { ...record.headers, tier: order.tier };
  out.emit(order, { key: record.key, headers, to: order.tier === "priority" ? 0 : 1 });
}
