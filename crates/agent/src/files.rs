//! File requests: read/write (streamed), stat, list, mkdir, remove, rename, tar download and
//! upload. Paths are absolute paths inside the sandbox (the agent runs inside it).
//! Neither direction ever holds a whole file in memory: data moves in `Data` frames of at
//! most `DATA_CHUNK_BYTES`.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use shoal_agent_proto::{DirEntry, ErrorKind, FileKind, Request, Response, DATA_CHUNK_BYTES};

use crate::conn::{FrameReader, Writer, WRITE_POLL};
use crate::error::{AgentError, AgentResult};
use crate::server::op_name;
use crate::tar::{Extractor, TarWriter};

/// Paths must be absolute (there is no working directory to be relative to).
fn abs(path: &str) -> AgentResult<&Path> {
    if !path.starts_with('/') {
        return Err(AgentError::invalid(format!(
            "path {path:?} is not absolute"
        )));
    }
    if path.contains('\0') {
        return Err(AgentError::invalid(format!(
            "path {path:?} contains a NUL byte"
        )));
    }
    Ok(Path::new(path))
}

pub fn file_kind(meta: &Metadata) -> FileKind {
    let ft = meta.file_type();
    if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

fn mtime_ms(meta: &Metadata) -> i64 {
    meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000
}

fn client_gone(e: io::Error) -> AgentError {
    AgentError::io("cannot send to the client", &e)
}

/// Send the outcome of a download: `Done` after the data, or the error.
fn finish_download(w: &Writer<'_>, result: AgentResult<u64>) {
    let frame = match result {
        Ok(size) => Response::Done { size },
        Err(e) => e.into(),
    };
    let _ = w.send_last(&frame);
}

/// Downloads wait for a slow client, but not forever (see `Writer`).
fn download_socket(stream: &UnixStream) -> Writer<'_> {
    let _ = stream.set_write_timeout(Some(WRITE_POLL));
    Writer::new(stream)
}

pub fn read_file(stream: &UnixStream, path: &str, offset: u64, len: Option<u64>) {
    let w = download_socket(stream);
    let result = (|| {
        let p = abs(path)?;
        let mut file =
            File::open(p).map_err(|e| AgentError::io(format!("cannot read {path}"), &e))?;
        let meta = file
            .metadata()
            .map_err(|e| AgentError::io(format!("cannot read {path}"), &e))?;
        if meta.is_dir() {
            return Err(AgentError::invalid(format!(
                "cannot read {path}: it is a directory"
            )));
        }
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| AgentError::io(format!("cannot seek to {offset} in {path}"), &e))?;
        }
        let mut left = len.unwrap_or(u64::MAX);
        let mut buf = vec![0u8; DATA_CHUNK_BYTES];
        let mut sent = 0u64;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = match file.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(AgentError::io(format!("cannot read {path}"), &e)),
            };
            w.send(&Response::Data {
                data: buf[..n].to_vec(),
            })
            .map_err(client_gone)?;
            sent += n as u64;
            left -= n as u64;
        }
        Ok(sent)
    })();
    finish_download(&w, result);
}

pub fn tar_download(stream: &UnixStream, path: &str) {
    let w = download_socket(stream);
    let result = (|| {
        let p = abs(path)?;
        let meta =
            fs::metadata(p).map_err(|e| AgentError::io(format!("cannot archive {path}"), &e))?;
        let mut tw = TarWriter::new(|chunk: &[u8]| {
            w.send(&Response::Data {
                data: chunk.to_vec(),
            })
        });
        tw.write_tree(p, &meta)?;
        tw.finish()
    })();
    finish_download(&w, result);
}

/// Where the client's upload frames go.
trait Upload {
    fn data(&mut self, data: &[u8]) -> AgentResult<()>;
}

impl Upload for (File, &str) {
    fn data(&mut self, data: &[u8]) -> AgentResult<()> {
        self.0
            .write_all(data)
            .map_err(|e| AgentError::io(format!("cannot write {}", self.1), &e))
    }
}

impl Upload for Extractor {
    fn data(&mut self, data: &[u8]) -> AgentResult<()> {
        self.feed(data)
    }
}

