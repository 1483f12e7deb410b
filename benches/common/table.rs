//! Reporting: aligned text tables, the median and spread of repeated runs, and CSV.
//!
//! A [`Table`] holds its columns' widths and alignments once, for the header and every row, so
//! that the two cannot drift apart as columns change. A [`Spread`] is what a benchmark that
//! repeats its runs reports: the median, and the smallest and largest figure, which show how
//! much to trust it. [`Csv`] is the same figures for a script (`scripts/plot_c10k.py`).

use std::fmt::{Display, Write as _};
use std::io;
use std::path::Path;

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A text table's layout: columns of fixed width, left or right aligned, one space apart
/// unless [`Table::gap`] says otherwise. A cell wider than its column pushes the rest of its
/// line to the right, as `format!("{:>8}")` does.
#[derive(Clone, Default)]
pub struct Table {
    /// Per column: the spaces before it, its alignment, its width.
    columns: Vec<(usize, Align, usize)>,
    gap: Option<usize>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// Adds a left-aligned column.
    pub fn left(self, width: usize) -> Table {
        self.column(Align::Left, width)
    }

    /// Adds a right-aligned column.
    pub fn right(self, width: usize) -> Table {
        self.column(Align::Right, width)
    }

    /// Puts `spaces` spaces before the next column instead of one.
    pub fn gap(mut self, spaces: usize) -> Table {
        self.gap = Some(spaces);
        self
    }

    fn column(mut self, align: Align, width: usize) -> Table {
        let gap = self.gap.take().unwrap_or(1);
        self.columns.push((gap, align, width));
        self
    }

    /// One line: each cell in its column, from the first. A line may have fewer cells than
    /// the table has columns (the rest of it is then the caller's); extra cells are an error.
    pub fn line(&self, cells: &[&dyn Display]) -> String {
        assert!(cells.len() <= self.columns.len(), "more cells than columns");
        let mut line = String::new();
        for (i, (cell, &(gap, align, width))) in cells.iter().zip(&self.columns).enumerate() {
            if i > 0 {
                line.extend(std::iter::repeat_n(' ', gap));
            }
            let cell = cell.to_string(); // `Display` impls need not pad: a `String` does
            let _ = match align {
                Align::Left => write!(line, "{cell:<width$}"),
                Align::Right => write!(line, "{cell:>width$}"),
            };
        }
        line
    }
}

/// The middle of `values` (the mean of the two middle ones for an even count); NaN if empty.
pub fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The figures of repeated runs, summed up: their median, smallest and largest.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        Spread {
            median: median(values),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// `(MIN-MAX)`, with `decimals` decimals.
    pub fn range(&self, decimals: usize) -> String {
        format!("({:.decimals$}-{:.decimals$})", self.min, self.max)
    }
}

/// A CSV file being written: a header, then rows of as many cells.
pub struct Csv {
    columns: usize,
    text: String,
}

impl Csv {
    pub fn new(header: &[&str]) -> Csv {
        let mut csv = Csv {
            columns: header.len(),
            text: String::new(),
        };
        csv.push(header.iter());
        csv
    }

    /// Adds a row: one cell per column, quoted if it needs to be (RFC 4180).
    pub fn row(&mut self, cells: &[String]) {
        assert_eq!(cells.len(), self.columns, "a CSV row of the wrong length");
        self.push(cells.iter());
    }

    fn push(&mut self, cells: impl Iterator<Item = impl AsRef<str>>) {
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            let cell = cell.as_ref();
            if cell.contains([',', '"', '\n', '\r']) {
                self.text.push('"');
                self.text.push_str(&cell.replace('"', "\"\""));
                self.text.push('"');
            } else {
                self.text.push_str(cell);
            }
        }
        self.text.push('\n');
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, &self.text)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }
}
