//! The file's format: a header, then frames of changes.
//!
//! A frame is `[length: u32 LE][crc32 of the body: u32 LE]` and `length` bytes of body. The
//! file's first frame is its header, whose body is the magic bytes [`MAGIC`] and the format
//! version (u32 LE). Every frame after it is one call of the store that changed something: one
//! JSON [`ChangeRecordV1`] per line.
//!
//! The header is a frame, rather than bare magic bytes at byte 0, for the agentyard releases from
//! before headers: they read every frame as changes, so a header frame makes them refuse the file
//! ("a whole frame whose change cannot be read"), where bare magic bytes, read as a frame's
//! length, would look like a torn write and have the whole file cut off.
//!
//! Format versions: 1 is frames of [`ChangeRecordV1`]. A log written before headers existed holds
//! the same frames and records with no header: it is read as version 1, written on the same way,
//! and gets its header when it is next compacted. It is told apart by its first bytes: a frame
//! whose body begins with `{` (a JSON change) where a headed file has [`MAGIC`] at byte 8.

use std::io;

use agentyard_store::record::ChangeRecordV1;
use agentyard_store::{Change, OwnedChange};

/// A frame's own header: length and checksum.
pub(crate) const FRAME_HEADER: usize = 8;

/// What the file header's body starts with.
pub(crate) const MAGIC: &[u8; 14] = b"agentyard-log\0";

/// The format this version writes, and the newest it reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The longest file header body read (a later version may add fields behind the version).
pub(crate) const MAX_HEADER_BODY: u32 = 4096;

/// The file header of a log of this version: a whole frame.
pub(crate) fn file_header() -> Vec<u8> {
    let mut frame = vec![0; FRAME_HEADER];
    frame.extend_from_slice(MAGIC);
    frame.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    close_frame(&mut frame).expect("a short header");
    frame
}

/// Fills in the header of a frame (`frame` is the header's space, then the body): the body's
/// length and checksum.
pub(crate) fn close_frame(frame: &mut [u8]) -> io::Result<()> {
    let (header, body) = frame.split_at_mut(FRAME_HEADER);
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("one call changed more than 4 GiB of data"))?;
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    Ok(())
}

/// A frame header's length and checksum.
pub(crate) fn frame_header(bytes: &[u8; FRAME_HEADER]) -> (u32, u32) {
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[4..].try_into().expect("4 bytes"));
    (len, crc)
}

/// Appends one change as a line of a frame's body.
pub(crate) fn encode_change(change: &Change<'_>, out: &mut Vec<u8>) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, &ChangeRecordV1::from(change))?;
    out.push(b'\n');
    Ok(())
}

/// Reads one line of a frame's body.
pub(crate) fn decode_change(line: &[u8]) -> serde_json::Result<OwnedChange> {
    serde_json::from_slice::<ChangeRecordV1<'_>>(line).map(OwnedChange::from)
}

/// Frames one change per frame (a snapshot's frames need not be atomic together: the snapshot is
/// written to a file of its own and renamed into place).
pub(crate) fn encode_snapshot(changes: &[OwnedChange], out: &mut Vec<u8>) -> io::Result<()> {
    for change in changes {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER]);
        serde_json::to_writer(&mut *out, &ChangeRecordV1::from(change)).map_err(io::Error::other)?;
        out.push(b'\n');
        close_frame(&mut out[start..])?;
    }
    Ok(())
}

/// What the first bytes of a file say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Empty, or holding only the start of a header (a crash while the file was created: the
    /// header is synced before anything is written behind it): a header is (re)written.
    Fresh,
    /// A header of a version this one reads; the frames of changes start at `frames_at`.
    Headed { version: u32, frames_at: u64 },
    /// A log from before headers: frames of changes from byte 0, read as version 1.
    HeaderLess,
}

/// Why a file is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Neither a header nor a frame of changes at the start.
    Foreign,
    /// A header whose checksum fails.
    DamagedHeader,
    /// Written by a newer format.
    Newer(u32),
}