/// Feed the client's `Data` frames to `sink` until `End`; returns the byte count. `ended`
/// says whether the `End` frame (or the end of the connection) was read, even on error.
fn receive(
    reader: &mut FrameReader<'_>,
    sink: &mut dyn Upload,
    what: &str,
    ended: &mut bool,
) -> AgentResult<u64> {
    let mut bytes = 0u64;
    loop {
        let frame = reader
            .next()
            .map_err(|e| AgentError::io(format!("upload of {what} broke off"), &e));
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                *ended = true;
                return Err(AgentError::invalid(format!(
                    "upload of {what} ended without an end frame ({bytes} bytes received)"
                )));
            }
            Err(e) => {
                *ended = true; // a broken connection cannot be drained either
                return Err(e);
            }
        };
        match frame {
            Ok(Request::Data { data }) => {
                sink.data(&data)?;
                bytes += data.len() as u64;
            }
            Ok(Request::End) => {
                *ended = true;
                return Ok(bytes);
            }
            Ok(other) => {
                return Err(AgentError::invalid(format!(
                    "expected data or end during the upload of {what}, got {}",
                    op_name(&other)
                )))
            }
            Err(message) => return Err(AgentError::invalid(message)),
        }
    }
}

/// Answer an upload: on failure the error goes out at once, then the rest of the upload is
/// read and discarded, so the client can finish sending and read the answer.
fn finish_upload(
    stream: &UnixStream,
    mut reader: FrameReader<'_>,
    result: AgentResult<u64>,
    ended: bool,
) {
    let w = Writer::new(stream);
    match result {
        Ok(bytes) => {
            let _ = w.send_last(&Response::Ok { bytes: Some(bytes) });
        }
        Err(e) => {
            let _ = w.send_last(&e.into());
            if !ended {
                let _ = reader.skip_until_end();
            }
        }
    }
}

/// Removes a temporary file unless disarmed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

pub fn write_file(
    stream: &UnixStream,
    mut reader: FrameReader<'_>,
    path: &str,
    mode: Option<u32>,
    append: bool,
) {
    let mut ended = false;
    let result = (|| {
        let p = abs(path)?;
        if mode.is_some_and(|m| m > 0o7777) {
            return Err(AgentError::invalid(format!(
                "mode {:o} is not a permission mode",
                mode.unwrap()
            )));
        }
        // Write through a symlink to its target (renaming over it would replace the link).
        let target = match fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
            }
            _ => p.to_path_buf(),
        };
        let existing = match fs::metadata(&target) {
            Ok(m) if m.is_dir() => {
                return Err(AgentError::invalid(format!(
                    "cannot write {path}: it is a directory"
                )))
            }
            Ok(m) => Some(m),
            Err(_) => None,
        };
        if append {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(mode.unwrap_or(0o644))
                .open(&target)
                .map_err(|e| AgentError::io(format!("cannot open {path} for appending"), &e))?;
            if let Some(m) = mode {
                file.set_permissions(fs::Permissions::from_mode(m))
                    .map_err(|e| AgentError::io(format!("cannot set the mode of {path}"), &e))?;
            }
            return receive(&mut reader, &mut (file, path), path, &mut ended);
        }

        // A temporary file next to the target, renamed over it at the end.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = target.parent().unwrap_or(Path::new("/"));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            ".{name}.shoal-upload-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => AgentError::not_found(format!(
                    "cannot write {path}: directory {} does not exist",
                    dir.display()
                )),
                _ => AgentError::io(format!("cannot write {path}"), &e),
            })?;
        let guard = TempFile(Some(tmp.clone()));
        let mut upload = (file, path);
        let bytes = receive(&mut reader, &mut upload, path, &mut ended)?;
        let (file, _) = upload;
        let final_mode = mode
            .or(existing.as_ref().map(|m| m.mode() & 0o7777))
            .unwrap_or(0o644);
        file.set_permissions(fs::Permissions::from_mode(final_mode))
            .map_err(|e| AgentError::io(format!("cannot set the mode of {path}"), &e))?;
        if let Some(m) = &existing {
            // Keep the owner of a replaced file (only root can; best effort).
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        drop(file);
        fs::rename(&tmp, &target)
            .map_err(|e| AgentError::io(format!("cannot replace {path}"), &e))?;
        std::mem::forget(guard);
        Ok(bytes)
    })();
    finish_upload(stream, reader, result, ended);
}

