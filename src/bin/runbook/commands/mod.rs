//! One module per command (or per closely related pair, `run` and `resume`): each takes
//! its parsed arguments from `crate::cli`, calls the library (`runbook::ops`, the engine,
//! the renderer) and prints what happened. Decisions belong in the library, not here.

pub mod feedback;
pub mod matrix;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod new;
pub mod rehearse;
pub mod render;
pub mod run;
pub mod sandbox;
pub mod schema;
pub mod validate;
