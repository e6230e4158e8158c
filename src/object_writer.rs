//! Result objects written member by member in CKAN's (simplejson's) layout, with members whose
//! value is JSON text PostgreSQL produced spliced in verbatim, never parsed.

use bytes::Bytes;
use serde_json::Value;

use crate::pyjson;

/// Builds a JSON object member by member in simplejson's layout.
#[derive(Default)]
pub struct ObjectWriter {
    buf: Vec<u8>,
    members: usize,
    /// What comes before `buf`: written parts and spliced members, in order.
    parts: Vec<Bytes>,
}

impl ObjectWriter {
    pub fn new() -> ObjectWriter {
        ObjectWriter::default()
    }

    fn key(&mut self, key: &str) {
        self.buf
            .extend_from_slice(if self.members == 0 { b"{" } else { b", " });
        self.members += 1;
        pyjson::write_str(&mut self.buf, key);
        self.buf.extend_from_slice(b": ");
    }

    /// A member whose value CKAN built in Python.
    pub fn value(&mut self, key: &str, value: &Value) {
        self.key(key);
        pyjson::write_value(&mut self.buf, value);
    }

    /// A member whose value is JSON text produced elsewhere (PostgreSQL), copied verbatim.
    pub fn raw(&mut self, key: &str, json_text: &[u8]) {
        self.key(key);
        self.buf.extend_from_slice(json_text);
    }

    /// A member holding text as a JSON string (ensure_ascii escaping).
    pub fn string(&mut self, key: &str, text: &str) {
        self.key(key);
        pyjson::write_str(&mut self.buf, text);
    }

    /// A member whose value is JSON text held elsewhere, kept as a part of its own rather than
    /// copied (a large `records` list): see [`ObjectWriter::finish_parts`].
    pub fn spliced(&mut self, key: &str, json_text: Bytes) {
        self.key(key);
        self.parts.push(Bytes::from(std::mem::take(&mut self.buf)));
        self.parts.push(json_text);
    }

    /// The object as one buffer (spliced members copied in).
    pub fn finish(mut self) -> Vec<u8> {
        if !self.parts.is_empty() {
            return self.finish_parts().concat();
        }
        if self.members == 0 {
            self.buf.push(b'{');
        }
        self.buf.push(b'}');
        self.buf
    }

    /// The object as its parts, in order: spliced members are not copied.
    pub fn finish_parts(mut self) -> Vec<Bytes> {
        if self.members == 0 {
            self.buf.push(b'{');
        }
        self.buf.push(b'}');
        self.parts.push(Bytes::from(self.buf));
        self.parts
    }
}
