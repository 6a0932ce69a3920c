//! A minimal streaming ustar writer and extractor (no external crate, no `tar` binary).
//!
//! Writer: regular files, directories and symlinks; names longer than ustar allows get a GNU
//! `L` record (`K` for link targets), sizes beyond 8 GiB the GNU base-256 encoding. Output
//! goes out in chunks, so nothing is held in memory beyond one chunk.
//!
//! Extractor: fed the archive in pieces of any size; handles regular files, directories,
//! symlinks, hard links, GNU `L`/`K` and pax `path`/`linkpath`/`size` records; skips devices,
//! fifos and unknown types. Every entry must stay inside the destination: absolute names,
//! `..` that climbs out, and paths through a symlink are refused.

use std::ffi::{CString, OsStr};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use shoal_agent_proto::DATA_CHUNK_BYTES;

use crate::error::{AgentError, AgentResult};

const BLOCK: usize = 512;

/// Streams an archive to `out` in chunks of `DATA_CHUNK_BYTES`.
pub struct TarWriter<F: FnMut(&[u8]) -> io::Result<()>> {
    out: F,
    buf: Vec<u8>,
    total: u64,
}

impl<F: FnMut(&[u8]) -> io::Result<()>> TarWriter<F> {
    pub fn new(out: F) -> Self {
        TarWriter {
            out,
            buf: Vec::with_capacity(2 * DATA_CHUNK_BYTES),
            total: 0,
        }
    }

    fn write(&mut self, data: &[u8]) -> AgentResult<()> {
        self.buf.extend_from_slice(data);
        self.total += data.len() as u64;
        while self.buf.len() >= DATA_CHUNK_BYTES {
            (self.out)(&self.buf[..DATA_CHUNK_BYTES]).map_err(client_gone)?;
            self.buf.drain(..DATA_CHUNK_BYTES);
        }
        Ok(())
    }

    /// The end-of-archive marker and the last chunk; returns the archive's size.
    pub fn finish(mut self) -> AgentResult<u64> {
        self.write(&[0; 2 * BLOCK])?;
        if !self.buf.is_empty() {
            (self.out)(&self.buf).map_err(client_gone)?;
        }
        Ok(self.total)
    }

