//! A skill package as one `.tar.gz` archive: packed deterministically (same
//! files, same bytes, same digest) and unpacked defensively (no paths that
//! leave the package, no links, no special files, bounded sizes).

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Limits on what an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// Largest single file, in bytes.
    pub max_file_bytes: u64,
    /// Largest total of all files, in bytes.
    pub max_total_bytes: u64,
    /// Most entries.
    pub max_entries: usize,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_file_bytes: 256 << 20,
            max_total_bytes: 512 << 20,
            max_entries: 10_000,
        }
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

/// Unpacks the archive at `archive` into the empty directory `into`,
/// refusing entries that are absolute, contain `..`, are links or special
/// files, or go over `limits`. On error `into` may hold part of the files:
/// the caller unpacks into a temporary directory and discards it.
pub fn unpack(archive: &Path, into: &Path, limits: ArchiveLimits) -> Result<(), ArchiveError> {
    let file = std::fs::File::open(archive).map_err(io(archive.display().to_string()))?;
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let mut total: u64 = 0;
    let entries = tar
        .entries()
        .map_err(io(format!("reading {}", archive.display())))?;
    for (count, entry) in entries.enumerate() {
        if count >= limits.max_entries {
            return Err(ArchiveError::TooBig(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        let mut entry = entry.map_err(io(format!("reading {}", archive.display())))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |message: &str| ArchiveError::Entry {
            entry: raw.clone(),
            message: message.to_string(),
        };
        let kind = entry.header().entry_type();
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
        let size = entry
            .header()
            .size()
            .map_err(io(format!("reading {raw}")))?;
        if size > limits.max_file_bytes {
            return Err(ArchiveError::TooBig(format!(
                "`{raw}` is {size} bytes, over the {} byte limit per file",
                limits.max_file_bytes
            )));
        }
        total += size;
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TooBig(format!(
                "more than {} bytes in all",
                limits.max_total_bytes
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
