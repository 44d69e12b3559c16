//! The built-in aggregates' accumulators, as the bytes kept in state:
//!
//! ```text
//! count            COUNT u64 LE
//! sum, min, max    NUM (TAG u8: 0 integer, 1 float; then i64 LE or f64 LE bits)
//! avg              COUNT u64 LE, then the sum as NUM
//! count_distinct   TAG u8 0, then up to 128 distinct xxh3 hashes u64 LE, ascending (exact)
//!                  TAG u8 1, then 1024 HyperLogLog registers of one byte (p = 10)
//! ```
//!
//! Integers stay exact until a sum would overflow 64 bits; it goes on as a float then.

use serde_json::Value;

use super::spec::Op;

/// A number read from a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn from_json(v: &Value) -> Option<Self> {
        let n = v.as_number()?;
        Some(match n.as_i64() {
            Some(i) => Self::Int(i),
            None => Self::Float(n.as_f64()?),
        })
    }

    fn f64(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }

    fn add(self, o: Self) -> Self {
        match (self, o) {
            (Self::Int(a), Self::Int(b)) => a.checked_add(b).map_or(Self::Float(a as f64 + b as f64), Self::Int),
            (a, b) => Self::Float(a.f64() + b.f64()),
        }
    }

    fn put(self, out: &mut Vec<u8>) {
        match self {
            Self::Int(i) => {
                out.push(0);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Self::Float(f) => {
                out.push(1);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
        }
    }

    fn get(b: &[u8]) -> Option<Self> {
        let raw = u64::from_le_bytes(b.get(1..9)?.try_into().ok()?);
        match b[0] {
            0 => Some(Self::Int(raw as i64)),
            1 => Some(Self::Float(f64::from_bits(raw))),
            _ => None,
        }
    }
}

/// What one record adds to an accumulator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// For `count`.
    One,
    Num(Num),
    /// For `count_distinct`: the hash of the value.
    Hash(u64),
}

/// Reads what a record adds, from its value.
#[cfg(test)]
pub fn input(op: Op, path: Option<&str>, value: &[u8]) -> Result<Input, String> {
    let doc = match path {
        Some(_) => Some(super::parse(value).map_err(|e| format!("{}: {e}", op.name()))?),
        None => None,
    };
    input_from(op, path, doc.as_ref())
}

