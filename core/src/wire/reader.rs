//! Framing: [`LineReader`] splits the byte stream of a connection into lines, with bounded
//! memory, for both drivers.

use super::{DecodeError, DEFAULT_MAX_LINE};

/// Splits a byte stream into lines, with bounded memory.
///
/// Feed it whatever the socket gave ([`LineReader::push`]), then take lines until
/// [`LineReader::next_line`] returns `None`. Lines come without their `\n`; a trailing `\r`
/// is left for [`decode`](super::decode), which tolerates it. Blank lines (only spaces, tabs
/// or `\r`) are skipped: they are not requests and get no reply.
///
/// A line longer than `max` yields one [`DecodeError::TooLong`] in its place, blank or not
/// (its content is never buffered to look); its bytes are dropped as they arrive, so a peer sending 100 MB without a newline costs at most `max`
/// bytes of buffer plus one chunk. Each pushed byte is scanned for `\n` once.
#[derive(Debug)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Start of the bytes not yet returned.
    head: usize,
    /// `buf[head..scanned]` holds no `\n` (already searched).
    scanned: usize,
    /// Start of the last, unterminated line in `buf`.
    tail: usize,
    /// Where in `buf` an over-long line was cut out; its `TooLong` is still owed.
    too_long_at: Option<usize>,
    /// The current line is over-long: drop bytes until its `\n`.
    discarding: bool,
    max: usize,
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new(DEFAULT_MAX_LINE)
    }
}

impl LineReader {
    /// A reader that accepts lines of at most `max` bytes, newline excluded.
    pub fn new(max: usize) -> Self {
        LineReader {
            buf: Vec::new(),
            head: 0,
            scanned: 0,
            tail: 0,
            too_long_at: None,
            discarding: false,
            max,
        }
    }

    /// Bytes received but not yet returned as lines.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Appends bytes as they came from the stream.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.discarding {
            match find_newline(bytes) {
                None => return,
                Some(i) => {
                    self.discarding = false;
                    bytes = bytes.get(i + 1..).unwrap_or_default();
                }
            }
        }
        if bytes.is_empty() {
            return;
        }
        self.compact();
        let old_len = self.buf.len();
        self.buf.extend_from_slice(bytes);
        if let Some(last) = bytes.iter().rposition(|&b| b == b'\n') {
            self.tail = old_len + last + 1;
        }
        if self.buf.len() - self.tail > self.max {
            // The unterminated line is already too long: cut it out, owe one TooLong.
            self.buf.truncate(self.tail);
            self.too_long_at = Some(self.tail);
            self.discarding = true;
        }
    }

    /// Moves the unreturned bytes to the front, so the buffer never grows with what was
    /// already consumed.
    fn compact(&mut self) {
        if self.head == 0 {
            return;
        }
        self.buf.drain(..self.head);
        self.scanned = self.scanned.saturating_sub(self.head);
        self.tail = self.tail.saturating_sub(self.head);
        self.too_long_at = self.too_long_at.map(|at| at.saturating_sub(self.head));
        self.head = 0;
    }

    /// The next complete line, `Err(TooLong)` in place of an over-long one, or `None` until
    /// more bytes arrive.
    pub fn next_line(&mut self) -> Option<Result<&[u8], DecodeError>> {
        let (start, end) = match self.locate(false)? {
            Ok(range) => range,
            Err(e) => return Some(Err(e)),
        };
        self.buf.get(start..end).map(Ok)
    }

    /// At end of stream: like [`LineReader::next_line`], but a final line without `\n` is
    /// returned too (a sender may close right after writing). Call until `None`.
    pub fn finish(&mut self) -> Option<Result<&[u8], DecodeError>> {
        let (start, end) = match self.locate(true)? {
            Ok(range) => range,
            Err(e) => return Some(Err(e)),
        };
        self.buf.get(start..end).map(Ok)
    }

    /// Finds the next line and consumes it, returning its range in `buf`.
    fn locate(&mut self, at_eof: bool) -> Option<Result<(usize, usize), DecodeError>> {
        loop {
            if self.too_long_at == Some(self.head) {
                self.too_long_at = None;
                return Some(Err(DecodeError::TooLong { max: self.max }));
            }
            let limit = self
                .too_long_at
                .filter(|&at| at >= self.head)
                .unwrap_or(self.buf.len());
            let from = self.scanned.max(self.head);
            let found = match self
                .buf
                .get(from..limit)
                .and_then(find_newline)
                .map(|i| from + i)
            {
                Some(newline) => {
                    let start = self.head;
                    self.head = newline + 1;
                    self.scanned = self.head;
                    (start, newline, newline - start)
                }
                None if at_eof && (self.head < limit) => {
                    let start = self.head;
                    self.head = limit;
                    self.scanned = limit;
                    if self.too_long_at.is_none() {
                        self.tail = limit;
                    }
                    (start, limit, limit - start)
                }
                None => {
                    self.scanned = limit;
                    return None;
                }
            };
            let (start, end, len) = found;
            if len > self.max {
                return Some(Err(DecodeError::TooLong { max: self.max }));
            }
            let line = self.buf.get(start..end).unwrap_or_default();
            if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                continue;
            }
            return Some(Ok((start, end)));
        }
    }
}

/// The first `\n` in `bytes`. Eight bytes are tested at a time (a word holds a `\n` when
/// `word ^ 0x0a0a..` has a zero byte): every byte read passes through here once.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ (ONES * u64::from(b'\n'));
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        offset += 8;
    }
    let rest = bytes.get(offset..).unwrap_or_default();
    rest.iter().position(|&b| b == b'\n').map(|i| offset + i)
}

#[cfg(test)]
mod tests;