pub fn tar_upload(stream: &UnixStream, mut reader: FrameReader<'_>, path: &str) {
    let mut ended = false;
    let result = (|| {
        let p = abs(path)?;
        match fs::metadata(p) {
            Ok(m) if !m.is_dir() => {
                return Err(AgentError::invalid(format!(
                    "cannot extract into {path}: not a directory"
                )))
            }
            Ok(_) => {}
            Err(_) => fs::create_dir_all(p)
                .map_err(|e| AgentError::io(format!("cannot create {path}"), &e))?,
        }
        let mut extractor = Extractor::new(p.to_path_buf());
        receive(&mut reader, &mut extractor, path, &mut ended)?;
        extractor.finish()
    })();
    finish_upload(stream, reader, result, ended);
}

fn reply(result: AgentResult<Response>) -> Response {
    result.unwrap_or_else(Response::from)
}

pub fn stat(path: &str) -> Response {
    reply((|| {
        let meta = fs::symlink_metadata(abs(path)?)
            .map_err(|e| AgentError::io(format!("cannot stat {path}"), &e))?;
        Ok(Response::Stat {
            file_kind: file_kind(&meta),
            size: meta.len(),
            mode: meta.mode() & 0o7777,
            mtime_ms: mtime_ms(&meta),
        })
    })())
}

pub fn list(path: &str) -> Response {
    reply((|| {
        let p = abs(path)?;
        let read =
            fs::read_dir(p).map_err(|e| AgentError::io(format!("cannot list {path}"), &e))?;
        let mut entries = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| AgentError::io(format!("cannot list {path}"), &e))?;
            // Does not follow symlinks; an entry removed meanwhile is skipped.
            let Ok(meta) = entry.metadata() else { continue };
            entries.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind: file_kind(&meta),
                size: meta.len(),
                mode: meta.mode() & 0o7777,
                mtime_ms: mtime_ms(&meta),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::Entries { entries })
    })())
}

const OK: Response = Response::Ok { bytes: None };

pub fn mkdir(path: &str, parents: bool) -> Response {
    reply((|| {
        let p = abs(path)?;
        let created = if parents {
            fs::create_dir_all(p)
        } else {
            fs::create_dir(p)
        };
        created.map_err(|e| AgentError::io(format!("cannot create the directory {path}"), &e))?;
        // create_dir_all is happy with an existing directory, but not with a file there.
        if !p.is_dir() {
            return Err(AgentError::new(
                ErrorKind::Exists,
                format!("cannot create the directory {path}: a file exists there"),
            ));
        }
        Ok(OK)
    })())
}

pub fn remove(path: &str, recursive: bool) -> Response {
    reply((|| {
        let p = abs(path)?;
        if p.components().count() == 1 {
            return Err(AgentError::invalid("refusing to remove /"));
        }
        let meta = fs::symlink_metadata(p)
            .map_err(|e| AgentError::io(format!("cannot remove {path}"), &e))?;
        let removed = if !meta.is_dir() {
            fs::remove_file(p)
        } else if recursive {
            fs::remove_dir_all(p)
        } else {
            fs::remove_dir(p)
        };
        removed.map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTEMPTY) {
                AgentError::invalid(format!(
                    "cannot remove {path}: directory not empty (use recursive)"
                ))
            } else {
                AgentError::io(format!("cannot remove {path}"), &e)
            }
        })?;
        Ok(OK)
    })())
}

pub fn rename(from: &str, to: &str) -> Response {
    reply((|| {
        let (f, t) = (abs(from)?, abs(to)?);
        fs::rename(f, t).map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::ENOENT) if f.symlink_metadata().is_ok() => AgentError::not_found(
                    format!("cannot rename {from} to {to}: the directory of {to} does not exist"),
                ),
                Some(libc::EXDEV) => AgentError::invalid(format!(
                    "cannot rename {from} to {to}: they are on different filesystems"
                )),
                _ => AgentError::io(format!("cannot rename {from} to {to}"), &e),
            };
            why
        })?;
        Ok(OK)
    })())
}
