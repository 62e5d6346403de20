//! A skill package as one `.tar.gz` archive: packed deterministically (same
//! files, same bytes, same digest) and unpacked defensively (no paths that
//! leave the package, no links, no special files, bounded sizes).

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Limits on what an archive may unpack to. Every one is checked against a
/// header before what it describes is read.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// Largest single file, in bytes.
    pub max_file_bytes: u64,
    /// Largest total of all entries' data (files, extension headers and
    /// anything else an entry carries), in bytes.
    pub max_total_bytes: u64,
    /// Most entries (files, directories and global PAX headers).
    pub max_entries: usize,
    /// Largest GNU long-name or PAX extension header, in bytes.
    pub max_header_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_file_bytes: 256 << 20,
            max_total_bytes: 512 << 20,
            max_entries: 10_000,
            max_header_bytes: 64 << 10,
        }
    }
}

impl ArchiveLimits {
    /// The most an archive within the other limits decompresses to: all
    /// entries' data, plus a header block and padding for each entry and
    /// the two extension headers each may have, plus the end blocks. Past
    /// this the gzip stream is refused whatever the headers claim.
    fn max_stream_bytes(&self) -> u64 {
        const BLOCK: u64 = 512;
        let headers = (self.max_entries as u64).saturating_mul(3);
        self.max_total_bytes
            .saturating_add(headers.saturating_mul(2 * BLOCK))
            .saturating_add(2 * BLOCK)
    }
}

/// A reader that fails once more than `left` bytes have been read through it:
/// the decompressed stream's budget (a gzip bomb ends here).
struct Budget<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more tells a stream that ends exactly here from one
            // that goes on.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            return Err(std::io::Error::other(format!(
                "the archive decompresses to more than {} bytes",
                self.limit
            )));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..want])?;
        self.left -= read as u64;
        Ok(read)
    }
}

/// An archive that could not be packed or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// An entry is not allowed.
    #[error("archive entry `{entry}`: {message}")]
    Entry {
        /// The entry's path as stored.
        entry: String,
        /// Why it is refused.
        message: String,
    },
    /// The archive is over a limit.
    #[error("archive refused: {0}")]
    TooBig(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let context = context.into();
    move |source| ArchiveError::Io { context, source }
}

