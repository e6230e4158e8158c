//! The `records` list of a `datastore_search_sql` answer, written row by row as the rows
//! arrive and stopped at a bound on its bytes (`sqlsearch_max_answer_bytes`): CKAN has no
//! bound, and one query could take the server's memory (issue 21: 1,000 rows of 1 MB took it to
//! 4.2 GB). Rows are rendered as CKAN renders them (`render`); a row's text is dropped once
//! it is written, so memory follows the answer's size, not the rows' and the answer's.

use tokio_postgres::SimpleQueryRow;

use super::render::{self, Kind};
use crate::error::ApiError;

/// A query's records so far.
pub struct Records {
    /// Output names and the column each takes its value from: a repeated column name keeps
    /// its first position and its last value (a Python dict).
    names: Vec<(String, usize)>,
    kinds: Vec<Kind>,
    buf: Vec<u8>,
    rows: usize,
    max_bytes: usize,
}

impl Records {
    /// For the columns `(name, kind)` of the query, at most `max_bytes` of JSON.
    pub fn new<'a>(
        columns: impl IntoIterator<Item = (&'a str, &'a Kind)>,
        max_bytes: usize,
    ) -> Records {
        let mut names: Vec<(String, usize)> = Vec::new();
        let mut kinds = Vec::new();
        for (i, (name, kind)) in columns.into_iter().enumerate() {
            kinds.push(kind.clone());
            match names.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = i,
                None => names.push((name.to_string(), i)),
            }
        }
        let mut buf = Vec::with_capacity(64);
        buf.push(b'[');
        Records {
            names,
            kinds,
            buf,
            rows: 0,
            max_bytes,
        }
    }

    /// Appends one row; too large an answer is refused (409) as soon as it is.
    pub fn push(&mut self, row: &SimpleQueryRow) -> Result<(), ApiError> {
        if self.rows > 0 {
            self.buf.extend_from_slice(b", ");
        }
        self.rows += 1;
        self.buf.push(b'{');
        for (k, (name, i)) in self.names.iter().enumerate() {
            if k > 0 {
                self.buf.extend_from_slice(b", ");
            }
            crate::pyjson::write_str(&mut self.buf, name);
            self.buf.extend_from_slice(b": ");
            render::write(&mut self.buf, &self.kinds[*i], row.get(*i))
                .map_err(|e| ApiError::CkanCrash(format!("value CKAN cannot encode: {}", e.0)))?;
        }
        self.buf.push(b'}');
        // The closing `]` counts too.
        if self.buf.len() + 1 > self.max_bytes {
            return Err(too_large(self.max_bytes));
        }
        Ok(())
    }

    /// The JSON list.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(b']');
        self.buf
    }
}

/// What a caller is told: the bound, and what to do instead. A deliberate difference from
/// CKAN, which answers whatever it builds (README).
pub fn too_large(max_bytes: usize) -> ApiError {
    ApiError::field(
        "query",
        format!(
            "Query result too large: its records would exceed {max_bytes} bytes; \
             select fewer rows or columns"
        ),
    )
}

/// The bytes of a row's text as PostgreSQL sent it (NULLs are none).
pub fn text_len(row: &SimpleQueryRow) -> usize {
    (0..row.len()).map(|i| row.get(i).map_or(0, str::len)).sum()
}
