//! A tiny writer for the `newc` cpio format, the one the kernel unpacks as an
//! initramfs. We write it ourselves (rather than calling `cpio`) so the
//! builder knows every entry and its size, and can report them.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// What an entry holds. File bytes are loaded lazily from `source` when the
/// archive is written, so a plan of the archive costs no memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { source: Source, mode: u32, size: u64 },
    Symlink { target: String },
    CharDev { mode: u32, major: u32, minor: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(PathBuf),
    Bytes(Vec<u8>),
}

/// One entry with the group it is reported under ("kernel modules", ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub node: Node,
    pub group: String,
}

/// The planned archive: destination path (relative, no leading `/`) → entry.
/// A `BTreeMap` keeps parents before children and makes the output reproducible.
#[derive(Debug, Default)]
pub struct Archive {
    entries: BTreeMap<PathBuf, Entry>,
}

/// Normalises "/usr/bin/x" and "usr/bin/x" to "usr/bin/x".
pub fn rel(dest: &Path) -> PathBuf {
    dest.components().filter(|c| matches!(c, Component::Normal(_))).collect()
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry and any missing parent directories. A later add of the
    /// same path replaces the earlier one (the last word wins, as with `cp`).
    pub fn add(&mut self, dest: &Path, node: Node, group: &str) {
        let dest = rel(dest);
        let mut parent = dest.parent();
        while let Some(p) = parent {
            if p.as_os_str().is_empty() {
                break;
            }
            self.entries
                .entry(p.to_path_buf())
                .or_insert(Entry { node: Node::Dir { mode: 0o755 }, group: "directories".into() });
            parent = p.parent();
        }
        self.entries.insert(dest, Entry { node, group: group.into() });
    }

    pub fn contains(&self, dest: &Path) -> bool {
        self.entries.contains_key(&rel(dest))
    }

    pub fn entries(&self) -> impl Iterator<Item = (&PathBuf, &Entry)> {
        self.entries.iter()
    }

    /// Writes the archive in `newc` format, followed by the trailer.
    pub fn write<W: Write>(&self, out: &mut W) -> io::Result<u64> {
        let mut w = Counting { inner: out, n: 0 };
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let name = path.to_string_lossy();
            let ino = ino as u32 + 1;
            match &entry.node {
                Node::Dir { mode } => header(&mut w, ino, 0o040000 | mode, 2, 0, 0, 0, &name)?,
                Node::Symlink { target } => {
                    header(&mut w, ino, 0o120777, 1, target.len() as u32, 0, 0, &name)?;
                    data(&mut w, target.as_bytes())?;
                }
                Node::CharDev { mode, major, minor } => {
                    header(&mut w, ino, 0o020000 | mode, 1, 0, *major, *minor, &name)?
                }
                Node::File { source, mode, .. } => {
                    let bytes = match source {
                        Source::Path(p) => {
                            std::fs::read(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?
                        }
                        Source::Bytes(b) => b.clone(),
                    };
                    let size = u32::try_from(bytes.len()).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: larger than 4 GiB"))
                    })?;
                    header(&mut w, ino, 0o100000 | mode, 1, size, 0, 0, &name)?;
                    data(&mut w, &bytes)?;
                }
            }
        }
        header(&mut w, 0, 0, 1, 0, 0, 0, "TRAILER!!!")?;
        Ok(w.n)
    }
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad<W: Write>(w: &mut Counting<'_, W>) -> io::Result<()> {
    let rem = (w.n % 4) as usize;
    if rem != 0 {
        w.write_all(&[0u8; 4][..4 - rem])?;
    }
    Ok(())
}

fn data<W: Write>(w: &mut Counting<'_, W>, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes)?;
    pad(w)
}

#[allow(clippy::too_many_arguments)]
fn header<W: Write>(
    w: &mut Counting<'_, W>,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: u32,
    rmajor: u32,
    rminor: u32,
    name: &str,
) -> io::Result<()> {
    // Fixed mtime keeps the archive reproducible; nothing in the appliance
    // cares about initramfs timestamps.
    let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, name.len() as u32 + 1, 0];
    let mut h = String::with_capacity(110);
    h.push_str("070701");
    for f in fields {
        h.push_str(&format!("{f:08x}"));
    }
    w.write_all(h.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_sorted_first() {
        let mut a = Archive::new();
        a.add(Path::new("/usr/bin/x"), Node::Symlink { target: "y".into() }, "t");
        let names: Vec<_> = a.entries().map(|(p, _)| p.to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["usr", "usr/bin", "usr/bin/x"]);
    }

    #[test]
    fn newc_layout_is_aligned_and_has_trailer() {
        let mut a = Archive::new();
        a.add(Path::new("init"), Node::File { source: Source::Bytes(b"hello".to_vec()), mode: 0o755, size: 5 }, "t");
        let mut out = Vec::new();
        let n = a.write(&mut out).unwrap();
        assert_eq!(n as usize, out.len());
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        // header(110) + "init\0" (5) = 115 → pad to 116, data 5 → pad to 124
        assert_eq!(&out[116..121], b"hello");
        assert_eq!(&out[124..130], b"070701");
        let tail = String::from_utf8_lossy(&out[out.len() - 16..]).into_owned();
        assert!(tail.contains("TRAILER!!!"));
        // file mode field: regular file 0755
        assert_eq!(&out[14..22], b"000081ed");
    }
}
