//! The command's error: one line of text, printed as `error: ...`.

use std::fmt;

use diffctl_trainer::eval::EvalError;

/// What went wrong, in one line meant for the user.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A message is printed on one line whatever its source put in it.
        let mut lines = self.0.lines().map(str::trim).filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for rest in lines {
            write!(f, "; {rest}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_owned())
    }
}

impl From<EvalError> for Error {
    fn from(e: EvalError) -> Self {
        Error(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line() {
        let e = Error::new("first\n\n  second \nthird\n");
        assert_eq!(e.to_string(), "first; second; third");
    }
}