    /// Archive `root`: a directory's contents (relative names), or one entry named by the
    /// base name of anything else. `meta` is `root`'s (followed) metadata.
    pub fn write_tree(&mut self, root: &Path, meta: &Metadata) -> AgentResult<()> {
        if !meta.is_dir() {
            let name = root.file_name().map_or(&b"file"[..], |n| n.as_bytes());
            return self.entry(root, name, meta);
        }
        // Depth first, names sorted; an explicit stack instead of recursion.
        let mut stack: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        self.push_children(root, b"", &mut stack)?;
        while let Some((path, name)) = stack.pop() {
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // vanished meanwhile
                Err(e) => {
                    return Err(AgentError::io(
                        format!("cannot read {}", path.display()),
                        &e,
                    ))
                }
            };
            if meta.is_dir() {
                let mut dir_name = name.clone();
                dir_name.push(b'/');
                self.entry(&path, &dir_name, &meta)?;
                self.push_children(&path, &dir_name, &mut stack)?;
            } else {
                self.entry(&path, &name, &meta)?;
            }
        }
        Ok(())
    }

    fn push_children(
        &mut self,
        dir: &Path,
        prefix: &[u8],
        stack: &mut Vec<(PathBuf, Vec<u8>)>,
    ) -> AgentResult<()> {
        let read = fs::read_dir(dir)
            .map_err(|e| AgentError::io(format!("cannot list {}", dir.display()), &e))?;
        let mut names = Vec::new();
        for entry in read {
            let entry =
                entry.map_err(|e| AgentError::io(format!("cannot list {}", dir.display()), &e))?;
            names.push(entry.file_name());
        }
        names.sort();
        for n in names.into_iter().rev() {
            let mut name = prefix.to_vec();
            name.extend_from_slice(n.as_bytes());
            stack.push((dir.join(&n), name));
        }
        Ok(())
    }

    /// One entry; other file types (sockets, fifos, devices) are skipped.
    fn entry(&mut self, path: &Path, name: &[u8], meta: &Metadata) -> AgentResult<()> {
        let ft = meta.file_type();
        if ft.is_dir() {
            self.header(name, b'5', meta, 0, b"")
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| {
                AgentError::io(format!("cannot read the symlink {}", path.display()), &e)
            })?;
            self.header(name, b'2', meta, 0, target.as_os_str().as_bytes())
        } else if ft.is_file() {
            let mut file = File::open(path)
                .map_err(|e| AgentError::io(format!("cannot read {}", path.display()), &e))?;
            let size = meta.len();
            self.header(name, b'0', meta, size, b"")?;
            let mut left = size;
            let mut chunk = vec![0u8; DATA_CHUNK_BYTES];
            while left > 0 {
                let want = left.min(chunk.len() as u64) as usize;
                let n = match file.read(&mut chunk[..want]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(AgentError::io(
                            format!("cannot read {}", path.display()),
                            &e,
                        ))
                    }
                };
                if n == 0 {
                    // The file shrank while we read it: keep the archive consistent.
                    chunk[..want].fill(0);
                    self.write(&chunk[..want])?;
                    left -= want as u64;
                } else {
                    self.write(&chunk[..n])?;
                    left -= n as u64;
                }
            }
            self.pad(size)
        } else {
            Ok(())
        }
    }

    fn pad(&mut self, size: u64) -> AgentResult<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.write(&[0; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn header(
        &mut self,
        name: &[u8],
        typeflag: u8,
        meta: &Metadata,
        size: u64,
        link: &[u8],
    ) -> AgentResult<()> {
        let (name_field, prefix_field) = match split_name(name) {
            Some(split) => split,
            None => {
                self.long_record(b'L', name)?;
                (&name[..100], &b""[..])
            }
        };
        let link_field = if link.len() > 100 {
            self.long_record(b'K', link)?;
            &link[..100]
        } else {
            link
        };
        let mut h = [0u8; BLOCK];
        h[..name_field.len()].copy_from_slice(name_field);
        numeric(&mut h[100..108], (meta.mode() & 0o7777) as u64);
        numeric(&mut h[108..116], meta.uid() as u64);
        numeric(&mut h[116..124], meta.gid() as u64);
        numeric(&mut h[124..136], size);
        numeric(&mut h[136..148], meta.mtime().max(0) as u64);
        h[156] = typeflag;
        h[157..157 + link_field.len()].copy_from_slice(link_field);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[345..345 + prefix_field.len()].copy_from_slice(prefix_field);
        set_checksum(&mut h);
        self.write(&h)
    }

    /// A GNU long name (`L`) or long link target (`K`) record before the real header.
    fn long_record(&mut self, typeflag: u8, value: &[u8]) -> AgentResult<()> {
        let mut h = [0u8; BLOCK];
        h[..13].copy_from_slice(b"././@LongLink");
        numeric(&mut h[100..108], 0o644);
        numeric(&mut h[108..116], 0);
        numeric(&mut h[116..124], 0);
        let size = value.len() as u64 + 1;
        numeric(&mut h[124..136], size);
        numeric(&mut h[136..148], 0);
        h[156] = typeflag;
        h[257..265].copy_from_slice(b"ustar  \0");
        set_checksum(&mut h);
        self.write(&h)?;
        self.write(value)?;
        self.write(&[0])?;
        self.pad(size)
    }
}

fn client_gone(e: io::Error) -> AgentError {
    AgentError::io("cannot send to the client", &e)
}

/// ustar (name, prefix) for `name`, if it fits.
fn split_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((name, b""));
    }
    name.iter().enumerate().find_map(|(i, &b)| {
        let (prefix, rest) = (&name[..i], &name[i + 1..]);
        (b == b'/' && prefix.len() <= 155 && !rest.is_empty() && rest.len() <= 100)
            .then_some((rest, prefix))
    })
}

