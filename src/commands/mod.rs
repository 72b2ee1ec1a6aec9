//! One module per subcommand: its arguments and what it does.

pub mod demo;
pub mod eval;
pub mod fit;
pub mod inspect;
pub mod plot;
pub mod sample;
pub mod train;
