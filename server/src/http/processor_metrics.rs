//! Processors in `/metrics`, computed at scrape time from their status: counters per
//! processor, state, and lag per processor and input partition (what people alert on).

use std::fmt::Write;

use crate::processor::{ProcessorView, State};

/// The processor metric families, in the text exposition format, and the guest pool's.
pub fn render(views: &[ProcessorView], pool: &crate::wasm::pool::InstancePool) -> String {
    let mut out = String::new();
    let (live, reserved, budget) = pool.usage();
    for (name, help, value) in [
        (
            "weir_guest_instances_live",
            "Guest instances alive now (each holds a pool slot).",
            live as u64,
        ),
        (
            "weir_guest_memory_reserved_bytes",
            "Memory caps of the live guest instances, together.",
            reserved,
        ),
        (
            "weir_guest_memory_budget_bytes",
            "What the memory caps of live instances may add up to.",
            budget,
        ),
        (
            "weir_guest_instances_waiting",
            "Partitions waiting for room in the guest pool.",
            pool.waiting() as u64,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    let counter = |out: &mut String, name: &str, help: &str, get: &dyn Fn(&ProcessorView) -> u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for v in views {
            let _ = writeln!(out, "{name}_total{{processor=\"{}\"}} {}", v.name, get(v));
        }
    };
    counter(
        &mut out,
        "weir_processor_records_in",
        "Input records the processor handled.",
        &|v| v.records_in,
    );
    counter(
        &mut out,
        "weir_processor_records_out",
        "Records the processor wrote to its outputs.",
        &|v| v.records_out,
    );
    counter(
        &mut out,
        "weir_processor_errors",
        "Input records the processor failed on.",
        &|v| v.errors,
    );
    counter(
        &mut out,
        "weir_processor_dead_lettered",
        "Failed records written to the dead-letter topic.",
        &|v| v.dead_lettered,
    );
    counter(
        &mut out,
        "weir_processor_skipped",
        "Failed records dropped (on_error skip).",
        &|v| v.skipped,
    );
    counter(
        &mut out,
        "weir_processor_traps",
        "Guest traps (crash, deadline, memory cap).",
        &|v| v.traps,
    );
    let _ = writeln!(
        out,
        "# HELP weir_processor_state The processor's state: 1 for the one it is in."
    );
    let _ = writeln!(out, "# TYPE weir_processor_state gauge");
    for v in views {
        for (state, name) in [
            (State::Running, "running"),
            (State::Paused, "paused"),
            (State::Failed, "failed"),
        ] {
            let _ = writeln!(
                out,
                "weir_processor_state{{processor=\"{}\",state=\"{name}\"}} {}",
                v.name,
                u8::from(v.state == state)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP weir_processor_lag Input records not yet committed, per input partition."
    );
    let _ = writeln!(out, "# TYPE weir_processor_lag gauge");
    for v in views {
        for l in &v.lag {
            let _ = writeln!(
                out,
                "weir_processor_lag{{processor=\"{}\",partition=\"{}\"}} {}",
                v.name, l.partition, l.lag
            );
        }
    }
    out
}
