// Enriches orders with their customer: a stream-table join.
//
// `customers` is a topic read as a table (deploy with "tables": ["customers"]): the latest
// value of each key, a customer id, is that customer as JSON. Each order is a JSON object with
// a `customer_id`; the processor adds `customer` (the row, or null when the table has none
// yet) and `priority` (true for customers of the `tier` named by the config parameter
// `priority_tier`, default "gold"). The orders and the table are keyed by customer id, so the
// order and its customer are in the same partition (the broker checks the partition counts
// match at deploy).
//
// An order that is not JSON, or has no customer_id, fails: it goes to the dead-letter topic
// with the reason.

const customers = weir.table("customers");
let priorityTier = "gold";

export function init(config) {
  if (config.priority_tier !== undefined) priorityTier = config.priority_tier;
}

export function process(record, out) {
  const order = record.json();
  if (order === null || typeof order !== "object" || order.customer_id === undefined) {
    throw new Error("an order needs a customer_id");
  }
  const customer = customers.lookupJson(String(order.customer_id));
  order.customer = customer;
  order.priority = customer !== null && customer.tier === priorityTier;
  out.emit(order, { key: record.key, headers: record.headers });
}
