//! The error a processor returns for a record.

use core::fmt;

/// Why a record could not be processed. The broker applies the processor's error policy to the
/// record (for example, writes it to the dead-letter topic with this message in a header).
///
/// Any `std::error::Error` converts into it, so `?` works on parse errors:
///
/// ```
/// fn amount(text: &str) -> Result<f64, weir_sdk::Error> {
///     Ok(text.parse::<f64>()?)
/// }
/// assert!(amount("x").unwrap_err().message().contains("invalid float"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with `message`.
    ///
    /// ```
    /// let e = weir_sdk::Error::new("amount must be positive");
    /// assert_eq!(e.message(), "amount must be positive");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    ///
    /// ```
    /// assert_eq!(weir_sdk::Error::new("x").message(), "x");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Self::new(e.to_string())
    }
}
