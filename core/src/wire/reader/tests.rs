//! Tests of [`LineReader`]: lines split anywhere, over-long lines, bounded memory.

use super::*;

#[test]
fn find_newline_finds_the_first_one_anywhere() {
    for len in 0..40 {
        let mut bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        assert_eq!(find_newline(&bytes), None);
        for at in 0..len {
            bytes[at] = b'\n';
            assert_eq!(find_newline(&bytes), Some(at), "len {len}");
            if at + 3 < len {
                bytes[at + 3] = b'\n';
                assert_eq!(find_newline(&bytes), Some(at), "len {len}");
                bytes[at + 3] = b'x';
            }
            bytes[at] = 0x8a;
            assert_eq!(find_newline(&bytes), None, "len {len}");
            bytes[at] = b'x';
        }
    }
}

fn lines_of(r: &mut LineReader) -> Vec<Result<Vec<u8>, DecodeError>> {
    let mut v = Vec::new();
    while let Some(l) = r.next_line() {
        v.push(l.map(<[u8]>::to_vec));
    }
    v
}

#[test]
fn line_reader_handles_any_split() {
    let stream = b"one\r\ntwo\n\n  \r\nthree\nfour";
    for chunk in 1..=stream.len() {
        let mut r = LineReader::new(16);
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            r.push(piece);
            got.extend(lines_of(&mut r));
        }
        assert_eq!(r.pending_bytes(), 4);
        while let Some(l) = r.finish() {
            got.push(l.map(<[u8]>::to_vec));
        }
        let want: Vec<Result<Vec<u8>, DecodeError>> = vec![
            Ok(b"one\r".to_vec()),
            Ok(b"two".to_vec()),
            Ok(b"three".to_vec()),
            Ok(b"four".to_vec()),
        ];
        assert_eq!(got, want, "chunk {chunk}");
        assert_eq!(r.finish(), None);
        assert_eq!(r.pending_bytes(), 0);
    }
}

#[test]
fn line_reader_reports_a_long_line_once_and_recovers() {
    let max = 8;
    let stream = b"short\n0123456789abcdef\nok\n012345678\nlast\n";
    for chunk in 1..=stream.len() {
        let mut r = LineReader::new(max);
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            r.push(piece);
            got.extend(lines_of(&mut r));
            assert!(r.pending_bytes() <= max + chunk, "chunk {chunk}");
        }
        let too_long = Err(DecodeError::TooLong { max });
        let want = vec![
            Ok(b"short".to_vec()),
            too_long.clone(),
            Ok(b"ok".to_vec()),
            too_long,
            Ok(b"last".to_vec()),
        ];
        assert_eq!(got, want, "chunk {chunk}");
    }
    // Exactly `max` bytes is fine.
    let mut r = LineReader::new(max);
    r.push(b"12345678\n");
    assert_eq!(lines_of(&mut r), vec![Ok(b"12345678".to_vec())]);
}

#[test]
fn line_reader_memory_stays_bounded_without_newline() {
    let max = 1024;
    let mut r = LineReader::new(max);
    r.push(b"first\n");
    let chunk = vec![b'x'; 64 * 1024];
    let mut got = lines_of(&mut r);
    for _ in 0..(100 << 20) / chunk.len() {
        r.push(&chunk);
        got.extend(lines_of(&mut r));
        assert!(r.pending_bytes() <= max);
        assert!(r.buf.capacity() <= max + 2 * chunk.len());
    }
    r.push(b"tail\nnext\n");
    got.extend(lines_of(&mut r));
    assert_eq!(
        got,
        vec![
            Ok(b"first".to_vec()),
            Err(DecodeError::TooLong { max }),
            Ok(b"next".to_vec())
        ]
    );
    // An over-long final line without newline gives TooLong once at the end.
    let mut r = LineReader::new(4);
    r.push(b"abcdefgh");
    assert_eq!(r.next_line(), Some(Err(DecodeError::TooLong { max: 4 })));
    assert_eq!(r.next_line(), None);
    assert_eq!(r.finish(), None);
}
