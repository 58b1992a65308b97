//! Reading JSON Lines input with line numbers, and writing JSON Lines output.
use std::io::{BufRead, Write};

/// One non-blank input line and its 1-based number.
pub struct Line {
    pub number: usize,
    pub text: String,
}

/// Reads lines from `reader`, skipping blank ones, in groups of at most `batch` lines.
pub struct Batches<R> {
    reader: R,
    batch: usize,
    number: usize,
    /// The name used in `name:line: reason` messages (`<stdin>` or a path).
    pub name: String,
}

impl<R: BufRead> Batches<R> {
    pub fn new(reader: R, name: impl Into<String>, batch: usize) -> Self {
        Batches { reader, batch: batch.max(1), number: 0, name: name.into() }
    }

    /// The next group of lines; empty at end of input.
    pub fn next_batch(&mut self) -> std::io::Result<Vec<Line>> {
        let mut lines = Vec::with_capacity(self.batch);
        let mut buf = String::new();
        while lines.len() < self.batch {
            buf.clear();
            if self.reader.read_line(&mut buf)? == 0 {
                break;
            }
            self.number += 1;
            let text = buf.trim_end_matches(['\n', '\r']);
            if !text.trim().is_empty() {
                lines.push(Line { number: self.number, text: text.to_string() });
            }
        }
        Ok(lines)
    }
}

/// Writes one JSON value per line.
pub fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