/// An octal number with a trailing NUL, or GNU base-256 when it does not fit.
fn numeric(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || value < 1u64 << (3 * digits) {
        let s = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let bytes = value.to_be_bytes();
        let n = bytes.len().min(field.len() - 1);
        let len = field.len();
        field[len - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    }
}

fn set_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn parse_numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        // GNU base-256 (positive only).
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

fn cstr_field(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

enum State {
    Header,
    /// `remaining` bytes of the current entry's data, then `pad` bytes of padding.
    Body {
        remaining: u64,
        pad: usize,
        body: Body,
    },
    Padding(usize),
}

enum Body {
    File {
        file: File,
        path: PathBuf,
        mode: u32,
        mtime: i64,
    },
    Collect {
        buf: Vec<u8>,
        what: u8,
    },
    Skip,
}

/// Extracts an archive fed in pieces into `dest`.
pub struct Extractor {
    dest: PathBuf,
    state: State,
    header: Vec<u8>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_size: Option<u64>,
    /// Directories whose mode and mtime are set at the end (after their contents).
    dirs: Vec<(PathBuf, u32, i64)>,
    /// Archive bytes consumed.
    pub bytes: u64,
    /// The end-of-archive marker was seen (what follows is ignored).
    done: bool,
}

impl Extractor {
    pub fn new(dest: PathBuf) -> Extractor {
        Extractor {
            dest,
            state: State::Header,
            header: Vec::with_capacity(BLOCK),
            long_name: None,
            long_link: None,
            pax_path: None,
            pax_link: None,
            pax_size: None,
            dirs: Vec::new(),
            bytes: 0,
            done: false,
        }
    }

    pub fn feed(&mut self, mut data: &[u8]) -> AgentResult<()> {
        while !data.is_empty() && !self.done {
            match &mut self.state {
                State::Header => {
                    let n = (BLOCK - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..n]);
                    self.consume(&mut data, n);
                    if self.header.len() == BLOCK {
                        let h = std::mem::take(&mut self.header);
                        self.on_header(&h)?;
                    }
                }
                State::Body {
                    remaining, body, ..
                } => {
                    let n = (*remaining).min(data.len() as u64) as usize;
                    match body {
                        Body::File { file, path, .. } => {
                            file.write_all(&data[..n]).map_err(|e| {
                                AgentError::io(format!("cannot write {}", path.display()), &e)
                            })?
                        }
                        Body::Collect { buf, .. } => buf.extend_from_slice(&data[..n]),
                        Body::Skip => {}
                    }
                    *remaining -= n as u64;
                    self.consume(&mut data, n);
                    if let State::Body { remaining: 0, .. } = self.state {
                        self.end_entry()?;
                    }
                }
                State::Padding(left) => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Header;
                    }
                    self.consume(&mut data, n);
                }
            }
        }
        self.bytes += data.len() as u64; // ignored trailing bytes still count as received
        Ok(())
    }

    fn consume(&mut self, data: &mut &[u8], n: usize) {
        *data = &data[n..];
        self.bytes += n as u64;
    }

    /// The archive is complete: check it did not stop mid-entry, then set directory modes.
    pub fn finish(mut self) -> AgentResult<u64> {
        let complete = self.done
            || (matches!(self.state, State::Header) && self.header.is_empty())
            || matches!(self.state, State::Padding(_));
        if !complete {
            return Err(AgentError::invalid(format!(
                "tar archive is truncated (it ends at byte {} in the middle of an entry)",
                self.bytes
            )));
        }
        for (path, mode, mtime) in self.dirs.drain(..).rev() {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| {
                AgentError::io(format!("cannot set the mode of {}", path.display()), &e)
            })?;
            set_mtime(&path, mtime);
        }
        Ok(self.bytes)
    }

    fn on_header(&mut self, h: &[u8]) -> AgentResult<()> {
        let at = self.bytes - BLOCK as u64;
        if h.iter().all(|&b| b == 0) {
            self.done = true;
            return Ok(());
        }
        let stored = parse_numeric(&h[148..156]);
        let unsigned: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u64
                }
            })
            .sum();
        let signed: i64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as i8 as i64
                }
            })
            .sum();
        if stored != Some(unsigned) && stored.map(|s| s as i64) != Some(signed) {
            return Err(AgentError::invalid(format!(
                "not a tar archive: bad header checksum at byte {at}"
            )));
        }
        let typeflag = h[156];
        let size = match self.pax_size.take() {
            Some(s) => s,
            None => parse_numeric(&h[124..136]).ok_or_else(|| {
                AgentError::invalid(format!("tar header at byte {at} has a bad size"))
            })?,
        };
        let mode = (parse_numeric(&h[100..108]).unwrap_or(0o644) & 0o7777) as u32;
        let mtime = parse_numeric(&h[136..148]).unwrap_or(0) as i64;
        let pad = ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize;

        let body = match typeflag {
            b'L' | b'K' | b'x' => {
                let limit = if typeflag == b'x' { 1 << 20 } else { 64 * 1024 };
                if size > limit {
                    return Err(AgentError::invalid(format!(
                        "tar header at byte {at}: extended record of {size} bytes is too large"
                    )));
                }
                Body::Collect {
                    buf: Vec::with_capacity(size as usize),
                    what: typeflag,
                }
            }
            _ => {
                let name = self.entry_name(h);
                let link = self
                    .long_link
                    .take()
                    .or(self.pax_link.take())
                    .unwrap_or_else(|| cstr_field(&h[157..257]).to_vec());
                self.entry(typeflag, &name, &link, mode, mtime)?
            }
        };
        self.state = State::Body {
            remaining: size,
            pad,
            body,
        };
        if size == 0 {
            self.end_entry()?;
        }
        Ok(())
    }

    fn entry_name(&mut self, h: &[u8]) -> Vec<u8> {
        if let Some(n) = self.long_name.take().or(self.pax_path.take()) {
            return n;
        }
        let name = cstr_field(&h[0..100]);
        let prefix = cstr_field(&h[345..500]);
        // The prefix field exists in POSIX ustar only (GNU uses those bytes for other things).
        if &h[257..263] == b"ustar\0" && !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(name);
            full
        } else {
            name.to_vec()
        }
    }

    /// Create what a header describes; returns where its data goes.
    fn entry(
        &mut self,
        typeflag: u8,
        name: &[u8],
        link: &[u8],
        mode: u32,
        mtime: i64,
    ) -> AgentResult<Body> {
        let is_dir = typeflag == b'5' || (matches!(typeflag, 0 | b'0') && name.ends_with(b"/"));
        if is_dir {
            let path = self.target(name)?.unwrap_or_else(|| self.dest.clone());
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(AgentError::new(
                        shoal_agent_proto::ErrorKind::Exists,
                        format!(
                            "tar entry {}: {} exists and is not a directory",
                            show(name),
                            path.display()
                        ),
                    ))
                }
                Err(_) => fs::create_dir(&path)
                    .map_err(|e| AgentError::io(format!("cannot create {}", path.display()), &e))?,
            }
            // Keep it writable for its contents until `finish`.
            if path != self.dest {
                self.dirs.push((path, mode, mtime));
            }
            return Ok(Body::Skip);
        }
        match typeflag {
            0 | b'0' | b'7' => {
                let path = self.file_target(name)?;
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| AgentError::io(format!("cannot create {}", path.display()), &e))?;
                Ok(Body::File {
                    file,
                    path,
                    mode,
                    mtime,
                })
            }
            b'2' => {
                let path = self.file_target(name)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(link), &path).map_err(|e| {
                    AgentError::io(format!("cannot create the symlink {}", path.display()), &e)
                })?;
                set_mtime(&path, mtime);
                Ok(Body::Skip)
            }
            b'1' => {
                let original = self.target(link)?.ok_or_else(|| {
                    AgentError::invalid(format!(
                        "tar entry {} links to the destination itself",
                        show(name)
                    ))
                })?;
                let path = self.file_target(name)?;
                fs::hard_link(&original, &path).map_err(|e| {
                    AgentError::io(
                        format!("cannot link {} to {}", path.display(), original.display()),
                        &e,
                    )
                })?;
                Ok(Body::Skip)
            }
            // Devices, fifos, unknown types: skipped (with their data, if any).
            _ => Ok(Body::Skip),
        }
    }

    fn end_entry(&mut self) -> AgentResult<()> {
        let State::Body { pad, body, .. } = std::mem::replace(&mut self.state, State::Header)
        else {
            return Ok(());
        };
        if pad > 0 {
            self.state = State::Padding(pad);
        }
        match body {
            Body::File {
                file,
                path,
                mode,
                mtime,
            } => {
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|e| {
                        AgentError::io(format!("cannot set the mode of {}", path.display()), &e)
                    })?;
                drop(file);
                set_mtime(&path, mtime);
            }
            Body::Collect { buf, what } => {
                let value = |v: &[u8]| cstr_field(v).to_vec();
                match what {
                    b'L' => self.long_name = Some(value(&buf)),
                    b'K' => self.long_link = Some(value(&buf)),
                    _ => self.parse_pax(&buf),
                }
            }
            Body::Skip => {}
        }
        Ok(())
    }

    /// pax records: "<len> <key>=<value>\n".
    fn parse_pax(&mut self, mut buf: &[u8]) {
        while let Some(sp) = buf.iter().position(|&b| b == b' ') {
            let Some(len) = std::str::from_utf8(&buf[..sp])
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            else {
                return;
            };
            if len <= sp || len > buf.len() {
                return;
            }
            let record = &buf[sp + 1..len];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(eq) = record.iter().position(|&b| b == b'=') {
                let (key, value) = (&record[..eq], &record[eq + 1..]);
                match key {
                    b"path" => self.pax_path = Some(value.to_vec()),
                    b"linkpath" => self.pax_link = Some(value.to_vec()),
                    b"size" => {
                        self.pax_size = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok())
                    }
                    _ => {}
                }
            }
            buf = &buf[len..];
        }
    }

    /// Where a non-directory entry goes: whatever is there (but a directory) is replaced,
    /// never written through.
    fn file_target(&self, name: &[u8]) -> AgentResult<PathBuf> {
        let path = self.target(name)?.ok_or_else(|| {
            AgentError::invalid(format!("tar entry {:?} has no name", show(name)))
        })?;
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => Err(AgentError::new(
                shoal_agent_proto::ErrorKind::Exists,
                format!(
                    "tar entry {}: {} is a directory",
                    show(name),
                    path.display()
                ),
            )),
            Ok(_) => fs::remove_file(&path)
                .map(|()| path.clone())
                .map_err(|e| AgentError::io(format!("cannot replace {}", path.display()), &e)),
            Err(_) => Ok(path),
        }
    }

    /// The path for an entry name inside `dest` (`None`: `dest` itself), creating missing
    /// parent directories. Refuses names that are absolute, climb out with `..`, or go
    /// through a symlink.
    fn target(&self, name: &[u8]) -> AgentResult<Option<PathBuf>> {
        let dest = self.dest.display();
        if name.starts_with(b"/") {
            return Err(AgentError::invalid(format!(
                "tar entry {} is an absolute path (refused: entries must stay inside {dest})",
                show(name)
            )));
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for c in name.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err(AgentError::invalid(format!(
                            "tar entry {} escapes {dest} (refused)",
                            show(name)
                        )));
                    }
                }
                c => parts.push(c),
            }
        }
        let Some((last, parents)) = parts.split_last() else {
            return Ok(None);
        };
        let mut path = self.dest.clone();
        for c in parents {
            path.push(OsStr::from_bytes(c));
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(AgentError::invalid(format!(
                        "tar entry {} would be written through the symlink {} (refused)",
                        show(name),
                        path.display()
                    )))
                }
                Ok(_) => {
                    return Err(AgentError::invalid(format!(
                        "tar entry {}: {} is not a directory",
                        show(name),
                        path.display()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&path)
                    .map_err(|e| AgentError::io(format!("cannot create {}", path.display()), &e))?,
                Err(e) => {
                    return Err(AgentError::io(
                        format!("cannot read {}", path.display()),
                        &e,
                    ))
                }
            }
        }
        path.push(OsStr::from_bytes(last));
        Ok(Some(path))
    }
}

/// Set a path's mtime (not following a symlink); best effort.
fn set_mtime(path: &Path, secs: i64) {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_octal_and_base256() {
        let mut f = [0u8; 12];
        numeric(&mut f, 0o1234);
        assert_eq!(&f, b"00000001234\0");
        assert_eq!(parse_numeric(&f), Some(0o1234));
        numeric(&mut f, 20 << 30); // 20 GiB: more than 11 octal digits hold
        assert_eq!(f[0], 0x80);
        assert_eq!(parse_numeric(&f), Some(20 << 30));
        assert_eq!(parse_numeric(b"  644 \0\0"), Some(0o644));
    }

    #[test]
    fn long_names_split_or_need_a_gnu_record() {
        let name = [b"d".repeat(120), b"/".to_vec(), b"f".repeat(90)].concat();
        let (n, p) = split_name(&name).unwrap();
        assert_eq!((n.len(), p.len()), (90, 120));
        assert!(split_name(&b"x".repeat(150)).is_none());
    }
}