/// The files of `dir` (recursively), as sorted relative paths with `/`.
/// Links and special files are refused.
fn files_of(dir: &Path) -> Result<Vec<(String, PathBuf)>, ArchiveError> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(io(current.display().to_string()))?;
        for entry in entries {
            let entry = entry.map_err(io(current.display().to_string()))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io(path.display().to_string()))?;
            let relative = path
                .strip_prefix(dir)
                .expect("walked from dir")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                out.push((relative, path));
            } else {
                return Err(ArchiveError::Entry {
                    entry: relative,
                    message: "links and special files cannot be packed".into(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Packs the files of `dir` into a gzipped tar at `out`: sorted, with zero
/// timestamps and owners, so the same files always give the same bytes.
pub fn pack(dir: &Path, out: &Path) -> Result<(), ArchiveError> {
    let files = files_of(dir)?;
    let file = std::fs::File::create(out).map_err(io(out.display().to_string()))?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::best()));
    tar.mode(tar::HeaderMode::Deterministic);
    for (relative, path) in files {
        let mut header = tar::Header::new_ustar();
        let metadata = std::fs::metadata(&path).map_err(io(path.display().to_string()))?;
        header.set_size(metadata.len());
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        let reader = std::fs::File::open(&path).map_err(io(path.display().to_string()))?;
        tar.append_data(&mut header, &relative, reader)
            .map_err(io(format!("packing {relative}")))?;
    }
    let gz = tar
        .into_inner()
        .map_err(io(format!("writing {}", out.display())))?;
    let mut file = gz
        .finish()
        .map_err(io(format!("writing {}", out.display())))?;
    file.flush()
        .map_err(io(format!("writing {}", out.display())))?;
    file.sync_all()
        .map_err(io(format!("writing {}", out.display())))?;
    Ok(())
}

/// What the extension headers before a member say about it.
#[derive(Default)]
struct Extensions {
    /// The member's path, from a GNU long-name or a PAX `path` record.
    path: Option<Vec<u8>>,
    /// The member's size, from a PAX `size` record.
    size: Option<u64>,
    /// A PAX header was seen (at most one per member).
    pax: bool,
}

impl Extensions {
    fn is_empty(&self) -> bool {
        self.path.is_none() && self.size.is_none() && !self.pax
    }

    fn set_path(
        &mut self,
        path: Vec<u8>,
        refuse: &dyn Fn(String) -> ArchiveError,
    ) -> Result<(), ArchiveError> {
        if self.path.replace(path).is_some() {
            return Err(refuse(
                "two names for one entry (GNU long names or PAX paths)".into(),
            ));
        }
        Ok(())
    }
}

/// The PAX records weir acts on: `path` (and `size`, which must agree with
/// the header). Records that would make another tar reader see different
/// files (`linkpath`, sparse maps, a global `path` or `size`) are refused.
fn read_pax(
    data: &[u8],
    global: bool,
    into: &mut Extensions,
    refuse: &dyn Fn(String) -> ArchiveError,
) -> Result<(), ArchiveError> {
    for record in tar::PaxExtensions::new(data) {
        let record = record.map_err(|e| refuse(format!("a malformed PAX header: {e}")))?;
        let key = String::from_utf8_lossy(record.key_bytes());
        let settable = !global;
        match &*key {
            "path" if settable => into.set_path(record.value_bytes().to_vec(), refuse)?,
            "size" if settable => {
                let size = record
                    .value()
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| refuse("a PAX `size` that is not a number".into()))?;
                into.size = Some(size);
            }
            "path" | "size" | "linkpath" => {
                return Err(refuse(format!(
                    "a {} PAX header may not set `{key}`",
                    if global { "global" } else { "member's" }
                )));
            }
            _ if key.starts_with("GNU.sparse") => {
                return Err(refuse("sparse files are not allowed".into()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Unpacks the archive at `archive` into the empty directory `into`,
/// refusing entries that are absolute, contain `..`, are links or special
/// files, or go over `limits`. On error `into` may hold part of the files:
/// the caller unpacks into a temporary directory and discards it.
///
/// The tar crate is used for raw headers only: its own handling of GNU
/// long names, PAX headers and sparse maps reads them whole before anything
/// can check their size, so weir reads those itself, each against
/// `limits.max_header_bytes` before a byte of it is read, and the
/// decompressed stream as a whole has a budget too.
pub fn unpack(archive: &Path, into: &Path, limits: ArchiveLimits) -> Result<(), ArchiveError> {
    let file = std::fs::File::open(archive).map_err(io(archive.display().to_string()))?;
    let limit = limits.max_stream_bytes();
    let mut tar = tar::Archive::new(Budget {
        inner: GzDecoder::new(file),
        left: limit,
        limit,
    });
    let reading = || io(format!("reading {}", archive.display()));
    let entries = tar.entries().map_err(reading())?.raw(true);
    let mut total: u64 = 0;
    let mut count = 0usize;
    let mut pending = Extensions::default();
    for entry in entries {
        let mut entry = entry.map_err(reading())?;
        let kind = entry.header().entry_type();
        let stored = entry.path_bytes().into_owned();
        let size = entry.size();
        let refuse = |message: String| ArchiveError::Entry {
            entry: String::from_utf8_lossy(&stored).into_owned(),
            message,
        };
        let extension = match kind {
            tar::EntryType::GNULongName => Some("GNU long-name"),
            tar::EntryType::XHeader => Some("PAX"),
            tar::EntryType::XGlobalHeader => Some("global PAX"),
            tar::EntryType::GNULongLink => {
                return Err(refuse(
                    "a GNU long link name: links are not allowed in a skill package".into(),
                ));
            }
            _ => None,
        };
        if kind == tar::EntryType::XGlobalHeader || extension.is_none() {
            count += 1;
            if count > limits.max_entries {
                return Err(ArchiveError::TooBig(format!(
                    "more than {} entries",
                    limits.max_entries
                )));
            }
        }
        if let Some(what) = extension
            && size > limits.max_header_bytes
        {
            return Err(ArchiveError::TooBig(format!(
                "a {what} header of {size} bytes (`{}`), over the {} byte limit for headers",
                String::from_utf8_lossy(&stored),
                limits.max_header_bytes
            )));
        }
        // Every entry's data counts, whatever it is, before it is read or
        // skipped.
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TooBig(format!(
                "more than {} bytes in all",
                limits.max_total_bytes
            )));
        }
        if let Some(what) = extension {
            let mut data = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(size)
                .read_to_end(&mut data)
                .map_err(reading())?;
            if data.len() as u64 != size {
                return Err(refuse(format!("the archive ends inside a {what} header")));
            }
            match kind {
                tar::EntryType::GNULongName => {
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    pending.set_path(data, &refuse)?;
                }
                tar::EntryType::XHeader => {
                    if std::mem::replace(&mut pending.pax, true) {
                        return Err(refuse("two PAX headers for one entry".into()));
                    }
                    read_pax(&data, false, &mut pending, &refuse)?;
                }
                _ => read_pax(&data, true, &mut Extensions::default(), &refuse)?,
            }
            continue;
        }
        let extensions = std::mem::take(&mut pending);
        let raw_bytes = extensions.path.unwrap_or(stored.clone());
        let raw = String::from_utf8_lossy(&raw_bytes).into_owned();
        let refuse = |message: &str| ArchiveError::Entry {
            entry: raw.clone(),
            message: message.to_string(),
        };
        if extensions.size.is_some_and(|declared| declared != size) {
            return Err(refuse(
                "its PAX size and its header's size differ (tar readers would disagree on it)",
            ));
        }
        let relative = super::package::inside(&raw)
            .ok_or_else(|| refuse("absolute paths and `..` are not allowed"))?;
        match kind {
            tar::EntryType::Directory => {
                let dir = into.join(&relative);
                std::fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                return Err(refuse("links are not allowed in a skill package"));
            }
            _ => return Err(refuse("only files and directories are allowed")),
        }
        if size > limits.max_file_bytes {
            return Err(ArchiveError::TooBig(format!(
                "`{raw}` is {size} bytes, over the {} byte limit per file",
                limits.max_file_bytes
            )));
        }
        let target = into.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
        }
        // Copy at most the declared size: a lying header cannot make a
        // bigger file.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(io(target.display().to_string()))?;
        let copied = std::io::copy(&mut (&mut entry).take(size), &mut out)
            .map_err(io(format!("unpacking {raw}")))?;
        if copied != size {
            return Err(refuse("the archive ends inside this file"));
        }
    }
    if !pending.is_empty() {
        return Err(ArchiveError::Entry {
            entry: "(end of archive)".into(),
            message: "the archive ends after an extension header, without its entry".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) {
        std::fs::create_dir_all(dir.join("components")).unwrap();
        std::fs::write(dir.join("SKILL.md"), "---\nname: x\n---\nbody\n").unwrap();
        std::fs::write(dir.join("components/a.wasm"), b"\0asm").unwrap();
    }

    #[test]
    fn packing_is_deterministic_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample(&src);
        let (a, b) = (tmp.path().join("a.tar.gz"), tmp.path().join("b.tar.gz"));
        pack(&src, &a).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(src.join("SKILL.md"), "---\nname: x\n---\nbody\n").unwrap();
        pack(&src, &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack(&a, &out, ArchiveLimits::default()).unwrap();
        assert_eq!(
            std::fs::read(out.join("components/a.wasm")).unwrap(),
            b"\0asm"
        );
    }

    /// Writes a raw tar with one entry whose header says `path` and `kind`.
    fn hostile_archive(path: &str, kind: tar::EntryType, data: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut tar =
            tar::Builder::new(GzEncoder::new(file.reopen().unwrap(), Compression::fast()));
        let mut header = tar::Header::new_gnu();
        // Bypass the builder's path checks: write the name bytes directly.
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_size(data.len() as u64);
        header.set_entry_type(kind);
        if kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        tar.append(&header, data).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        file
    }

    #[test]
    fn hostile_entries_are_refused() {
        for (path, kind, expect) in [
            ("../escape.txt", tar::EntryType::Regular, "`..`"),
            ("/etc/cron.d/x", tar::EntryType::Regular, "absolute"),
            ("a/../../x", tar::EntryType::Regular, "`..`"),
            ("link", tar::EntryType::Symlink, "links"),
            ("fifo", tar::EntryType::Fifo, "only files"),
        ] {
            let archive = hostile_archive(path, kind, b"data");
            let out = tempfile::tempdir().unwrap();
            let err = unpack(archive.path(), out.path(), ArchiveLimits::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{path}: {err}");
            assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "{path}");
        }
    }

    /// Writes a gzipped tar of raw `(header, data)` members: each header's
    /// size is whatever the test set, the data as given (padded to a block),
    /// so a header may claim more than follows.
    fn raw_archive(members: &[(tar::Header, Vec<u8>)]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut gz = GzEncoder::new(file.reopen().unwrap(), Compression::fast());
        for (header, data) in members {
            gz.write_all(header.as_bytes()).unwrap();
            gz.write_all(data).unwrap();
            gz.write_all(&vec![0u8; (512 - data.len() % 512) % 512])
                .unwrap();
        }
        gz.write_all(&[0u8; 1024]).unwrap();
        gz.finish().unwrap();
        file
    }

    /// A header of `kind` named `name` that claims `size` bytes.
    fn header(kind: tar::EntryType, name: &str, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        header.set_size(size);
        header.set_entry_type(kind);
        header.set_cksum();
        header
    }

    fn pax(records: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in records {
            let body = format!(" {key}={value}\n");
            let mut len = body.len() + 1;
            while format!("{len}").len() + body.len() != len {
                len += 1;
            }
            out.extend_from_slice(format!("{len}{body}").as_bytes());
        }
        out
    }

    fn unpack_err(archive: &tempfile::NamedTempFile) -> String {
        let out = tempfile::tempdir().unwrap();
        let err = unpack(archive.path(), out.path(), ArchiveLimits::default())
            .unwrap_err()
            .to_string();
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "{err}");
        err
    }

    #[test]
    fn extension_headers_are_bounded_before_they_are_read() {
        let long = "././@LongLink";
        let file = |name: &str| (header(tar::EntryType::Regular, name, 4), b"data".to_vec());
        // A long name claiming 3 GiB, with little behind it: refused on the
        // header's word, before anything is read or allocated.
        let claims = raw_archive(&[
            (
                header(tar::EntryType::GNULongName, long, 3 << 30),
                vec![b'a'; 4096],
            ),
            file("x"),
        ]);
        let err = unpack_err(&claims);
        assert!(
            err.contains("a GNU long-name header of 3221225472 bytes")
                && err.contains("over the 65536 byte limit for headers"),
            "{err}"
        );
        // A real 8 MiB long name (what a 756 KB bomb inflates to, scaled
        // down): refused the same way.
        let real = raw_archive(&[
            (
                header(tar::EntryType::GNULongName, long, 8 << 20),
                vec![b'a'; 8 << 20],
            ),
            file("x"),
        ]);
        assert!(
            unpack_err(&real).contains("a GNU long-name header of 8388608 bytes"),
            "{}",
            unpack_err(&real)
        );
        // PAX headers, per entry and global, claimed or real.
        for (kind, what) in [
            (tar::EntryType::XHeader, "a PAX header"),
            (tar::EntryType::XGlobalHeader, "a global PAX header"),
        ] {
            let claims = raw_archive(&[
                (header(kind, "pax", u64::MAX >> 1), pax(&[("comment", "x")])),
                file("x"),
            ]);
            let err = unpack_err(&claims);
            assert!(
                err.contains(what) && err.contains("limit for headers"),
                "{err}"
            );
            let records = pax(&[("comment", &"c".repeat(1 << 20))]);
            let real = raw_archive(&[
                (header(kind, "pax", records.len() as u64), records),
                file("x"),
            ]);
            let err = unpack_err(&real);
            assert!(err.contains(&format!("{what} of 1048")), "{err}");
        }
        // A long link name is refused outright (links are).
        let link = raw_archive(&[(
            header(tar::EntryType::GNULongLink, long, 4),
            b"/etc".to_vec(),
        )]);
        assert!(unpack_err(&link).contains("links are not allowed"));
        // Sparse files (whose maps the tar crate reads header by header) too.
        let sparse = raw_archive(&[(header(tar::EntryType::GNUSparse, "s", 4), b"data".to_vec())]);
        assert!(unpack_err(&sparse).contains("only files and directories"));
    }

    #[test]
    fn long_names_and_pax_paths_within_limits_unpack() {
        let name = format!("references/{}.md", "n".repeat(150));
        let member = |path_in_header: &str| {
            (
                header(tar::EntryType::Regular, path_in_header, 4),
                b"text".to_vec(),
            )
        };
        let gnu = raw_archive(&[
            (
                header(
                    tar::EntryType::GNULongName,
                    "././@LongLink",
                    name.len() as u64 + 1,
                ),
                format!("{name}\0").into_bytes(),
            ),
            member("references/short"),
        ]);
        let records = pax(&[("path", &name), ("size", "4"), ("mtime", "0")]);
        let pax_archive = raw_archive(&[
            (
                header(tar::EntryType::XHeader, "pax", records.len() as u64),
                records,
            ),
            member("references/short"),
        ]);
        for archive in [gnu, pax_archive] {
            let out = tempfile::tempdir().unwrap();
            unpack(archive.path(), out.path(), ArchiveLimits::default()).unwrap();
            assert_eq!(std::fs::read(out.path().join(&name)).unwrap(), b"text");
        }
        // What weir packs itself (tar's builder writes long names as GNU
        // headers) unpacks.
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("references")).unwrap();
        std::fs::write(src.join(&name), b"packed").unwrap();
        let packed = tmp.path().join("p.tar.gz");
        pack(&src, &packed).unwrap();
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack(&packed, &out, ArchiveLimits::default()).unwrap();
        assert_eq!(std::fs::read(out.join(&name)).unwrap(), b"packed");
    }

    #[test]
    fn extension_headers_that_readers_would_disagree_on_are_refused() {
        let file = || (header(tar::EntryType::Regular, "x", 4), b"data".to_vec());
        let x = |records: &[(&str, &str)]| {
            let data = pax(records);
            (
                header(tar::EntryType::XHeader, "pax", data.len() as u64),
                data,
            )
        };
        let g = |records: &[(&str, &str)]| {
            let data = pax(records);
            (
                header(tar::EntryType::XGlobalHeader, "pax", data.len() as u64),
                data,
            )
        };
        let long = |name: &str| {
            (
                header(
                    tar::EntryType::GNULongName,
                    "././@LongLink",
                    name.len() as u64,
                ),
                name.as_bytes().to_vec(),
            )
        };
        for (members, expect) in [
            (
                vec![x(&[("size", "999999")]), file()],
                "PAX size and its header's size differ",
            ),
            (vec![g(&[("path", "evil")]), file()], "may not set `path`"),
            (
                vec![x(&[("linkpath", "/etc")]), file()],
                "may not set `linkpath`",
            ),
            (vec![x(&[("GNU.sparse.map", "0,4")]), file()], "sparse"),
            (
                vec![x(&[("path", "a")]), x(&[("path", "b")]), file()],
                "two PAX headers",
            ),
            (vec![long("a"), x(&[("path", "b")]), file()], "two names"),
            (vec![x(&[("path", "../../etc/x")]), file()], "`..`"),
            (vec![long("/etc/x"), file()], "absolute"),
            (vec![x(&[("path", "x")])], "without its entry"),
        ] {
            let err = unpack_err(&raw_archive(&members));
            assert!(err.contains(expect), "{expect}: {err}");
        }
    }

    #[test]
    fn data_of_any_entry_counts_and_the_stream_has_a_budget() {
        // A directory that claims a gigabyte of data would be skipped
        // (decompressed) by the tar reader: it counts against the total.
        let dir = raw_archive(&[(header(tar::EntryType::Directory, "d/", 1 << 30), Vec::new())]);
        assert!(unpack_err(&dir).contains("bytes in all"));
        // The stream budget: a reader past it fails, one that ends at it
        // does not.
        let read = |len: usize, limit: u64| {
            let mut budget = Budget {
                inner: &vec![0u8; len][..],
                left: limit,
                limit,
            };
            let mut out = Vec::new();
            budget.read_to_end(&mut out).map(|_| out.len())
        };
        assert_eq!(read(1000, 1000).unwrap(), 1000);
        let err = read(1001, 1000).unwrap_err().to_string();
        assert!(
            err.contains("decompresses to more than 1000 bytes"),
            "{err}"
        );
    }

    #[test]
    fn oversized_archives_are_refused() {
        let archive = hostile_archive("big.bin", tar::EntryType::Regular, &[7u8; 4096]);
        let out = tempfile::tempdir().unwrap();
        let limits = ArchiveLimits {
            max_file_bytes: 1024,
            ..ArchiveLimits::default()
        };
        let err = unpack(archive.path(), out.path(), limits)
            .unwrap_err()
            .to_string();
        assert!(err.contains("over the 1024 byte limit"), "{err}");
    }
}