/// Reads what a record adds, from its value parsed (`doc`; `None` when `path` is).
pub fn input_from(op: Op, path: Option<&str>, doc: Option<&Value>) -> Result<Input, String> {
    let (Some(path), Some(doc)) = (path, doc) else {
        return Ok(Input::One);
    };
    let at = doc
        .pointer(path)
        .ok_or_else(|| format!("{}: the value has nothing at {path}", op.name()))?;
    if op == Op::CountDistinct {
        let canonical = serde_json::to_vec(at).unwrap_or_default();
        return Ok(Input::Hash(xxhash_rust::xxh3::xxh3_64(&canonical)));
    }
    Num::from_json(at)
        .map(Input::Num)
        .ok_or_else(|| format!("{}: the value at {path} is {}, not a number", op.name(), kind(at)))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

const EXACT_MAX: usize = 128;
const HLL_P: u32 = 10;
const HLL_M: usize = 1 << HLL_P;

/// Adds one input to `acc` (`None`: empty), returning the new accumulator.
pub fn add(op: Op, acc: Option<&[u8]>, input: Input) -> Vec<u8> {
    match (op, input) {
        (Op::Count, _) => {
            let n = acc.and_then(u64_at).unwrap_or(0) + 1;
            n.to_le_bytes().to_vec()
        }
        (Op::Sum | Op::Min | Op::Max, Input::Num(x)) => {
            let next = match acc.and_then(Num::get) {
                None => x,
                Some(old) => match op {
                    Op::Sum => old.add(x),
                    Op::Min if x.f64() < old.f64() => x,
                    Op::Max if x.f64() > old.f64() => x,
                    _ => old,
                },
            };
            let mut out = Vec::with_capacity(9);
            next.put(&mut out);
            out
        }
        (Op::Avg, Input::Num(x)) => {
            let (n, sum) = acc.and_then(avg_parts).unwrap_or((0, Num::Int(0)));
            let mut out = Vec::with_capacity(17);
            out.extend_from_slice(&(n + 1).to_le_bytes());
            sum.add(x).put(&mut out);
            out
        }
        (Op::CountDistinct, Input::Hash(h)) => distinct_add(acc.unwrap_or(&[0]), h),
        // An input of another op's kind cannot be made by `input`.
        (_, _) => acc.map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

/// Two accumulators made one (session windows that a record joins).
pub fn merge(op: Op, a: &[u8], b: &[u8]) -> Vec<u8> {
    match op {
        Op::Count => (u64_at(a).unwrap_or(0) + u64_at(b).unwrap_or(0)).to_le_bytes().to_vec(),
        Op::Sum | Op::Min | Op::Max => match Num::get(b) {
            Some(x) => add(op, Some(a), Input::Num(x)),
            None => a.to_vec(),
        },
        Op::Avg => {
            let (na, sa) = avg_parts(a).unwrap_or((0, Num::Int(0)));
            let (nb, sb) = avg_parts(b).unwrap_or((0, Num::Int(0)));
            let mut out = Vec::with_capacity(17);
            out.extend_from_slice(&(na + nb).to_le_bytes());
            sa.add(sb).put(&mut out);
            out
        }
        Op::CountDistinct => {
            if b.first() == Some(&0) {
                hashes(b).fold(a.to_vec(), |acc, h| distinct_add(&acc, h))
            } else if a.first() == Some(&0) {
                hashes(a).fold(b.to_vec(), |acc, h| distinct_add(&acc, h))
            } else {
                let mut out = a.to_vec();
                for (r, x) in out[1..].iter_mut().zip(&b[1..]) {
                    *r = (*r).max(*x);
                }
                out
            }
        }
    }
}

/// Writes the result an accumulator stands for as JSON members of the output, each after a
/// comma: `,"sum":7.5` (avg: `,"avg":2.5,"count":4`).
pub fn finish(op: Op, acc: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(op.name().as_bytes());
    out.extend_from_slice(b"\":");
    match op {
        Op::Count => put_u64(out, u64_at(acc).unwrap_or(0)),
        Op::Sum | Op::Min | Op::Max => put_num(out, Num::get(acc)),
        Op::Avg => {
            let (n, sum) = avg_parts(acc).unwrap_or((0, Num::Int(0)));
            put_num(out, (n > 0).then(|| Num::Float(sum.f64() / n as f64)));
            out.extend_from_slice(b",\"count\":");
            put_u64(out, n);
        }
        Op::CountDistinct => put_u64(out, distinct_estimate(acc)),
    }
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn put_num(out: &mut Vec<u8>, n: Option<Num>) {
    match n {
        Some(Num::Int(i)) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Some(Num::Float(f)) if f.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, &f);
        }
        _ => out.extend_from_slice(b"null"),
    }
}

fn u64_at(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

fn avg_parts(b: &[u8]) -> Option<(u64, Num)> {
    Some((u64_at(b)?, Num::get(b.get(8..)?)?))
}

fn hashes(b: &[u8]) -> impl Iterator<Item = u64> + '_ {
    b[1..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
}

fn hll_add(registers: &mut [u8], h: u64) {
    let i = (h >> (64 - HLL_P)) as usize;
    let rest = (h << HLL_P) | (1 << (HLL_P - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    registers[i] = registers[i].max(rank);
}

fn distinct_add(acc: &[u8], h: u64) -> Vec<u8> {
    if acc.first() == Some(&1) {
        // (A value of another shape is not this aggregate's: start it over rather than panic.)
        let mut out = if acc.len() == 1 + HLL_M {
            acc.to_vec()
        } else {
            hll_empty()
        };
        hll_add(&mut out[1..], h);
        return out;
    }
    let mut set: Vec<u64> = hashes(acc).collect();
    if let Err(at) = set.binary_search(&h) {
        set.insert(at, h);
    } else {
        return acc.to_vec();
    }
    if set.len() > EXACT_MAX {
        let mut out = hll_empty();
        for h in set {
            hll_add(&mut out[1..], h);
        }
        return out;
    }
    let mut out = Vec::with_capacity(1 + 8 * set.len());
    out.push(0);
    for h in set {
        out.extend_from_slice(&h.to_le_bytes());
    }
    out
}

fn hll_empty() -> Vec<u8> {
    let mut out = vec![0u8; 1 + HLL_M];
    out[0] = 1;
    out
}

fn distinct_estimate(acc: &[u8]) -> u64 {
    if acc.first() != Some(&1) {
        return (acc.len().saturating_sub(1) / 8) as u64;
    }
    let registers = &acc[1..];
    let m = HLL_M as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let sum: f64 = registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
    let raw = alpha * m * m / sum;
    let zeros = registers.iter().filter(|&&r| r == 0).count();
    let estimate = if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    };
    estimate.round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The members `finish` writes, as an object.
    fn result(op: Op, acc: &[u8]) -> Value {
        let mut out = b"{\"_\":0".to_vec();
        finish(op, acc, &mut out);
        out.push(b'}');
        serde_json::from_slice(&out).unwrap()
    }

    fn fold(op: Op, path: Option<&str>, values: &[&str]) -> Value {
        let mut acc: Option<Vec<u8>> = None;
        for v in values {
            acc = Some(add(op, acc.as_deref(), input(op, path, v.as_bytes()).unwrap()));
        }
        result(op, &acc.unwrap())
    }

    #[test]
    fn each_aggregate_folds_to_its_result() {
        let vals = [r#"{"a":3}"#, r#"{"a":-1}"#, r#"{"a":2.5}"#, r#"{"a":3}"#];
        assert_eq!(fold(Op::Count, None, &vals)["count"], 4);
        assert_eq!(fold(Op::Sum, Some("/a"), &vals)["sum"], 7.5);
        assert_eq!(fold(Op::Sum, Some("/a"), &vals[..2])["sum"], 2);
        assert_eq!(fold(Op::Min, Some("/a"), &vals)["min"], -1);
        assert_eq!(fold(Op::Max, Some("/a"), &vals)["max"], 3);
        let avg = fold(Op::Avg, Some("/a"), &vals);
        assert_eq!((avg["avg"].as_f64(), avg["count"].as_u64()), (Some(1.875), Some(4)));
        assert_eq!(fold(Op::CountDistinct, Some("/a"), &vals)["count_distinct"], 3);
    }

    #[test]
    fn sums_overflowing_64_bits_go_on_as_floats() {
        let big = format!(r#"{{"a":{}}}"#, i64::MAX);
        let out = fold(Op::Sum, Some("/a"), &[&big, &big]);
        assert_eq!(out["sum"].as_f64(), Some(2.0 * i64::MAX as f64));
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        assert!(input(Op::Sum, Some("/a"), b"nope").unwrap_err().contains("not JSON"));
        assert!(input(Op::Sum, Some("/a"), b"{}").unwrap_err().contains("nothing at /a"));
        assert!(
            input(Op::Sum, Some("/a"), br#"{"a":"1"}"#)
                .unwrap_err()
                .contains("a string, not a number")
        );
    }

    #[test]
    fn count_distinct_is_exact_to_128_then_estimates_within_ten_percent() {
        let mut acc = vec![0u8];
        for i in 0..128u64 {
            acc = distinct_add(&acc, xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()));
        }
        assert_eq!(distinct_estimate(&acc), 128);
        for i in 0..10_000u64 {
            acc = distinct_add(&acc, xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()));
        }
        let e = distinct_estimate(&acc) as f64;
        assert!((e - 10_000.0).abs() < 1000.0, "{e}");
        // Merging an exact set into an estimate, and two estimates.
        let small = distinct_add(&[0], 7);
        let merged = merge(Op::CountDistinct, &small, &acc);
        assert!((distinct_estimate(&merged) as f64 - 10_000.0).abs() < 1000.0);
        assert_eq!(merge(Op::CountDistinct, &acc, &acc), acc);
    }

    #[test]
    fn merging_equals_folding_everything() {
        let v: Vec<String> = (0..10).map(|i| format!(r#"{{"a":{i}}}"#)).collect();
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        for op in [Op::Count, Op::Sum, Op::Min, Op::Max, Op::Avg, Op::CountDistinct] {
            let path = (op != Op::Count).then_some("/a");
            let part = |vals: &[&str]| {
                vals.iter().fold(None::<Vec<u8>>, |acc, x| {
                    Some(add(op, acc.as_deref(), input(op, path, x.as_bytes()).unwrap()))
                })
            };
            let whole = part(&refs).unwrap();
            let merged = merge(op, &part(&refs[..4]).unwrap(), &part(&refs[4..]).unwrap());
            assert_eq!(result(op, &whole), result(op, &merged), "{op:?}");
        }
    }
}