/// Tells what `head`, the first bytes of a file (at least the first 64, or the whole file if
/// shorter) is; `header_body` reads the header's body when it is longer than `head` holds.
pub(crate) fn layout(
    head: &[u8],
    header_body: impl FnOnce(u32) -> io::Result<Vec<u8>>,
) -> io::Result<Result<Layout, Refused>> {
    let ours = file_header();
    if head.len() < ours.len() && ours.starts_with(head) {
        return Ok(Ok(Layout::Fresh));
    }
    if head.len() >= FRAME_HEADER + MAGIC.len() && &head[FRAME_HEADER..FRAME_HEADER + MAGIC.len()] == MAGIC {
        let (len, crc) = frame_header(head[..FRAME_HEADER].try_into().expect("8 bytes"));
        if !(MAGIC.len() as u32 + 4..=MAX_HEADER_BODY).contains(&len) {
            return Ok(Err(Refused::DamagedHeader));
        }
        let body = match head.get(FRAME_HEADER..FRAME_HEADER + len as usize) {
            Some(body) => body.to_vec(),
            None => header_body(len)?,
        };
        if body.len() != len as usize || crc32fast::hash(&body) != crc {
            return Ok(Err(Refused::DamagedHeader));
        }
        let version = u32::from_le_bytes(body[MAGIC.len()..MAGIC.len() + 4].try_into().expect("4 bytes"));
        if version > FORMAT_VERSION {
            return Ok(Err(Refused::Newer(version)));
        }
        if version == 0 {
            return Ok(Err(Refused::DamagedHeader));
        }
        return Ok(Ok(Layout::Headed {
            version,
            frames_at: (FRAME_HEADER + len as usize) as u64,
        }));
    }
    // A change is a JSON object: a header-less log's first frame body starts `{"`.
    if head.len() > FRAME_HEADER && head[FRAME_HEADER] == b'{' {
        return Ok(Ok(Layout::HeaderLess));
    }
    Ok(Err(Refused::Foreign))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &[u8], expected: Result<Layout, Refused>) {
        let got = layout(head, |_| Err(io::Error::other("not asked"))).expect("no read");
        assert_eq!(got, expected, "{head:?}");
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = vec![0; FRAME_HEADER];
        f.extend_from_slice(body);
        close_frame(&mut f).expect("short");
        f
    }

    fn header_of(version: u32) -> Vec<u8> {
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&version.to_le_bytes());
        frame(&body)
    }

    #[test]
    fn the_first_bytes_tell_what_a_file_is() {
        let header = file_header();
        assert_eq!(header.len(), 26);
        assert_eq!(header, header_of(FORMAT_VERSION));
        check(b"", Ok(Layout::Fresh));
        check(&header[..5], Ok(Layout::Fresh));
        check(
            &header,
            Ok(Layout::Headed {
                version: 1,
                frames_at: 26,
            }),
        );
        let mut with_frames = header.clone();
        with_frames.extend_from_slice(&frame(b"{\"Agent\":{}}\n"));
        check(
            &with_frames,
            Ok(Layout::Headed {
                version: 1,
                frames_at: 26,
            }),
        );
        check(&frame(b"{\"Subscribed\":{}}\n"), Ok(Layout::HeaderLess));
        check(&header_of(2), Err(Refused::Newer(2)));
        check(&header_of(0), Err(Refused::DamagedHeader));
        let mut flipped = header.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        check(&flipped, Err(Refused::DamagedHeader));
        check(b"SQLite format 3\0\x10\0\x02\x02", Err(Refused::Foreign));
        check(b"12345678", Err(Refused::Foreign));
    }

    /// A release from before headers reads the header as a frame of changes, and refuses it.
    #[test]
    fn a_header_is_a_frame_no_change_reads_from() {
        let header = file_header();
        let (len, crc) = frame_header(header[..FRAME_HEADER].try_into().expect("8 bytes"));
        let body = &header[FRAME_HEADER..];
        assert_eq!((len as usize, crc), (body.len(), crc32fast::hash(body)));
        assert!(decode_change(body).is_err());
    }
}
