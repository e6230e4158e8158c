//! CKAN's action envelope (`{"help": …, "success": …, "result"|"error": …}`), headers, status
//! codes and JSONP. Result objects themselves are written by `object_writer`.

use crate::pyjson;
use actix_web::body::{MessageBody, SizedStream};
use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use bytes::Bytes;

pub const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";
const JSONP_CONTENT_TYPE: &str = "application/javascript;charset=utf-8";

/// Per-request facts the envelope needs.
pub struct Envelope {
    pub help: String,
    /// The JSONP callback, for GET requests that carried one.
    pub callback: Option<String>,
}

pub(super) fn with_ckan_headers(
    status: StatusCode,
    content_type: &str,
    body: impl MessageBody + 'static,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=0, must-revalidate"))
        .insert_header((header::VARY, "Cookie"))
        .body(body)
}

/// Results at least this large are sent as they are, in slices, not copied into one body:
/// a 100 MB `datastore_search_sql` answer would otherwise be copied twice more on the request's
/// worker (into the envelope, then whole into actix's write buffer) — time other connections
/// of that worker wait, and twice its memory (BENCHMARKS.md §11).
const SEND_IN_SLICES_ABOVE: usize = 1 << 20;

/// The slices a large body is handed to actix in: it copies each into its write buffer and
/// asks for the next one once the socket has taken it.
const SLICE: usize = 64 * 1024;

impl Envelope {
    /// `{"help": …, "success": true, "result": <result>}` where `result` is already JSON text.
    pub fn success(&self, result: &[u8]) -> HttpResponse {
        let (head, tail) = self.frame();
        let mut body = Vec::with_capacity(head.len() + result.len() + tail.len());
        body.extend_from_slice(&head);
        body.extend_from_slice(result);
        body.extend_from_slice(&tail);
        with_ckan_headers(StatusCode::OK, self.content_type(), body)
    }

    /// The same for a result in parts (`ObjectWriter::finish_parts`): the same bytes and
    /// headers (a `Content-Length`, never chunked), a large result sent without copying it.
    pub fn success_parts(&self, parts: Vec<Bytes>) -> HttpResponse {
        let size: usize = parts.iter().map(Bytes::len).sum();
        if size < SEND_IN_SLICES_ABOVE {
            return match parts.as_slice() {
                [one] => self.success(one),
                _ => self.success(&parts.concat()),
            };
        }
        let (head, tail) = self.frame();
        let total = head.len() + size + tail.len();
        let mut slices = vec![Bytes::from(head)];
        for mut part in parts {
            while part.len() > SLICE {
                slices.push(part.split_to(SLICE));
            }
            slices.push(part);
        }
        slices.push(Bytes::from(tail));
        let stream = futures_util::stream::iter(
            slices
                .into_iter()
                .filter(|b| !b.is_empty())
                .map(Ok::<_, std::convert::Infallible>),
        );
        with_ckan_headers(
            StatusCode::OK,
            self.content_type(),
            SizedStream::new(total as u64, stream),
        )
    }

    /// What goes before and after the result: the envelope, inside the JSONP call if any.
    fn frame(&self) -> (Vec<u8>, Vec<u8>) {
        let mut head = Vec::with_capacity(self.help.len() + 64);
        if let Some(cb) = &self.callback {
            head.extend_from_slice(crate::python::html_escape(cb).as_bytes());
            head.push(b'(');
        }
        head.extend_from_slice(b"{\"help\": ");
        pyjson::write_str(&mut head, &self.help);
        head.extend_from_slice(b", \"success\": true, \"result\": ");
        let tail = match self.callback {
            Some(_) => b"});".to_vec(),
            None => b"}".to_vec(),
        };
        (head, tail)
    }

    fn content_type(&self) -> &'static str {
        match self.callback {
            Some(_) => JSONP_CONTENT_TYPE,
            None => JSON_CONTENT_TYPE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::{to_bytes, BodySize};

    async fn body_of(resp: HttpResponse) -> (BodySize, Bytes) {
        let body = resp.into_body();
        let size = body.size();
        (size, to_bytes(body).await.unwrap())
    }

    /// A large result in parts is sent as the very bytes one buffer would hold, with its
    /// length (not chunked), with and without JSONP.
    #[actix_web::test]
    async fn parts_are_sent_as_one_body_would_be() {
        let records: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let parts = vec![
            Bytes::from_static(b"{\"sql\": \"x\", \"records\": "),
            Bytes::from(records),
            Bytes::from_static(b", \"fields\": []}"),
        ];
        let whole = parts.concat();
        for callback in [None, Some("cb<".to_string())] {
            let env = Envelope {
                help: "http://h/api/3/action/help_show?name=datastore_search_sql".into(),
                callback,
            };
            let one = env.success(&whole);
            let sliced = env.success_parts(parts.clone());
            assert_eq!(
                one.headers().get(header::CONTENT_TYPE),
                sliced.headers().get(header::CONTENT_TYPE)
            );
            let (size_one, bytes_one) = body_of(one).await;
            let (size_sliced, bytes_sliced) = body_of(sliced).await;
            assert_eq!(size_sliced, BodySize::Sized(bytes_one.len() as u64));
            assert_eq!(size_one, size_sliced);
            assert!(bytes_one == bytes_sliced, "same bytes");
        }
    }
}
