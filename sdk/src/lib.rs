//! Write [Weir](https://github.com/) stream processors in Rust.
//!
//! A processor is one trait impl plus one macro. Weir calls it once per batch of input records,
//! and the SDK hands your [`Processor::process`] each record in turn, borrowed straight from the
//! batch buffer:
//!
//! ```
//! use weir_sdk::{Config, Emitter, Error, Processor, Record};
//!
//! /// Uppercases every value.
//! pub struct Uppercase;
//!
//! impl Processor for Uppercase {
//!     fn init(_config: &Config) -> Result<Self, String> {
//!         Ok(Uppercase)
//!     }
//!
//!     fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
//!         let upper = record.value.to_ascii_uppercase();
//!         out.send(weir_sdk::Output::new(&upper).key_opt(record.key).headers(record.headers));
//!         Ok(())
//!     }
//! }
//!
//! weir_sdk::export_processor!(Uppercase);
//! # fn main() {
//! let out = weir_sdk::testing::run::<Uppercase>(&[], &[weir_sdk::testing::TestRecord::value("hi")]).unwrap();
//! assert_eq!(out[0].value, b"HI");
//! # }
//! ```
//!
//! Build it as a component with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and deploy the `.wasm`. The same code compiles natively, so
//! [`testing::run`] unit-tests it with plain `cargo test`.
//!
//! How it fits together: [`packed`] is the byte layout of batches (shared with the broker);
//! the `bindings` module holds the generated component bindings; [`export_processor!`] wires
//! your type to them.

mod emit;
mod error;
pub mod log;
pub mod packed;
pub mod state;
pub mod tables;
pub mod testing;
pub mod time;

#[doc(hidden)]
pub mod rt;

#[cfg(feature = "bindings")]
#[doc(hidden)]
#[allow(unsafe_code, clippy::all, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "packed-processor",
        pub_export_macro: true,
        export_macro_name: "__export_packed_processor",
        default_bindings_module: "weir_sdk::bindings",
    });
}

pub use emit::{Emitter, Output};
pub use error::Error;
pub use packed::{Headers, Record};

/// A processor's parameters, from the deployment's `config` (`"config": {"min": "100"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    /// A config from `(name, value)` pairs.
    ///
    /// ```
    /// let c = weir_sdk::Config::new([("min", "100")]);
    /// assert_eq!(c.get("min"), Some("100"));
    /// ```
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            pairs: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    /// The value of `name`, if set.
    ///
    /// ```
    /// assert_eq!(weir_sdk::Config::default().get("x"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or an error message saying it is missing.
    ///
    /// ```
    /// let c = weir_sdk::Config::new([("field", "amount")]);
    /// assert_eq!(c.require("field"), Ok("amount"));
    /// assert!(c.require("min").unwrap_err().contains("min"));
    /// ```
    pub fn require(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("missing config parameter '{name}'"))
    }

    /// The value of `name` parsed as `T`, with a message naming the parameter on failure.
    ///
    /// ```
    /// let c = weir_sdk::Config::new([("min", "2.5")]);
    /// assert_eq!(c.parse::<f64>("min"), Ok(2.5));
    /// assert!(c.parse::<u8>("min").is_err());
    /// ```
    pub fn parse<T: core::str::FromStr>(&self, name: &str) -> Result<T, String>
    where
        T::Err: core::fmt::Display,
    {
        let raw = self.require(name)?;
        raw.parse()
            .map_err(|e| format!("config parameter '{name}' = '{raw}': {e}"))
    }

    /// Every `(name, value)` pair.
    ///
    /// ```
    /// assert_eq!(weir_sdk::Config::new([("a", "1")]).iter().count(), 1);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A stream processor. Weir creates one instance per input partition with [`Processor::init`],
/// then calls [`Processor::process`] for every record, in offset order.
///
/// ```
/// use weir_sdk::{Config, Emitter, Error, Processor, Record};
/// struct Passthrough;
/// impl Processor for Passthrough {
///     fn init(_: &Config) -> Result<Self, String> { Ok(Passthrough) }
///     fn process(&mut self, r: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
///         out.forward(r);
///         Ok(())
///     }
/// }
/// ```
pub trait Processor: Sized + 'static {
    /// Builds the processor from its parameters; an error rejects the deployment with that
    /// message.
    fn init(config: &Config) -> Result<Self, String>;

    /// Handles one record: emit zero or more records to `out`. An error applies the
    /// processor's error policy (dead-letter, skip or stop) to this record only; records
    /// emitted for it, and its state writes, are discarded.
    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error>;

    /// Handles a timer that came due (see [`time::set_timer`]); emits like `process`. The
    /// default does nothing.
    fn on_timer(&mut self, timer: &time::Timer<'_>, out: &mut Emitter) -> Result<(), Error> {
        let _ = (timer, out);
        Ok(())
    }
}

/// Exports a [`Processor`] as the component's implementation. Use it once, at the crate root.
///
/// ```
/// # use weir_sdk::{Config, Emitter, Error, Processor, Record};
/// # struct Mine;
/// # impl Processor for Mine {
/// #     fn init(_: &Config) -> Result<Self, String> { Ok(Mine) }
/// #     fn process(&mut self, _: &Record<'_>, _: &mut Emitter) -> Result<(), Error> { Ok(()) }
/// # }
/// weir_sdk::export_processor!(Mine);
/// ```
#[macro_export]
macro_rules! export_processor {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            use $crate::bindings::exports::weir::processor::packed_batch_processor::{Guest, ProcessError};

            ::std::thread_local! {
                static INSTANCE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct WeirGuest;

            impl Guest for WeirGuest {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    let processor = <$ty as $crate::Processor>::init(&$crate::Config::new(config))?;
                    INSTANCE.with(|i| *i.borrow_mut() = ::core::option::Option::Some(processor));
                    ::core::result::Result::Ok(())
                }

                fn process_packed(
                    batch: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<::std::vec::Vec<u8>, ProcessError> {
                    INSTANCE.with(|i| match i.borrow_mut().as_mut() {
                        ::core::option::Option::Some(p) => $crate::rt::process(p, &batch).map_err(|e| ProcessError {
                            message: e.message,
                            record: e.record,
                        }),
                        ::core::option::Option::None => ::core::result::Result::Err(ProcessError {
                            message: "process called before init".into(),
                            record: ::core::option::Option::None,
                        }),
                    })
                }

                fn on_timers_packed(
                    fired: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<::std::vec::Vec<u8>, ProcessError> {
                    INSTANCE.with(|i| match i.borrow_mut().as_mut() {
                        ::core::option::Option::Some(p) => $crate::rt::on_timers(p, &fired).map_err(|e| ProcessError {
                            message: e.message,
                            record: e.record,
                        }),
                        ::core::option::Option::None => ::core::result::Result::Err(ProcessError {
                            message: "on-timers called before init".into(),
                            record: ::core::option::Option::None,
                        }),
                    })
                }
            }

    $crate::bindings::__export_packed_processor!(WeirGuest with_types_in $crate::bindings);
        };
    };
}
