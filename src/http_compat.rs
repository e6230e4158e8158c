//! Request targets as CKAN's server accepts them.
//!
//! Clients send JSON in query strings raw (`curl -g '...?filters={"a":"b"}'`; CKAN's own
//! `samples.sh` does), and gunicorn/Werkzeug accept it. The `http` crate under actix rejects a
//! raw `"`, `<`, `>` or `` ` `` in a request target with a bare 400. So each connection's bytes
//! pass through [`RequestTargetEncoder`], which percent-encodes exactly those bytes inside the
//! request line of every request (`"` → `%22`), which the query-string parser decodes back: the
//! action sees what CKAN would see. Headers and bodies pass through untouched; to know where a
//! request line starts, the encoder follows HTTP/1.1 framing (Content-Length bodies; after a
//! chunked request body it stops rewriting for the rest of that connection).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of a request target that `http::Uri` rejects but CKAN accepts.
fn needs_encoding(b: u8) -> bool {
    matches!(b, b'"' | b'<' | b'>' | b'`')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a request line; `spaces` seen so far (the target lies after the first).
    RequestLine { spaces: u8 },
    /// In the header block; `line` collects the current header line.
    Headers,
    /// Inside a Content-Length body: bytes left.
    Body(u64),
    /// Framing we do not follow (chunked request body): no more rewriting.
    Passthrough,
}

/// Rewrites request lines on the read side of a connection; writes pass straight through.
pub struct RequestTargetEncoder<IO> {
    io: IO,
    state: State,
    header_line: Vec<u8>,
    content_length: u64,
    chunked: bool,
    out: Vec<u8>,
    out_pos: usize,
}

impl<IO> RequestTargetEncoder<IO> {
    /// The connection underneath (`api::disconnect` watches its socket).
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    pub fn new(io: IO) -> Self {
        RequestTargetEncoder {
            io,
            state: State::RequestLine { spaces: 0 },
            header_line: Vec::new(),
            content_length: 0,
            chunked: false,
            out: Vec::new(),
            out_pos: 0,
        }
    }

    /// Transforms freshly read bytes into `self.out`.
    fn feed(&mut self, input: &[u8]) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Passthrough => {
                    self.out.extend_from_slice(&input[i..]);
                    return;
                }
                State::Body(left) => {
                    let n = (left as usize).min(input.len() - i);
                    self.out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::RequestLine { spaces: 0 }
                    } else {
                        State::Body(left)
                    };
                }
                State::RequestLine { spaces } => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\n' => {
                            self.out.push(b);
                            self.state = State::Headers;
                            self.header_line.clear();
                            self.content_length = 0;
                            self.chunked = false;
                        }
                        b' ' => {
                            self.out.push(b);
                            self.state = State::RequestLine {
                                spaces: spaces.saturating_add(1),
                            };
                        }
                        _ if spaces == 1 && needs_encoding(b) => {
                            self.out.extend_from_slice(format!("%{b:02X}").as_bytes());
                        }
                        _ => self.out.push(b),
                    }
                }
                State::Headers => {
                    let b = input[i];
                    i += 1;
                    self.out.push(b);
                    if b != b'\n' {
                        self.header_line.push(b);
                        continue;
                    }
                    let line = std::mem::take(&mut self.header_line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if line.is_empty() {
                        self.state = if self.chunked {
                            State::Passthrough
                        } else if self.content_length > 0 {
                            State::Body(self.content_length)
                        } else {
                            State::RequestLine { spaces: 0 }
                        };
                    } else if let Some((name, value)) = std::str::from_utf8(line)
                        .ok()
                        .and_then(|l| l.split_once(':'))
                    {
                        let name = name.trim();
                        if name.eq_ignore_ascii_case("content-length") {
                            // A malformed length is actix's to reject; stop rewriting then.
                            match value.trim().parse() {
                                Ok(n) => self.content_length = n,
                                Err(_) => self.chunked = true,
                            }
                        } else if name.eq_ignore_ascii_case("transfer-encoding") {
                            self.chunked = true;
                        }
                    }
                }
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for RequestTargetEncoder<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.out_pos == this.out.len() {
            this.out.clear();
            this.out_pos = 0;
            let mut raw = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut raw);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let filled = rb.filled();
                    if filled.is_empty() {
                        return Poll::Ready(Ok(())); // EOF
                    }
                    let filled = filled.to_vec();
                    this.feed(&filled);
                }
                other => return other,
            }
        }
        let n = (this.out.len() - this.out_pos).min(buf.remaining());
        buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
        this.out_pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for RequestTargetEncoder<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut e = RequestTargetEncoder::new(());
        for c in chunks {
            e.feed(c);
        }
        e.out
    }

    #[test]
    fn encodes_quotes_in_targets_only() {
        let req = b"GET /a?f={\"x\":\"<y>\"} HTTP/1.1\r\nUser-Agent: \"q\"\r\n\r\n";
        assert_eq!(
            run(&[req]),
            b"GET /a?f={%22x%22:%22%3Cy%3E%22} HTTP/1.1\r\nUser-Agent: \"q\"\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn bodies_are_left_alone_and_keep_alive_requests_are_found() {
        let body = b"{\"a\": \"GET /x?\\\"\"}";
        let first = format!("POST /p HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
        let out = run(&[
            first.as_bytes(),
            &body[..5],
            &body[5..],
            b"GET /q?\"=1 HTTP/1.1\r\n\r\n",
        ]);
        let expected = [first.as_bytes(), body, b"GET /q?%22=1 HTTP/1.1\r\n\r\n"].concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn chunked_bodies_stop_rewriting() {
        let out = run(&[
            b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n\"\"\"\r\n0\r\n\r\n",
        ]);
        assert!(out.ends_with(b"3\r\n\"\"\"\r\n0\r\n\r\n"));
    }
}
