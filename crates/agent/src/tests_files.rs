//! End-to-end tests of the file requests over a real unix socket.

use shoal_agent_proto::{
    DirEntry, ErrorKind, ExecResult, FileKind, Request, Response, DATA_CHUNK_BYTES,
};
use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::tests::{call, socket, Client};

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-agent-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn err_kind(r: &Response) -> ErrorKind {
    match r {
        Response::Error { error_kind, .. } => *error_kind,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn err_message(r: &Response) -> &str {
    match r {
        Response::Error { message, .. } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

const OK: Response = Response::Ok { bytes: None };

/// Upload `chunks` after `req` (WriteFile/TarUpload); the answer.
fn upload<'a>(req: Request, chunks: impl IntoIterator<Item = &'a [u8]>) -> Response {
    let mut c = Client::connect(socket());
    c.send(&req);
    for chunk in chunks {
        c.send(&Request::Data {
            data: chunk.to_vec(),
        });
    }
    c.send(&Request::End);
    let r = c.recv().expect("an answer");
    assert_eq!(c.recv(), None);
    r
}

fn write(path: &Path, data: &[u8], mode: Option<u32>, append: bool) -> Response {
    upload(
        Request::WriteFile {
            path: s(path),
            mode,
            append,
        },
        data.chunks(1000),
    )
}

/// A download's bytes, or its error.
fn download(req: Request) -> Result<Vec<u8>, Response> {
    let mut c = Client::connect(socket());
    c.send(&req);
    let mut data = Vec::new();
    loop {
        match c.recv() {
            Some(Response::Data { data: d }) => {
                assert!(d.len() <= DATA_CHUNK_BYTES);
                data.extend_from_slice(&d)
            }
            Some(Response::Done { size }) => {
                assert_eq!(size, data.len() as u64);
                assert_eq!(c.recv(), None);
                return Ok(data);
            }
            Some(e @ Response::Error { .. }) => return Err(e),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Deterministic pseudo-random bytes, generated a chunk at a time.
struct Prng(u64);

impl Prng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 32) as u8;
        }
    }
}

/// FNV-1a, 64 bit.
fn fnv(hash: &mut u64, data: &[u8]) {
    for &b in data {
        *hash ^= b as u64;
        *hash = hash.wrapping_mul(0x100000001b3);
    }
}

#[test]
fn hundred_megabytes_round_trip_without_holding_them() {
    let dir = scratch("big");
    let path = dir.join("big.bin");
    const SIZE: usize = 100 * 1024 * 1024;

    let mut c = Client::connect(socket());
    c.send(&Request::WriteFile {
        path: s(&path),
        mode: Some(0o640),
        append: false,
    });
    let mut prng = Prng(0x9e3779b97f4a7c15);
    let mut sent_hash = 0xcbf29ce484222325u64;
    let mut chunk = vec![0u8; DATA_CHUNK_BYTES];
    for _ in 0..SIZE / DATA_CHUNK_BYTES {
        prng.fill(&mut chunk);
        fnv(&mut sent_hash, &chunk);
        c.send(&Request::Data {
            data: chunk.clone(),
        });
    }
    c.send(&Request::End);
    assert_eq!(
        c.recv(),
        Some(Response::Ok {
            bytes: Some(SIZE as u64)
        })
    );

    match call(&Request::Stat { path: s(&path) }) {
        Response::Stat {
            file_kind,
            size,
            mode,
            ..
        } => {
            assert_eq!(
                (file_kind, size, mode),
                (FileKind::File, SIZE as u64, 0o640)
            )
        }
        other => panic!("{other:?}"),
    }

    let mut c = Client::connect(socket());
    c.send(&Request::ReadFile {
        path: s(&path),
        offset: 0,
        len: None,
    });
    let (mut got_hash, mut got) = (0xcbf29ce484222325u64, 0usize);
    loop {
        match c.recv() {
            Some(Response::Data { data }) => {
                assert!(data.len() <= DATA_CHUNK_BYTES);
                fnv(&mut got_hash, &data);
                got += data.len();
            }
            Some(Response::Done { size }) => {
                assert_eq!(size, SIZE as u64);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((got, got_hash), (SIZE, sent_hash));

    // A range.
    let mut expected = vec![0u8; 70_000];
    Prng(0x9e3779b97f4a7c15).fill(&mut expected);
    let part = download(Request::ReadFile {
        path: s(&path),
        offset: 1000,
        len: Some(69_000),
    })
    .unwrap();
    assert_eq!(part, expected[1000..70_000]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn write_replaces_atomically_keeps_mode_and_appends() {
    let dir = scratch("write");
    let f = dir.join("f.txt");
    assert_eq!(
        write(&f, b"hello", None, false),
        Response::Ok { bytes: Some(5) }
    );
    assert_eq!(std::fs::read(&f).unwrap(), b"hello");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
        0o644
    );

    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        write(&f, b"bye", None, false),
        Response::Ok { bytes: Some(3) }
    );
    assert_eq!(std::fs::read(&f).unwrap(), b"bye");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
        0o600
    );

    assert_eq!(write(&f, b"!", None, true), Response::Ok { bytes: Some(1) });
    assert_eq!(std::fs::read(&f).unwrap(), b"bye!");
    let g = dir.join("g.sh");
    assert_eq!(
        write(&g, b"#!/bin/sh\n", Some(0o755), true),
        Response::Ok { bytes: Some(10) }
    );
    assert_eq!(
        std::fs::metadata(&g).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    // Empty file.
    assert_eq!(
        write(&dir.join("empty"), b"", None, false),
        Response::Ok { bytes: Some(0) }
    );

    // Through a symlink: the target is written, the link stays.
    symlink("f.txt", dir.join("link")).unwrap();
    assert_eq!(
        write(&dir.join("link"), b"via link", None, false),
        Response::Ok { bytes: Some(8) }
    );
    assert_eq!(std::fs::read(&f).unwrap(), b"via link");
    assert!(std::fs::symlink_metadata(dir.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());

    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn write_errors_are_answered_and_the_upload_discarded() {
    let dir = scratch("writeerr");
    // Missing directory: the error comes, the rest of the upload is read and dropped.
    let r = write(&dir.join("nope/f"), &[7; 5000], None, false);
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    assert!(err_message(&r).contains(&s(&dir.join("nope"))), "{r:?}");
    // A directory is not a file.
    let r = write(&dir, b"x", None, false);
    assert_eq!(err_kind(&r), ErrorKind::Invalid);
    assert!(err_message(&r).contains("is a directory"), "{r:?}");
    // Relative paths mean nothing here.
    assert_eq!(
        err_kind(&write(Path::new("rel/f"), b"x", None, false)),
        ErrorKind::Invalid
    );
    // An upload that stops without `End` leaves nothing behind.
    let mut c = Client::connect(socket());
    c.send(&Request::WriteFile {
        path: s(&dir.join("partial")),
        mode: None,
        append: false,
    });
    c.send(&Request::Data {
        data: b"abc".to_vec(),
    });
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let r = c.recv().unwrap();
    assert!(err_message(&r).contains("without an end frame"), "{r:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // Some other frame in the middle of an upload.
    let r = upload(
        Request::WriteFile {
            path: s(&dir.join("f")),
            mode: None,
            append: false,
        },
        [],
    );
    assert_eq!(r, Response::Ok { bytes: Some(0) });
    let mut c = Client::connect(socket());
    c.send(&Request::WriteFile {
        path: s(&dir.join("g")),
        mode: None,
        append: false,
    });
    c.send(&Request::Ping);
    c.send(&Request::End);
    let r = c.recv().unwrap();
    assert!(err_message(&r).contains("got ping"), "{r:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stat_list_mkdir_remove_rename() {
    let dir = scratch("ops");
    let d = |p: &str| s(&dir.join(p));
    assert_eq!(
        call(&Request::Mkdir {
            path: d("a/b/c"),
            parents: true
        }),
        OK
    );
    assert_eq!(
        call(&Request::Mkdir {
            path: d("a/b/c"),
            parents: true
        }),
        OK
    );
    assert_eq!(
        err_kind(&call(&Request::Mkdir {
            path: d("a"),
            parents: false
        })),
        ErrorKind::Exists
    );
    assert_eq!(
        err_kind(&call(&Request::Mkdir {
            path: d("x/y"),
            parents: false
        })),
        ErrorKind::NotFound
    );
    std::fs::write(dir.join("a/file"), b"12345").unwrap();
    assert_eq!(
        err_kind(&call(&Request::Mkdir {
            path: d("a/file"),
            parents: true
        })),
        ErrorKind::Exists
    );
    symlink("file", dir.join("a/link")).unwrap();

    match call(&Request::Stat { path: d("a/file") }) {
        Response::Stat {
            file_kind,
            size,
            mode,
            mtime_ms,
        } => {
            assert_eq!((file_kind, size, mode), (FileKind::File, 5, 0o644));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            assert!((now - mtime_ms).abs() < 60_000, "{mtime_ms} vs {now}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        call(&Request::Stat { path: d("a") }),
        Response::Stat {
            file_kind: FileKind::Dir,
            ..
        }
    ));
    assert!(matches!(
        call(&Request::Stat { path: d("a/link") }),
        Response::Stat {
            file_kind: FileKind::Symlink,
            size: 4,
            ..
        }
    ));

    match call(&Request::List { path: d("a") }) {
        Response::Entries { entries } => {
            let view: Vec<(&str, FileKind)> = entries
                .iter()
                .map(|e: &DirEntry| (e.name.as_str(), e.kind))
                .collect();
            assert_eq!(
                view,
                [
                    ("b", FileKind::Dir),
                    ("file", FileKind::File),
                    ("link", FileKind::Symlink)
                ]
            );
            assert_eq!(entries[1].size, 5);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err_kind(&call(&Request::List { path: d("a/file") })),
        ErrorKind::Invalid
    );

    assert_eq!(
        call(&Request::Rename {
            from: d("a/file"),
            to: d("a/b/moved")
        }),
        OK
    );
    assert_eq!(std::fs::read(dir.join("a/b/moved")).unwrap(), b"12345");
    assert_eq!(
        err_kind(&call(&Request::Stat { path: d("a/file") })),
        ErrorKind::NotFound
    );
    let r = call(&Request::Rename {
        from: d("a/b/moved"),
        to: d("zz/moved"),
    });
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    assert!(err_message(&r).contains("zz"), "{r:?}");

    // A dangling symlink is removed, not followed.
    assert_eq!(
        call(&Request::Remove {
            path: d("a/link"),
            recursive: false
        }),
        OK
    );
    let r = call(&Request::Remove {
        path: d("a"),
        recursive: false,
    });
    assert_eq!(err_kind(&r), ErrorKind::Invalid);
    assert!(err_message(&r).contains("not empty"), "{r:?}");
    assert_eq!(
        call(&Request::Remove {
            path: d("a"),
            recursive: true
        }),
        OK
    );
    assert!(!dir.join("a").exists());
    assert_eq!(
        err_kind(&call(&Request::Remove {
            path: "/".into(),
            recursive: true
        })),
        ErrorKind::Invalid
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_paths_are_not_found() {
    let p = "/no/such/shoal/path".to_string();
    for req in [
        Request::Stat { path: p.clone() },
        Request::List { path: p.clone() },
        Request::Remove {
            path: p.clone(),
            recursive: true,
        },
        Request::Rename {
            from: p.clone(),
            to: "/tmp/x".into(),
        },
    ] {
        let r = call(&req);
        assert_eq!(err_kind(&r), ErrorKind::NotFound, "{req:?}");
        assert!(err_message(&r).contains(&p), "{r:?}");
    }
    for req in [
        Request::ReadFile {
            path: p.clone(),
            offset: 0,
            len: None,
        },
        Request::TarDownload { path: p.clone() },
    ] {
        let r = download(req).unwrap_err();
        assert_eq!(err_kind(&r), ErrorKind::NotFound);
        assert_eq!(
            err_message(&r),
            format!(
                "{} {p}: no such file or directory",
                if err_message(&r).starts_with("cannot read") {
                    "cannot read"
                } else {
                    "cannot archive"
                }
            )
        );
    }
}

// ---- tar --------------------------------------------------------------------------------

/// (kind, mode, content or link target) of everything under `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, ('l', 0, target.to_str().unwrap().as_bytes().to_vec()));
            } else if m.is_dir() {
                out.insert(rel, ('d', mode, vec![]));
                stack.push(p);
            } else {
                out.insert(rel, ('f', mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn make_tree(root: &Path) {
    let long_dir = "d".repeat(70);
    let long_file = "f".repeat(120); // one component longer than a ustar name field
    std::fs::create_dir_all(root.join("sub/deep")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join(&long_dir).join(&long_dir)).unwrap();
    std::fs::write(root.join("a.txt"), b"hello\n").unwrap();
    std::fs::write(
        root.join("sub/bin"),
        (0..=255u8).cycle().take(70_000).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(root.join("sub/deep/run.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        root.join("sub/deep/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(root.join("empty"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(root.join(&long_dir).join(&long_dir).join("x"), b"long path").unwrap();
    std::fs::write(root.join(&long_file), b"long name").unwrap();
    symlink("sub/bin", root.join("link")).unwrap();
    symlink(
        format!("../{}", "t".repeat(110)),
        root.join("sub/long-link"),
    )
    .unwrap();
}

fn upload_tar(dest: &Path, archive: &[u8]) -> Response {
    // Odd-sized frames, so headers and data straddle them.
    upload(Request::TarUpload { path: s(dest) }, archive.chunks(700))
}

fn exec(script: &str) -> ExecResult {
    match call(&Request::Exec(crate::tests::sh(script))) {
        Response::Exec(r) => r,
        other => panic!("{other:?}"),
    }
}

fn sh_ok(script: &str) {
    let r = exec(script);
    assert_eq!(
        r.exit_code,
        0,
        "{script}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
}

fn have_tar() -> bool {
    exec("tar --version").exit_code == 0
}

#[test]
fn tar_round_trip_with_symlinks_long_names_and_modes() {
    let dir = scratch("tar");
    let src = dir.join("src");
    make_tree(&src);

    let archive = download(Request::TarDownload { path: s(&src) }).unwrap();
    assert_eq!(archive.len() % 512, 0);
    let dest = dir.join("dest/new"); // created by the upload
    assert_eq!(
        upload_tar(&dest, &archive),
        Response::Ok {
            bytes: Some(archive.len() as u64)
        }
    );
    assert_eq!(tree(&dest), tree(&src));

    // The system's tar reads our archives and writes ones we read. (Run through the agent:
    // its reaper would steal the status of a child spawned by the test itself.)
    if have_tar() {
        let file = dir.join("agent.tar");
        std::fs::write(&file, &archive).unwrap();
        let by_tar = dir.join("by-tar");
        std::fs::create_dir(&by_tar).unwrap();
        sh_ok(&format!("tar -x -f {} -C {}", s(&file), s(&by_tar)));
        assert_eq!(tree(&by_tar), tree(&src));

        let file = dir.join("system.tar");
        sh_ok(&format!("tar -c -f {} -C {} .", s(&file), s(&src)));
        let system = std::fs::read(&file).unwrap();
        let dest2 = dir.join("from-tar");
        assert_eq!(
            upload_tar(&dest2, &system),
            Response::Ok {
                bytes: Some(system.len() as u64)
            }
        );
        assert_eq!(tree(&dest2), tree(&src));
    }

    // A single file archives under its base name.
    let one = download(Request::TarDownload {
        path: s(&src.join("a.txt")),
    })
    .unwrap();
    let dest3 = dir.join("one");
    assert_eq!(
        upload_tar(&dest3, &one),
        Response::Ok {
            bytes: Some(one.len() as u64)
        }
    );
    assert_eq!(std::fs::read(dest3.join("a.txt")).unwrap(), b"hello\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A hand-made ustar header + data.
fn tar_entry(name: &str, typeflag: u8, data: &[u8], link: &str) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut v = h.to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut v: Vec<u8> = entries.concat();
    v.extend_from_slice(&[0; 1024]);
    v
}

#[test]
fn tar_entries_that_escape_are_refused() {
    let dir = scratch("escape");
    let dest = dir.join("dest");
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();

    let r = upload_tar(&dest, &archive(&[tar_entry("../evil", b'0', b"x", "")]));
    assert_eq!(err_kind(&r), ErrorKind::Invalid);
    assert!(err_message(&r).contains("../evil escapes"), "{r:?}");
    assert!(!dir.join("evil").exists());

    let abs = s(&outside.join("abs"));
    let r = upload_tar(&dest, &archive(&[tar_entry(&abs, b'0', b"x", "")]));
    assert!(err_message(&r).contains("is an absolute path"), "{r:?}");
    assert!(!outside.join("abs").exists());

    // A symlink pointing out, then a file "inside" it.
    let r = upload_tar(
        &dest,
        &archive(&[
            tar_entry("link", b'2', b"", &s(&outside)),
            tar_entry("link/pwned", b'0', b"x", ""),
        ]),
    );
    assert!(err_message(&r).contains("through the symlink"), "{r:?}");
    assert!(!outside.join("pwned").exists());
    assert!(
        dest.join("link").is_symlink(),
        "entries before the bad one stay"
    );

    // `..` that stays inside is fine; a file replaces a symlink instead of writing through it.
    let r = upload_tar(
        &dest,
        &archive(&[
            tar_entry("a/../b", b'0', b"bee", ""),
            tar_entry("./c/", b'5', b"", ""),
            tar_entry("link", b'0', b"now a file", ""),
            tar_entry("hard", b'1', b"", "b"),
        ]),
    );
    assert!(matches!(r, Response::Ok { .. }), "{r:?}");
    assert_eq!(std::fs::read(dest.join("b")).unwrap(), b"bee");
    assert_eq!(std::fs::read(dest.join("hard")).unwrap(), b"bee");
    assert!(dest.join("c").is_dir());
    assert_eq!(std::fs::read(dest.join("link")).unwrap(), b"now a file");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    // Not a tar at all; a truncated one.
    let r = upload_tar(&dest, &[b'x'; 1024]);
    assert!(err_message(&r).contains("not a tar archive"), "{r:?}");
    let mut cut = tar_entry("big", b'0', &[1; 2000], "");
    cut.truncate(1000);
    let r = upload_tar(&dest, &cut);
    assert!(err_message(&r).contains("truncated"), "{r:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
