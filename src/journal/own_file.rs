//! The files weir opens for itself (its journal, outputs, error and summary
//! files): never through a symbolic link at the last component, because a
//! guest with a writable directory (or anyone sharing it) could plant one
//! there and have weir write through it to a file nothing granted; and,
//! when read, never waiting on a fifo put in a file's place.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Opens `path` with `options`, refusing a link at its last component
/// (any custom flags set on `options` are replaced).
pub fn open(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    opened(options.custom_flags(libc::O_NOFOLLOW).open(path), path)
}

/// Opens the regular file `path` for reading, refusing a link at its last
/// component and anything but a regular file.
pub fn open_to_read(path: &Path) -> io::Result<File> {
    let file = opened(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path),
        path,
    )?;
    regular(&file, path)?;
    Ok(file)
}

/// The metadata of `file` (opened as `path`), an error unless it is a
/// regular file.
pub fn regular(file: &File, path: &Path) -> io::Result<Metadata> {
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a regular file: name a file of its own",
                path.display()
            ),
        ));
    }
    Ok(metadata)
}

/// An open's result, with an error that says why a link is refused.
fn opened(result: io::Result<File>, path: &Path) -> io::Result<File> {
    result.map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link, and weir does not follow links when it opens its own files \
                     (one planted by a guest could point anywhere): name the file itself",
                    path.display()
                ),
            )
        } else {
            e
        }
    })
}
