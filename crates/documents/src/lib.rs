//! Deliverables (design §6): real documents, spreadsheets, slides and PDFs, re-opened and
//! checked before anyone sees them.
//!
//! - [`spreadsheet`]: typed sheets → XLSX (rust_xlsxwriter) and CSV, formulas evaluated
//!   ([`formula`]) so their results are stored.
//! - [`readers`]: re-open every generated file (calamine, zip + quick-xml, lopdf) and report
//!   problems.
//!
//! Architecture invariant: this is a leaf crate. Its heavy dependencies (typst, docx-rs,
//! rust_xlsxwriter, calamine, lopdf) stay here; only the server and the CLI depend on it.
//! Rendering is CPU-bound and synchronous: callers run it on a blocking thread.

pub mod document;
pub mod docx_style;
pub mod edit;
pub mod formula;
pub mod markdown;
mod ooxml;
pub mod pdf;
pub mod pptx_style;
pub mod preview;
pub mod readers;
pub mod render;
pub mod slides;
pub mod spreadsheet;
pub mod template;
pub mod tools;

pub use ooxml::MAX_STYLE_FILE_BYTES;
pub use tools::{DocumentsValidator, document_tools};

/// What went wrong producing a deliverable. Every message names the input at fault and what
/// to do, because it goes back to the model as the tool's error result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentError {
    /// The input cannot be turned into the file (wrong cell count, unknown type…).
    #[error("{0}")]
    Input(String),
    /// A writer failed on checked input.
    #[error("{0}")]
    Render(String),
    /// The file was written but did not pass its re-reading check; nothing was saved.
    #[error("the generated {format} did not pass its check, so it was not saved: {problems}")]
    Check {
        /// The format.
        format: String,
        /// The problems, joined.
        problems: String,
    },
}
