//! Root filesystem images for sandboxes.
//!
//! A sandbox's root filesystem is an overlayfs whose read-only lower layer is an image's
//! `rootfs/` directory. Images live under one root directory (`<data-dir>/images`):
//!
//! ```text
//! <root>/<name>/<tag>/rootfs/                 the root filesystem (never written after the build)
//! <root>/<name>/<tag>/image.json              shoal_api::Image, written last: ready iff it exists
//! <root>/.building/<name>-<tag>-<random>/     a build in progress (same layout as above)
//! <root>/.logs/<name>-<tag>.log               full output of the last build or import
//! ```
//!
//! A build fills a directory under `.building/` and renames it into place in one step, so an
//! image is either complete or absent. On any failure (and on a panic, through a drop guard)
//! the temporary directory is removed again.
//!
//! Builds:
//! * `busybox:TAG`: the host's static busybox (Debian package `busybox-static`) in a minimal
//!   tree with one symlink per applet. Takes a fraction of a second.
//! * any other name: Debian 12 (bookworm) through `debootstrap --variant=minbase`, plus the
//!   requested packages (for `devbox` without packages: [`DEVBOX_PACKAGES`]).
//! * [`ImageStore::import`]: a root filesystem tarball (`docker export`, `tar -C rootfs -cf`).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shoal_api::Image;

/// Debian release every debootstrap image is built from.
pub const DEBIAN_SUITE: &str = "bookworm";
/// Mirror used when neither `SHOAL_DEBIAN_MIRROR` nor the host's apt configuration names one.
pub const DEFAULT_DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";
/// Environment variable that overrides the Debian mirror.
pub const MIRROR_ENV: &str = "SHOAL_DEBIAN_MIRROR";
/// Packages of `devbox:*` when the build names none.
pub const DEVBOX_PACKAGES: &[&str] =
    &["curl", "ca-certificates", "python3", "iproute2", "iputils-ping", "procps", "netcat-openbsd", "dnsutils"];

const BUILDING_DIR: &str = ".building";
const LOGS_DIR: &str = ".logs";
const META_FILE: &str = "image.json";
const ROOTFS_DIR: &str = "rootfs";
/// Lines of a failed command's output quoted in the error.
const TAIL_LINES: usize = 20;
/// `/etc/hosts` of built images (Shoal adds sandbox names elsewhere).
const HOSTS: &str = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n";
/// Where Debian's `busybox-static` puts the binary (merged-/usr hosts have both).
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The message of `shoal_api::validate::image_ref`, which already says how to write one.
    #[error("{0}")]
    InvalidRef(String),
    #[error("image {0} not found: build it with `shoal image build {0}`")]
    NotFound(String),
    #[error("image {0} already exists: remove it first with `shoal image rm {0}` or pick another tag")]
    AlreadyExists(String),
    #[error(
        "invalid package name `{0}`: Debian package names are lower-case letters, digits, '+', '-' and '.', \
         at least 2 characters, starting with a letter or digit (e.g. `python3`, `libc6-dev`); \
         separate several with commas"
    )]
    InvalidPackage(String),
    #[error(
        "image {0}: busybox images take no extra packages: drop --packages, or build a Debian image \
         under another name, e.g. `shoal image build mybox:1 --packages curl,git`"
    )]
    PackagesNotSupported(String),
    #[error("{tool} not found: install it with `apt-get install {package}`")]
    MissingTool { tool: String, package: String },
    #[error(
        "{} is not a statically linked busybox, so it cannot run inside a sandbox: install the static \
         build with `apt-get install busybox-static`",
        .0.display()
    )]
    BusyboxNotStatic(PathBuf),
    #[error("building image {0} with debootstrap needs root: run the node (or this command) as root")]
    NeedsRoot(String),
    #[error("cannot read {path}: {reason}: check the path and that it is a readable tar file")]
    Unreadable { path: String, reason: String },
    #[error(
        "{0} does not look like a root filesystem (no /bin or /usr/bin): export one with `docker export` \
         or `tar -C rootfs -cf rootfs.tar .`"
    )]
    NotRootfs(String),
    #[error(
        "building image {} failed: `{}` {}; {}; full log: {}\nlast lines of its output:\n{}",
        .0.reference, .0.command, .0.status, .0.hint, .0.log.display(), .0.tail
    )]
    CommandFailed(Box<CommandFailure>),
    #[error("image {reference} is damaged ({detail}): remove it with `shoal image rm {reference}` and build it again")]
    Damaged { reference: String, detail: String },
    #[error("{context}: {error}")]
    Io { context: String, error: io::Error },
}

/// Details of a build or import whose underlying tool failed.
#[derive(Debug)]
pub struct CommandFailure {
    pub reference: String,
    /// The command line that failed.
    pub command: String,
    /// "exited with code 1", "was killed by signal 9".
    pub status: String,
    /// What to try next.
    pub hint: String,
    /// The last lines (up to 20) of its output.
    pub tail: String,
    /// Its full output: `<root>/.logs/<name>-<tag>.log`.
    pub log: PathBuf,
}

impl ImageError {
    /// The API error code (`ErrorDetail::code`) this error maps to.
    pub fn code(&self) -> &'static str {
        match self {
            ImageError::InvalidRef(_)
            | ImageError::InvalidPackage(_)
            | ImageError::PackagesNotSupported(_)
            | ImageError::Unreadable { .. }
            | ImageError::NotRootfs(_) => "invalid_argument",
            ImageError::NotFound(_) => "not_found",
            ImageError::AlreadyExists(_) => "conflict",
            ImageError::MissingTool { .. } | ImageError::BusyboxNotStatic(_) | ImageError::NeedsRoot(_) => {
                "failed_precondition"
            }
            ImageError::CommandFailed(_) | ImageError::Damaged { .. } | ImageError::Io { .. } => "internal",
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |error| ImageError::Io { context, error }
}

/// What a build or import reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A phase started, e.g. "resolving packages".
    Step(String),
    /// A raw output line of the underlying tool (debootstrap, tar).
    Line(String),
    /// Estimated overall completion (0..=1, never decreasing within one build) and what is
    /// happening, e.g. `(0.31, "downloading libc6")`.
    Fraction(f32, String),
}

pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// A store rooted at `root` (usually `<data-dir>/images`). Nothing is created until a build.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ImageStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All ready images, sorted by reference. Entries without `image.json` are not images
    /// (yet); entries whose metadata cannot be read are skipped with a warning.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let mut images = Vec::new();
        let names = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(images),
            Err(e) => return Err(io_err(format!("listing images in {}", self.root.display()))(e)),
        };
        for name in names {
            let name = name.map_err(io_err(format!("listing images in {}", self.root.display())))?;
            let Some(name_str) = name.file_name().to_str().map(str::to_owned) else { continue };
            if name_str.starts_with('.') || !name.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let tags = match fs::read_dir(name.path()) {
                Ok(rd) => rd,
                Err(e) => {
                    tracing::warn!(dir = %name.path().display(), error = %e, "skipping unreadable image directory");
                    continue;
                }
            };
            for tag in tags.flatten() {
                let Some(tag_str) = tag.file_name().to_str().map(str::to_owned) else { continue };
                let reference = format!("{name_str}:{tag_str}");
                if shoal_api::validate::image_ref(&reference).is_err() {
                    continue;
                }
                if !tag.path().join(META_FILE).is_file() {
                    continue;
                }
                match self.get(&reference) {
                    Ok(image) => images.push(image),
                    Err(e) => tracing::warn!(image = %reference, error = %e, "skipping image"),
                }
            }
        }
        images.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(images)
    }

    pub fn get(&self, reference: &str) -> Result<Image, ImageError> {
        let (name, tag) = parse_ref(reference)?;
        let meta = self.image_dir(name, tag).join(META_FILE);
        let text = match fs::read_to_string(&meta) {
            Ok(t) => t,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                return Err(ImageError::NotFound(reference.to_string()))
            }
            Err(e) => return Err(io_err(format!("reading {}", meta.display()))(e)),
        };
        let mut image: Image = serde_json::from_str(&text).map_err(|e| ImageError::Damaged {
            reference: reference.to_string(),
            detail: format!("{}: {e}", meta.display()),
        })?;
        // The directory is the truth; a copied image.json must not make an image lie about its name.
        image.reference = format!("{name}:{tag}");
        Ok(image)
    }

    /// The ready root filesystem directory of an image (the overlayfs lower layer).
    pub fn rootfs(&self, reference: &str) -> Result<PathBuf, ImageError> {
        let (name, tag) = parse_ref(reference)?;
        let dir = self.image_dir(name, tag);
        if !dir.join(META_FILE).is_file() {
            return Err(ImageError::NotFound(reference.to_string()));
        }
        let rootfs = dir.join(ROOTFS_DIR);
        if !rootfs.is_dir() {
            return Err(ImageError::Damaged {
                reference: reference.to_string(),
                detail: format!("{} is missing", rootfs.display()),
            });
        }
        Ok(rootfs)
    }

    /// Builds an image. `busybox:*` comes from the host's static busybox and takes no packages;
    /// every other name is Debian bookworm (minbase) plus `packages` (entries may also be
    /// comma-separated lists); `devbox:*` without packages gets [`DEVBOX_PACKAGES`].
    pub fn build(
        &self,
        reference: &str,
        packages: &[String],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Image, ImageError> {
        let (name, tag) = parse_ref(reference)?;
        let mut pkgs: Vec<String> = Vec::new();
        for p in packages.iter().flat_map(|p| p.split([',', ' ', '\t', '\n'])).map(str::trim) {
            if p.is_empty() {
                continue;
            }
            validate_package(p)?;
            if !pkgs.iter().any(|q| q == p) {
                pkgs.push(p.to_string());
            }
        }
        if name == "busybox" {
            if !pkgs.is_empty() {
                return Err(ImageError::PackagesNotSupported(reference.to_string()));
            }
            self.ensure_absent(name, tag)?;
            return self.build_busybox(name, tag, progress);
        }
        if name == "devbox" && pkgs.is_empty() {
            pkgs = DEVBOX_PACKAGES.iter().map(|s| s.to_string()).collect();
        }
        self.ensure_absent(name, tag)?;
        let debootstrap = find_tool("debootstrap")
            .ok_or_else(|| ImageError::MissingTool { tool: "debootstrap".into(), package: "debootstrap".into() })?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(ImageError::NeedsRoot(reference.to_string()));
        }
        self.build_debian(name, tag, &pkgs, &debootstrap, progress)
    }

    /// Imports a root filesystem tarball (plain or compressed; tar detects the compression).
    pub fn import(&self, reference: &str, tar: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Image, ImageError> {
        let (name, tag) = parse_ref(reference)?;
        let shown = tar.display().to_string();
        progress(Progress::Step(format!("checking {shown}")));
        let unreadable = |reason: String| ImageError::Unreadable { path: shown.clone(), reason };
        match fs::metadata(tar) {
            Ok(m) if m.is_dir() => return Err(unreadable("it is a directory, not a tar file".into())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unreadable("no such file".into())),
            Err(e) => return Err(unreadable(e.to_string())),
        }
        if let Err(e) = fs::File::open(tar).and_then(|mut f| f.read(&mut [0u8; 1])) {
            return Err(unreadable(e.to_string()));
        }
        self.ensure_absent(name, tag)?;
        let tar_bin =
            find_tool("tar").ok_or_else(|| ImageError::MissingTool { tool: "tar".into(), package: "tar".into() })?;
        let tar_abs = std::path::absolute(tar).map_err(io_err(format!("resolving {shown}")))?;

        let staging = self.stage(name, tag)?;
        let rootfs = staging.rootfs();
        progress(Progress::Step(format!("extracting {shown}")));
        let args: Vec<OsString> = vec![
            "--numeric-owner".into(),
            "-xpf".into(),
            tar_abs.into_os_string(),
            "-C".into(),
            rootfs.clone().into_os_string(),
        ];
        let log = self.log_path(name, tag)?;
        let run = run_streaming(&tar_bin, &args, &log, &mut |line| progress(Progress::Line(line.to_string())))?;
        if !run.status.success() {
            return Err(ImageError::CommandFailed(Box::new(CommandFailure {
                reference: reference.to_string(),
                command: describe(&tar_bin, &args),
                status: describe_status(run.status),
                hint: format!("check that {shown} is an intact tar archive with `tar -tf {shown}`"),
                tail: run.tail,
                log,
            })));
        }
        progress(Progress::Step("checking root filesystem".into()));
        let has = |p: &str| fs::symlink_metadata(rootfs.join(p)).is_ok();
        if !has("bin") && !has("usr/bin") {
            return Err(ImageError::NotRootfs(shown));
        }
        self.finish(staging, name, tag, format!("import {shown}"), progress)
    }

    /// Removes an image. Sandboxes still using it as their lower layer must be gone first
    /// (that is the caller's check).
    pub fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let (name, tag) = parse_ref(reference)?;
        let dir = self.image_dir(name, tag);
        let ready = dir.join(META_FILE).is_file();
        if !ready && fs::symlink_metadata(&dir).is_err() {
            return Err(ImageError::NotFound(reference.to_string()));
        }
        // Rename first so the image disappears in one step, then delete at leisure.
        let trash = self.building_dir()?.join(format!("rm-{name}-{tag}-{}", random_suffix()));
        fs::rename(&dir, &trash).map_err(io_err(format!("moving {} out of the way", dir.display())))?;
        remove_tree(&trash).map_err(io_err(format!("deleting {}", trash.display())))?;
        let _ = fs::remove_dir(self.root.join(name)); // only succeeds once the last tag is gone
        let _ = fs::remove_file(self.root.join(LOGS_DIR).join(format!("{name}-{tag}.log")));
        if ready {
            Ok(())
        } else {
            // A leftover without image.json was never an image; it is cleaned up all the same.
            Err(ImageError::NotFound(reference.to_string()))
        }
    }

    // ---- building blocks -------------------------------------------------------------------

    fn image_dir(&self, name: &str, tag: &str) -> PathBuf {
        self.root.join(name).join(tag)
    }

    fn building_dir(&self) -> Result<PathBuf, ImageError> {
        let dir = self.root.join(BUILDING_DIR);
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        Ok(dir)
    }

    fn log_path(&self, name: &str, tag: &str) -> Result<PathBuf, ImageError> {
        let dir = self.root.join(LOGS_DIR);
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        Ok(dir.join(format!("{name}-{tag}.log")))
    }

    fn ensure_absent(&self, name: &str, tag: &str) -> Result<(), ImageError> {
        if self.image_dir(name, tag).join(META_FILE).is_file() {
            return Err(ImageError::AlreadyExists(format!("{name}:{tag}")));
        }
        Ok(())
    }

    /// A fresh `.building/<name>-<tag>-<random>/` with an empty `rootfs/`, removed on drop.
    fn stage(&self, name: &str, tag: &str) -> Result<Staging, ImageError> {
        let building = self.building_dir()?;
        loop {
            let dir = building.join(format!("{name}-{tag}-{}", random_suffix()));
            match fs::create_dir(&dir) {
                Ok(()) => {
                    let staging = Staging { dir, armed: true };
                    let rootfs = staging.rootfs();
                    fs::create_dir(&rootfs).map_err(io_err(format!("creating {}", rootfs.display())))?;
                    fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755))
                        .map_err(io_err(format!("setting permissions of {}", rootfs.display())))?;
                    return Ok(staging);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
            }
        }
    }

    /// Measures, writes image.json and renames the staging directory into place.
    fn finish(
        &self,
        staging: Staging,
        name: &str,
        tag: &str,
        source: String,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Image, ImageError> {
        progress(Progress::Step("computing size".into()));
        let rootfs = staging.rootfs();
        let size_bytes = tree_size(&rootfs).map_err(io_err(format!("measuring {}", rootfs.display())))?;
        let image = Image { reference: format!("{name}:{tag}"), size_bytes, created_at: rfc3339_now(), source };
        // The root of a root filesystem is 0755 whatever a tarball or umask said.
        for d in [&staging.dir, &rootfs] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))
                .map_err(io_err(format!("setting permissions of {}", d.display())))?;
        }
        let meta = staging.dir.join(META_FILE);
        let json = serde_json::to_vec_pretty(&image).expect("Image serializes");
        fs::File::create(&meta)
            .and_then(|mut f| {
                f.write_all(&json)?;
                f.write_all(b"\n")?;
                f.sync_all()
            })
            .map_err(io_err(format!("writing {}", meta.display())))?;
        progress(Progress::Step("finalizing".into()));
        self.commit(staging, name, tag)?;
        progress(Progress::Fraction(1.0, format!("image {} ready", image.reference)));
        Ok(image)
    }

    fn commit(&self, mut staging: Staging, name: &str, tag: &str) -> Result<(), ImageError> {
        let target = self.image_dir(name, tag);
        let parent = self.root.join(name);
        // A directory without image.json is debris (never an image): clear it out of the way.
        if !target.join(META_FILE).is_file() && fs::symlink_metadata(&target).is_ok() {
            let trash = self.building_dir()?.join(format!("rm-{name}-{tag}-{}", random_suffix()));
            if fs::rename(&target, &trash).is_ok() {
                let _ = remove_tree(&trash);
            }
        }
        let mut attempts = 0;
        loop {
            fs::create_dir_all(&parent).map_err(io_err(format!("creating {}", parent.display())))?;
            match fs::rename(&staging.dir, &target) {
                Ok(()) => {
                    staging.armed = false;
                    return Ok(());
                }
                // Raced with a concurrent build of the same reference, which won.
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty || e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(ImageError::AlreadyExists(format!("{name}:{tag}")));
                }
                // Raced with `remove` of this name's last tag, which deleted the parent.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(e) => return Err(io_err(format!("moving the new image into {}", target.display()))(e)),
            }
        }
    }

    fn build_busybox(&self, name: &str, tag: &str, progress: &mut dyn FnMut(Progress)) -> Result<Image, ImageError> {
        progress(Progress::Step("locating busybox".into()));
        let (busybox, bytes) = find_static_busybox()?;
        let staging = self.stage(name, tag)?;
        let rootfs = staging.rootfs();
        progress(Progress::Step("creating the directory tree".into()));
        for (dir, mode) in [
            ("bin", 0o755),
            ("sbin", 0o755),
            ("usr", 0o755),
            ("usr/bin", 0o755),
            ("usr/sbin", 0o755),
            ("etc", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
            ("proc", 0o555),
            ("sys", 0o555),
            ("dev", 0o755),
            ("run", 0o755),
            ("var", 0o755),
            ("var/tmp", 0o1777),
        ] {
            let p = rootfs.join(dir);
            fs::create_dir(&p)
                .and_then(|()| fs::set_permissions(&p, fs::Permissions::from_mode(mode)))
                .map_err(io_err(format!("creating {}", p.display())))?;
        }
        progress(Progress::Step(format!("installing {}", busybox.display())));
        let dest = rootfs.join("bin/busybox");
        fs::write(&dest, &bytes)
            .and_then(|()| fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)))
            .map_err(io_err(format!("writing {}", dest.display())))?;

        progress(Progress::Step("creating applet links".into()));
        let out = Command::new(&busybox)
            .arg("--list-full")
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(format!("running {} --list-full", busybox.display())))?;
        if !out.status.success() {
            return Err(ImageError::BusyboxNotStatic(busybox));
        }
        let mut links = 0usize;
        for applet in String::from_utf8_lossy(&out.stdout).lines().map(str::trim) {
            let rel = Path::new(applet);
            let safe = !applet.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
            if !safe || rel == Path::new("bin/busybox") {
                continue;
            }
            let link = rootfs.join(rel);
            if fs::symlink_metadata(&link).is_ok() {
                continue;
            }
            if let Some(parent) = link.parent() {
                fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
            }
            symlink("/bin/busybox", &link).map_err(io_err(format!("creating {}", link.display())))?;
            links += 1;
        }
        if links == 0 {
            return Err(ImageError::BusyboxNotStatic(busybox));
        }

        progress(Progress::Step("writing /etc".into()));
        write_files(
            &rootfs,
            &[
                ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
                ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
                ("etc/hosts", HOSTS),
                ("etc/resolv.conf", ""),
                ("etc/hostname", "localhost\n"),
            ],
        )?;
        self.finish(staging, name, tag, "busybox-static".into(), progress)
    }

    fn build_debian(
        &self,
        name: &str,
        tag: &str,
        pkgs: &[String],
        debootstrap: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Image, ImageError> {
        let mirror = debian_mirror();
        progress(Progress::Step(format!("bootstrapping Debian {DEBIAN_SUITE} from {mirror}")));
        progress(Progress::Fraction(0.0, "starting debootstrap".into()));
        let staging = self.stage(name, tag)?;
        let rootfs = staging.rootfs();
        let mut args: Vec<OsString> = vec!["--variant=minbase".into()];
        if !pkgs.is_empty() {
            args.push(format!("--include={}", pkgs.join(",")).into());
        }
        args.extend([DEBIAN_SUITE.into(), rootfs.clone().into_os_string(), mirror.clone().into()]);
        let log = self.log_path(name, tag)?;
        let mut tracker = DebootstrapProgress::new(pkgs.len());
        let run = run_streaming(debootstrap, &args, &log, &mut |line| {
            progress(Progress::Line(line.to_string()));
            for p in tracker.feed(line) {
                progress(p);
            }
        })?;
        if !run.status.success() {
            // debootstrap's own detailed log lives inside the target, which is about to go.
            let inner = rootfs.join("debootstrap/debootstrap.log");
            if let (Ok(text), Ok(mut f)) = (fs::read(&inner), fs::OpenOptions::new().append(true).open(&log)) {
                let _ = writeln!(f, "\n---- {} ----", inner.display());
                let _ = f.write_all(&text);
            }
            return Err(ImageError::CommandFailed(Box::new(CommandFailure {
                reference: format!("{name}:{tag}"),
                command: describe(debootstrap, &args),
                status: describe_status(run.status),
                hint: format!(
                    "if downloads failed, point {MIRROR_ENV} at a reachable Debian mirror; if a package is \
                     unknown, check its name with `apt-cache policy NAME`"
                ),
                tail: run.tail,
                log,
            })));
        }
        progress(Progress::Step("cleaning up".into()));
        progress(Progress::Fraction(0.98, "removing package caches".into()));
        for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            clean_dir(&rootfs.join(dir), dir == "var/cache/apt/archives")?;
        }
        // debootstrap copies the host's resolv.conf and hostname; Shoal manages DNS per sandbox.
        // minbase has no /etc/hosts (netbase is not included), so localhost would not resolve.
        for f in ["etc/resolv.conf", "etc/hostname", "etc/hosts"] {
            let _ = fs::remove_file(rootfs.join(f));
        }
        write_files(&rootfs, &[("etc/resolv.conf", ""), ("etc/hostname", "localhost\n"), ("etc/hosts", HOSTS)])?;
        let source = if pkgs.is_empty() {
            format!("debootstrap {DEBIAN_SUITE}")
        } else {
            format!("debootstrap {DEBIAN_SUITE} +{}", pkgs.join(","))
        };
        self.finish(staging, name, tag, source, progress)
    }
}

fn parse_ref(reference: &str) -> Result<(&str, &str), ImageError> {
    shoal_api::validate::image_ref(reference).map_err(ImageError::InvalidRef)
}

/// Debian package names: `[a-z0-9][a-z0-9+.-]+` (Debian policy 5.6.1).
pub fn validate_package(name: &str) -> Result<(), ImageError> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= 128
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..].iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+.-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(ImageError::InvalidPackage(name.to_string()))
    }
}

/// The temporary directory of a build; deleted on drop unless committed.
struct Staging {
    dir: PathBuf,
    armed: bool,
}

impl Staging {
    fn rootfs(&self) -> PathBuf {
        self.dir.join(ROOTFS_DIR)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = remove_tree(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a failed image build");
            }
        }
    }
}

fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finalizer, so consecutive values do not look alike
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{:012x}", x & 0xFFFF_FFFF_FFFF)
}

fn write_files(rootfs: &Path, files: &[(&str, &str)]) -> Result<(), ImageError> {
    for (rel, content) in files {
        let p = rootfs.join(rel);
        fs::write(&p, content)
            .and_then(|()| fs::set_permissions(&p, fs::Permissions::from_mode(0o644)))
            .map_err(io_err(format!("writing {}", p.display())))?;
    }
    Ok(())
}

/// Empties a directory (keeps the directory). With `debs_only`, removes only `*.deb` files.
fn clean_dir(dir: &Path, debs_only: bool) -> Result<(), ImageError> {
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("cleaning {}", dir.display()))(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(format!("cleaning {}", dir.display())))?;
        let path = entry.path();
        if debs_only && path.extension().is_none_or(|e| e != "deb") {
            continue;
        }
        remove_tree(&path).map_err(io_err(format!("removing {}", path.display())))?;
    }
    Ok(())
}

// ---- tools and processes --------------------------------------------------------------------

/// Looks a program up in PATH plus the sbin directories (which non-root PATHs often lack).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

/// The host's busybox, read into memory, if it is a static ELF binary.
fn find_static_busybox() -> Result<(PathBuf, Vec<u8>), ImageError> {
    let Some(path) = BUSYBOX_CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file()) else {
        return Err(ImageError::MissingTool { tool: "busybox".into(), package: "busybox-static".into() });
    };
    let bytes = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
    if elf_is_static(&bytes) != Some(true) {
        return Err(ImageError::BusyboxNotStatic(path));
    }
    Ok((path, bytes))
}

/// `Some(true)` for an ELF executable without a program interpreter (statically linked),
/// `Some(false)` for a dynamically linked one, `None` if it is not a readable ELF file.
pub fn elf_is_static(b: &[u8]) -> Option<bool> {
    if b.len() < 52 || &b[..4] != b"\x7fELF" {
        return None;
    }
    let le = match b[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let num = |off: usize, len: usize| -> Option<u64> {
        let s = b.get(off..off + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if le { s[len - 1 - i] } else { s[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = match b[4] {
        1 => (num(0x1C, 4)?, num(0x2A, 2)?, num(0x2C, 2)?),
        2 => (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?),
        _ => return None,
    };
    for i in 0..phnum {
        let off = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        const PT_INTERP: u64 = 3;
        if num(off, 4)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

fn describe(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => status.to_string(),
    }
}

struct RunOutcome {
    status: ExitStatus,
    /// The last [`TAIL_LINES`] lines of output, newline-joined.
    tail: String,
}

/// Terminates a child that is still running when dropped (a panic, an I/O error): SIGTERM so
/// debootstrap can unmount what it mounted inside the target, SIGKILL if it takes too long.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn wait(mut self) -> io::Result<ExitStatus> {
        let mut child = self.0.take().expect("child present");
        child.wait()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else { return };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: plain syscall on our own, not yet reaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs a program with stdout and stderr merged into one pipe, calling `on_line` for every
/// line and writing all of it to `log`. Returns the exit status and the output's tail.
fn run_streaming(
    program: &Path,
    args: &[OsString],
    log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<RunOutcome, ImageError> {
    let command = describe(program, args);
    let mut log_file = fs::File::create(log).map_err(io_err(format!("creating {}", log.display())))?;
    let _ = writeln!(log_file, "# {}  {command}", rfc3339_now());

    let (reader, writer) = io::pipe().map_err(io_err("creating a pipe"))?;
    let writer2 = writer.try_clone().map_err(io_err("creating a pipe"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .env("LC_ALL", "C")
        .env("DEBIAN_FRONTEND", "noninteractive");
    let spawned = cmd.spawn();
    drop(cmd); // closes our copies of the pipe's write end, so EOF comes when the child exits
    let child = spawned.map_err(io_err(format!("starting `{command}`")))?;
    let mut guard = ChildGuard(Some(child));

    // Read on a helper thread so that a grandchild which keeps the pipe open (a daemon started
    // by some postinst) cannot hang the build after the tool itself has exited.
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(reader);
        loop {
            let mut buf = Vec::new();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(buf).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut exited_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(buf) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                let _ = writeln!(log_file, "{line}");
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.to_string());
                on_line(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let child = guard.0.as_mut().expect("child present");
                match exited_at {
                    Some(t) if t.elapsed() > Duration::from_secs(2) => break,
                    Some(_) => {}
                    None => {
                        if child.try_wait().map_err(io_err(format!("waiting for `{command}`")))?.is_some() {
                            exited_at = Some(Instant::now());
                        }
                    }
                }
            }
        }
    }
    let status = guard.wait().map_err(io_err(format!("waiting for `{command}`")))?;
    let _ = writeln!(log_file, "# {}  {}", rfc3339_now(), describe_status(status));
    Ok(RunOutcome { status, tail: Vec::from(tail).join("\n") })
}

// ---- debootstrap progress -------------------------------------------------------------------

/// Turns debootstrap's `I:` lines into monotonic completion estimates.
///
/// debootstrap never says how many packages it will fetch, and it interleaves `Retrieving X`
/// and `Validating X` per package, so the download phase (0.02..0.55: retrieving, then
/// validating each package) uses an estimate of the package count that only ever grows. Once
/// downloads end the count is known, so extraction (0.55..0.70, only the "required" set) and
/// unpacking + configuring (0.70..0.97; each package is unpacked once and configured once) are
/// counted against it.
struct DebootstrapProgress {
    phase: Phase,
    /// Packages expected in the download phase (minbase plus a guess per requested package).
    expected: f32,
    retrieved: usize,
    validated: usize,
    extracted: usize,
    installed: usize,
    last: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Start,
    Indexes,
    Resolving,
    Downloading,
    Extracting,
    Installing,
    Done,
}

/// Packages of a bookworm minbase bootstrap (measured on amd64: 88, all of them "required",
/// which is the set debootstrap extracts; the rest are unpacked by dpkg later).
const MINBASE_PACKAGES: f32 = 88.0;
/// Packages each requested package adds on average (measured: devbox's 8 names add 59).
const PACKAGES_PER_INCLUDE: f32 = 7.5;

impl DebootstrapProgress {
    fn new(extra_packages: usize) -> Self {
        DebootstrapProgress {
            phase: Phase::Start,
            expected: MINBASE_PACKAGES + PACKAGES_PER_INCLUDE * extra_packages as f32,
            retrieved: 0,
            validated: 0,
            extracted: 0,
            installed: 0,
            last: 0.0,
        }
    }

    fn known_packages(&self) -> f32 {
        self.retrieved.max(self.validated).max(1) as f32
    }

    fn enter(&mut self, phase: Phase, step: &str, out: &mut Vec<Progress>) {
        if self.phase < phase {
            self.phase = phase;
            out.push(Progress::Step(step.to_string()));
        }
    }

    fn fraction(&mut self, f: f32, what: String, out: &mut Vec<Progress>) {
        let f = f.clamp(self.last, 1.0);
        self.last = f;
        out.push(Progress::Fraction(f, what));
    }

    fn feed(&mut self, line: &str) -> Vec<Progress> {
        let mut out = Vec::new();
        let Some(msg) = line.strip_prefix("I: ") else { return out };
        let msg = msg.trim();
        let word_after = |prefix: &str| -> Option<String> {
            let rest = msg.strip_prefix(prefix)?;
            let pkg = rest.split_whitespace().next()?.trim_end_matches("...");
            (!pkg.is_empty()).then(|| pkg.to_string())
        };
        if msg.starts_with("Resolving dependencies") || msg.starts_with("Checking component") {
            self.enter(Phase::Resolving, "resolving packages", &mut out);
            self.fraction(0.02, "resolving packages".into(), &mut out);
        } else if let Some(pkg) = word_after("Retrieving ") {
            if self.phase < Phase::Resolving {
                // Release, Packages: indexes, before any package is known.
                self.enter(Phase::Indexes, "fetching package lists", &mut out);
                self.fraction(0.01, format!("fetching {pkg}"), &mut out);
            } else {
                self.enter(Phase::Downloading, "downloading packages", &mut out);
                self.retrieved += 1;
                self.download_fraction(format!("downloading {pkg}"), &mut out);
            }
        } else if let Some(pkg) = word_after("Validating ") {
            if self.phase >= Phase::Resolving {
                self.enter(Phase::Downloading, "downloading packages", &mut out);
                self.validated += 1;
                self.download_fraction(format!("validating {pkg}"), &mut out);
            }
        } else if let Some(pkg) = word_after("Extracting ") {
            self.enter(Phase::Extracting, "extracting packages", &mut out);
            self.extracted += 1;
            // Only the "required" set is extracted; its size hardly depends on --include.
            let total = self.known_packages().min(MINBASE_PACKAGES).max(self.extracted as f32);
            let f = 0.55 + 0.15 * (self.extracted as f32 / total).min(1.0);
            self.fraction(f, format!("extracting {pkg}"), &mut out);
        } else if msg.starts_with("Installing core packages")
            || msg.starts_with("Unpacking required packages")
            || msg.starts_with("Configuring required packages")
            || msg.starts_with("Unpacking the base system")
            || msg.starts_with("Configuring the base system")
        {
            self.enter(Phase::Installing, "installing packages", &mut out);
        } else if let Some((verb, pkg)) = word_after("Unpacking ")
            .map(|p| ("unpacking", p))
            .or_else(|| word_after("Configuring ").map(|p| ("configuring", p)))
        {
            self.enter(Phase::Installing, "installing packages", &mut out);
            self.installed += 1;
            let f = 0.70 + 0.27 * (self.installed as f32 / (2.0 * self.known_packages())).min(1.0);
            self.fraction(f, format!("{verb} {pkg}"), &mut out);
        } else if msg.starts_with("Base system installed successfully") {
            self.enter(Phase::Done, "base system installed", &mut out);
            self.fraction(0.97, "base system installed".into(), &mut out);
        }
        out
    }

    fn download_fraction(&mut self, what: String, out: &mut Vec<Progress>) {
        // Each package is retrieved, then validated: two events each.
        let done = (self.retrieved + self.validated) as f32 / 2.0;
        self.expected = self.expected.max(done + 1.0);
        let f = 0.02 + 0.53 * (done / self.expected).min(1.0);
        self.fraction(f, what, out);
    }
}

// ---- Debian mirror ------------------------------------------------------------------------

/// The Debian mirror for debootstrap: `$SHOAL_DEBIAN_MIRROR`, else the first mirror of the
/// host's apt configuration that serves `bookworm` `main`, else [`DEFAULT_DEBIAN_MIRROR`].
pub fn debian_mirror() -> String {
    if let Ok(m) = std::env::var(MIRROR_ENV) {
        if !m.trim().is_empty() {
            return m.trim().to_string();
        }
    }
    host_apt_mirror(Path::new("/etc/apt")).unwrap_or_else(|| DEFAULT_DEBIAN_MIRROR.to_string())
}

/// Reads `<etc_apt>/sources.list`, then `<etc_apt>/sources.list.d/*.list|*.sources` in name
/// order (apt's own order) and returns the first bookworm mirror found.
pub fn host_apt_mirror(etc_apt: &Path) -> Option<String> {
    if let Some(m) = fs::read_to_string(etc_apt.join("sources.list")).ok().and_then(|t| mirror_from_sources_list(&t)) {
        return Some(m);
    }
    let mut files: Vec<PathBuf> =
        fs::read_dir(etc_apt.join("sources.list.d")).ok()?.flatten().map(|e| e.path()).collect();
    files.sort();
    files.into_iter().find_map(|p| {
        let text = fs::read_to_string(&p).ok()?;
        match p.extension().and_then(|e| e.to_str()) {
            Some("list") => mirror_from_sources_list(&text),
            Some("sources") => mirror_from_deb822(&text),
            _ => None,
        }
    })
}

fn usable_uri(uri: &str) -> bool {
    ["http://", "https://", "file:/"].iter().any(|s| uri.starts_with(s))
}

/// First `deb URI bookworm ... main ...` line of a one-line-style sources.list.
pub fn mirror_from_sources_list(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut tokens = line.split_whitespace();
        if tokens.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = tokens.collect();
        // Options: `[arch=amd64 signed-by=/x.gpg]`, possibly spread over several tokens.
        if rest.first().is_some_and(|t| t.starts_with('[')) {
            let Some(end) = rest.iter().position(|t| t.ends_with(']')) else { continue };
            rest.drain(..=end);
        }
        if let [uri, suite, components @ ..] = rest.as_slice() {
            if *suite == DEBIAN_SUITE && components.contains(&"main") && usable_uri(uri) {
                return Some(uri.to_string());
            }
        }
    }
    None
}

/// First URI of the first deb822 stanza (`*.sources`) that serves `bookworm` `main`.
pub fn mirror_from_deb822(text: &str) -> Option<String> {
    let mut stanza: Vec<(String, String)> = Vec::new();
    // The extra empty line ends the last stanza.
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if let Some(m) = deb822_stanza_mirror(&stanza) {
                return Some(m);
            }
            stanza.clear();
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = stanza.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            stanza.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    None
}

fn deb822_stanza_mirror(stanza: &[(String, String)]) -> Option<String> {
    let field = |k: &str| stanza.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let has = |k: &str, word: &str| field(k).is_some_and(|v| v.split_whitespace().any(|w| w == word));
    if !has("types", "deb") || !has("suites", DEBIAN_SUITE) || !has("components", "main") {
        return None;
    }
    if field("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
        return None;
    }
    field("uris")?.split_whitespace().find(|u| usable_uri(u)).map(str::to_string)
}

// ---- file trees ---------------------------------------------------------------------------

/// Sum of the sizes of the regular files under `root` (symlinks not followed, hard links
/// counted once).
fn tree_size(root: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = fs::symlink_metadata(entry.path())?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && (meta.nlink() <= 1 || seen.insert((meta.dev(), meta.ino()))) {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Mount points strictly below `dir`, deepest first, from /proc/self/mountinfo.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = fs::canonicalize(dir) else { return Vec::new() };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(&dir) && *p != dir)
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn unescape_mountinfo(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    std::ffi::OsStr::from_bytes(&out).to_os_string()
}

/// Deletes a directory tree. Anything still mounted inside (debootstrap killed before it
/// could unmount its /proc, /sys and /dev) is detached first and never descended into, so a
/// bind-mounted host /dev cannot be emptied by accident.
fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    for mount in mounts_below(path) {
        let c = std::ffi::CString::new(mount.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::other(format!("{} is still mounted and cannot be unmounted: {e}", mount.display())));
        }
    }
    if let Err(e) = fs::remove_dir_all(path) {
        if e.kind() != io::ErrorKind::PermissionDenied {
            return Err(e);
        }
        // Read-only directories (as a tarball may have them) when not running as root.
        make_dirs_writable(path, meta.dev());
        fs::remove_dir_all(path)?;
    }
    Ok(())
}

fn make_dirs_writable(root: &Path, dev: u64) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&dir) else { continue };
        if !meta.is_dir() || meta.dev() != dev {
            continue;
        }
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(meta.mode() | 0o700));
        if let Ok(rd) = fs::read_dir(&dir) {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
}

// ---- time ---------------------------------------------------------------------------------

/// Now as RFC 3339 UTC with second precision, e.g. `2023-11-14T22:13:20Z`.
pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

/// A point in time as RFC 3339 UTC with second precision (fractions are truncated).
pub fn rfc3339(t: SystemTime) -> String {
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    fn store() -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path().join("images"));
        (dir, store)
    }

    fn collect(steps: &mut Vec<Progress>) -> impl FnMut(Progress) + '_ {
        move |p| steps.push(p)
    }

    /// The busybox tests need the host's static busybox; hosts without it skip them loudly.
    fn have_busybox() -> bool {
        match find_static_busybox() {
            Ok(_) => true,
            Err(e) => {
                eprintln!("SKIPPED: {e}");
                false
            }
        }
    }

    /// Nothing left half-created: no image directory, nothing in `.building`.
    fn assert_clean(store: &ImageStore, name: &str) {
        assert!(!store.root().join(name).exists(), "{name} left behind");
        let building = store.root().join(BUILDING_DIR);
        if building.exists() {
            let left: Vec<_> = fs::read_dir(&building).unwrap().flatten().map(|e| e.path()).collect();
            assert!(left.is_empty(), "left in .building: {left:?}");
        }
    }

    #[test]
    fn rfc3339_known_values() {
        let at = |s: i64| {
            if s >= 0 {
                UNIX_EPOCH + Duration::from_secs(s as u64)
            } else {
                UNIX_EPOCH - Duration::from_secs((-s) as u64)
            }
        };
        assert_eq!(rfc3339(at(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(253_402_300_799)), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(at(-1)), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(1_700_000_000_999)), "2023-11-14T22:13:20Z");
        let now = rfc3339_now();
        assert_eq!(now.len(), 20);
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }

    #[test]
    fn package_names() {
        for ok in ["python3", "libc6-dev", "g++", "libstdc++6", "0ad", "nodejs", "ca-certificates", "xz-utils"] {
            assert!(validate_package(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "Python3", "-x", "+x", "a b", "foo;rm", "a_b", "../x", "x/y", "pkg=1.0"] {
            assert!(matches!(validate_package(bad), Err(ImageError::InvalidPackage(_))), "{bad}");
        }
    }

    #[test]
    fn elf_static_detection() {
        if let Ok((_, bytes)) = find_static_busybox() {
            assert_eq!(elf_is_static(&bytes), Some(true));
        }
        let sh = fs::read("/bin/sh").unwrap();
        assert_eq!(elf_is_static(&sh), Some(false), "/bin/sh is dynamically linked on Debian");
        assert_eq!(elf_is_static(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(elf_is_static(b""), None);
    }

    #[test]
    fn invalid_refs_and_packages_refused_before_anything_happens() {
        let (_tmp, store) = store();
        let mut noop = |_: Progress| {};
        for bad in ["devbox", ":1", "a:", "../x:1", "a/b:1", ".x:1", "a:b:c"] {
            assert!(matches!(store.build(bad, &[], &mut noop), Err(ImageError::InvalidRef(_))), "{bad}");
            assert!(matches!(store.get(bad), Err(ImageError::InvalidRef(_))), "{bad}");
            assert!(matches!(store.rootfs(bad), Err(ImageError::InvalidRef(_))), "{bad}");
            assert!(matches!(store.remove(bad), Err(ImageError::InvalidRef(_))), "{bad}");
            assert!(matches!(store.import(bad, Path::new("/x.tar"), &mut noop), Err(ImageError::InvalidRef(_))));
        }
        let e = store.build("mybox:1", &["curl".into(), "Bad_Pkg".into()], &mut noop).unwrap_err();
        assert!(matches!(e, ImageError::InvalidPackage(ref p) if p == "Bad_Pkg"), "{e}");
        let e = store.build("mybox:1", &["curl,rm -rf".into()], &mut noop).unwrap_err();
        assert!(matches!(e, ImageError::InvalidPackage(ref p) if p == "-rf"), "{e}");
        let e = store.build("busybox:1", &["curl".into()], &mut noop).unwrap_err();
        assert!(matches!(e, ImageError::PackagesNotSupported(_)), "{e}");
        assert_eq!(e.code(), "invalid_argument");
        assert!(!store.root().exists(), "validation failures must not touch the disk");
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let nf = ImageError::NotFound("devbox:1".into()).to_string();
        assert_eq!(nf, "image devbox:1 not found: build it with `shoal image build devbox:1`");
        let nf = ImageError::NotFound("busybox:1".into()).to_string();
        assert!(nf.contains("`shoal image build busybox:1`"), "{nf}");
        let ae = ImageError::AlreadyExists("busybox:1".into()).to_string();
        assert!(ae.contains("remove it first with `shoal image rm busybox:1` or pick another tag"), "{ae}");
        let mt = ImageError::MissingTool { tool: "debootstrap".into(), package: "debootstrap".into() }.to_string();
        assert_eq!(mt, "debootstrap not found: install it with `apt-get install debootstrap`");
        let bb = ImageError::MissingTool { tool: "busybox".into(), package: "busybox-static".into() }.to_string();
        assert!(bb.contains("apt-get install busybox-static"), "{bb}");
        assert_eq!(ImageError::NotFound("x:1".into()).code(), "not_found");
        assert_eq!(ImageError::AlreadyExists("x:1".into()).code(), "conflict");
    }

    #[test]
    fn empty_store() {
        let (_tmp, store) = store();
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(store.get("devbox:1"), Err(ImageError::NotFound(_))));
        assert!(matches!(store.rootfs("devbox:1"), Err(ImageError::NotFound(_))));
        assert!(matches!(store.remove("devbox:1"), Err(ImageError::NotFound(_))));
    }

    #[test]
    fn busybox_build_list_get_rootfs_remove() {
        if !have_busybox() {
            return;
        }
        let (_tmp, store) = store();
        let mut events = Vec::new();
        let started = Instant::now();
        let image = store.build("busybox:1", &[], &mut collect(&mut events)).unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "busybox build took {took:?}");
        assert_eq!(image.reference, "busybox:1");
        assert_eq!(image.source, "busybox-static");
        assert!(image.size_bytes > 500_000, "size {}", image.size_bytes);
        assert_eq!(image.created_at.len(), 20);
        assert!(events.iter().any(|e| matches!(e, Progress::Step(_))));
        assert!(matches!(events.last(), Some(Progress::Fraction(f, _)) if *f == 1.0));

        let root = store.rootfs("busybox:1").unwrap();
        assert_eq!(root, store.root().join("busybox/1/rootfs"));
        let sh = fs::symlink_metadata(root.join("bin/sh")).unwrap();
        assert!(sh.file_type().is_symlink());
        assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
        assert!(fs::symlink_metadata(root.join("usr/bin/wget")).unwrap().file_type().is_symlink());
        let out = Command::new(root.join("bin/busybox")).args(["echo", "hi"]).output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
        assert_eq!(fs::metadata(root.join("var/tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
        for d in ["sbin", "usr/sbin", "root", "proc", "sys", "dev", "run"] {
            assert!(root.join(d).is_dir(), "{d}");
        }
        assert!(fs::read_to_string(root.join("etc/passwd")).unwrap().starts_with("root:x:0:0:root:/root:/bin/sh\n"));
        assert!(fs::read_to_string(root.join("etc/hosts")).unwrap().contains("127.0.0.1 localhost"));
        assert_eq!(fs::read_to_string(root.join("etc/resolv.conf")).unwrap(), "");
        assert!(root.join("etc/group").is_file() && root.join("etc/hostname").is_file());

        // Size is the sum of regular files: busybox itself plus the small /etc files.
        let busybox_len = fs::metadata(root.join("bin/busybox")).unwrap().len();
        assert!(image.size_bytes >= busybox_len && image.size_bytes < busybox_len + 4096);

        // image.json round-trips; get and list agree.
        let got = store.get("busybox:1").unwrap();
        assert_eq!(got, image);
        let on_disk: Image =
            serde_json::from_str(&fs::read_to_string(store.root().join("busybox/1/image.json")).unwrap()).unwrap();
        assert_eq!(on_disk, image);
        let second = store.build("busybox:2", &[], &mut |_| {}).unwrap();
        let list = store.list().unwrap();
        assert_eq!(list.iter().map(|i| i.reference.as_str()).collect::<Vec<_>>(), ["busybox:1", "busybox:2"]);
        assert_eq!(list[1], second);

        // Duplicate refused, and the existing image is untouched.
        let e = store.build("busybox:1", &[], &mut |_| {}).unwrap_err();
        assert!(matches!(e, ImageError::AlreadyExists(_)), "{e}");
        assert_eq!(store.get("busybox:1").unwrap(), image);

        // Remove.
        store.remove("busybox:1").unwrap();
        assert!(matches!(store.get("busybox:1"), Err(ImageError::NotFound(_))));
        assert!(matches!(store.rootfs("busybox:1"), Err(ImageError::NotFound(_))));
        assert!(matches!(store.remove("busybox:1"), Err(ImageError::NotFound(_))));
        assert!(!store.root().join("busybox/1").exists());
        assert_eq!(store.list().unwrap(), vec![second]);
        store.remove("busybox:2").unwrap();
        assert!(!store.root().join("busybox").exists(), "empty name directory is removed too");
        assert!(store.list().unwrap().is_empty());
        assert_clean(&store, "busybox");
    }

    #[test]
    fn list_skips_unready_and_damaged_entries() {
        if !have_busybox() {
            return;
        }
        let (_tmp, store) = store();
        store.build("busybox:1", &[], &mut |_| {}).unwrap();
        // Not ready: no image.json.
        fs::create_dir_all(store.root().join("half/1/rootfs")).unwrap();
        // Damaged metadata.
        fs::create_dir_all(store.root().join("broken/1/rootfs")).unwrap();
        fs::write(store.root().join("broken/1/image.json"), "{not json").unwrap();
        let list = store.list().unwrap();
        assert_eq!(list.iter().map(|i| i.reference.as_str()).collect::<Vec<_>>(), ["busybox:1"]);
        assert!(matches!(store.get("half:1"), Err(ImageError::NotFound(_))));
        assert!(matches!(store.rootfs("half:1"), Err(ImageError::NotFound(_))));
        let e = store.get("broken:1").unwrap_err();
        assert!(matches!(e, ImageError::Damaged { .. }), "{e}");
        assert!(e.to_string().contains("shoal image rm broken:1"), "{e}");
        // Debris is cleaned by remove (reported as not found) and does not block a build.
        assert!(matches!(store.remove("half:1"), Err(ImageError::NotFound(_))));
        assert!(!store.root().join("half").exists());
        store.remove("broken:1").unwrap();
        fs::create_dir_all(store.root().join("busybox/9/rootfs")).unwrap();
        store.build("busybox:9", &[], &mut |_| {}).unwrap();
        assert!(store.rootfs("busybox:9").unwrap().join("bin/busybox").is_file());
    }

    #[test]
    fn panic_in_progress_callback_leaves_nothing_behind() {
        if !have_busybox() {
            return;
        }
        let (_tmp, store) = store();
        let result = catch_unwind(AssertUnwindSafe(|| {
            store.build("busybox:1", &[], &mut |p| {
                if p == Progress::Step("creating applet links".into()) {
                    panic!("callback failure");
                }
            })
        }));
        assert!(result.is_err());
        assert_clean(&store, "busybox");
    }

    fn make_tar(args: &[&str]) {
        let st = Command::new("tar").args(args).status().unwrap();
        assert!(st.success(), "tar {args:?}");
    }

    #[test]
    fn import_round_trip_plain_and_gzip() {
        if !have_busybox() {
            return;
        }
        let (tmp, store) = store();
        let original = store.build("busybox:1", &[], &mut |_| {}).unwrap();
        let src = store.rootfs("busybox:1").unwrap();
        let tar = tmp.path().join("rootfs.tar");
        let tgz = tmp.path().join("rootfs.tar.gz");
        make_tar(&["-C", src.to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."]);
        make_tar(&["-C", src.to_str().unwrap(), "-czf", tgz.to_str().unwrap(), "."]);

        let mut events = Vec::new();
        let image = store.import("mine:1", &tar, &mut collect(&mut events)).unwrap();
        assert_eq!(image.reference, "mine:1");
        assert_eq!(image.size_bytes, original.size_bytes);
        assert_eq!(image.source, format!("import {}", tar.display()));
        assert!(events.iter().any(|e| matches!(e, Progress::Step(s) if s.starts_with("extracting"))));
        let root = store.rootfs("mine:1").unwrap();
        assert!(fs::symlink_metadata(root.join("bin/sh")).unwrap().file_type().is_symlink());
        let out = Command::new(root.join("bin/busybox")).args(["echo", "hi"]).output().unwrap();
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);

        let gz = store.import("mine:gz", &tgz, &mut |_| {}).unwrap();
        assert_eq!(gz.size_bytes, original.size_bytes);
        let e = store.import("mine:1", &tar, &mut |_| {}).unwrap_err();
        assert!(matches!(e, ImageError::AlreadyExists(_)), "{e}");
        let refs: Vec<_> = store.list().unwrap().into_iter().map(|i| i.reference).collect();
        assert_eq!(refs, ["busybox:1", "mine:1", "mine:gz"]);
    }

    #[test]
    fn failed_imports_leave_nothing_behind() {
        let (tmp, store) = store();
        let mut noop = |_: Progress| {};

        let missing = tmp.path().join("nope.tar");
        let e = store.import("bad:1", &missing, &mut noop).unwrap_err();
        assert!(matches!(e, ImageError::Unreadable { .. }), "{e}");
        assert!(e.to_string().contains("no such file"), "{e}");
        let e = store.import("bad:1", tmp.path(), &mut noop).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");

        // A valid tarball that is not a root filesystem.
        let docs = tmp.path().join("docs");
        fs::create_dir_all(docs.join("share")).unwrap();
        fs::write(docs.join("share/readme.txt"), "hello").unwrap();
        let tar = tmp.path().join("docs.tar");
        make_tar(&["-C", docs.to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."]);
        let e = store.import("bad:1", &tar, &mut noop).unwrap_err();
        assert!(matches!(e, ImageError::NotRootfs(_)), "{e}");
        assert!(e.to_string().contains("does not look like a root filesystem (no /bin or /usr/bin)"), "{e}");
        assert!(e.to_string().contains("docker export"), "{e}");
        assert_clean(&store, "bad");

        // Not a tar at all: tar fails; the error quotes its output and names the log.
        let junk = tmp.path().join("junk.tar");
        fs::write(&junk, vec![b'x'; 4096]).unwrap();
        let e = store.import("bad:1", &junk, &mut noop).unwrap_err();
        match &e {
            ImageError::CommandFailed(f) => {
                assert!(!f.tail.is_empty());
                assert!(f.log.is_file());
                assert_eq!(f.log, store.root().join(".logs/bad-1.log"));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(e.to_string().contains("full log:"), "{e}");
        assert_clean(&store, "bad");
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn remove_tree_handles_read_only_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("t");
        fs::create_dir_all(d.join("a/b")).unwrap();
        fs::write(d.join("a/b/f"), "x").unwrap();
        symlink("/etc", d.join("a/link")).unwrap();
        fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o555)).unwrap();
        remove_tree(&d).unwrap();
        assert!(!d.exists());
        assert!(Path::new("/etc/passwd").exists(), "symlinks are not followed");
        remove_tree(&d).unwrap(); // already gone: fine
    }

    #[test]
    fn remove_tree_detaches_leftover_mounts() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("t");
        let proc_dir = d.join("rootfs/proc");
        fs::create_dir_all(&proc_dir).unwrap();
        let target = std::ffi::CString::new(proc_dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings; a fresh tmpfs on our own temporary directory.
        let rc =
            unsafe { libc::mount(c"shoal-test".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) };
        if rc != 0 {
            eprintln!("SKIPPED: cannot mount here: {}", io::Error::last_os_error());
            return;
        }
        fs::write(proc_dir.join("inside"), "x").unwrap();
        assert_eq!(mounts_below(&d), vec![fs::canonicalize(&proc_dir).unwrap()]);
        remove_tree(&d).unwrap();
        assert!(!d.exists());
        assert!(mounts_below(tmp.path()).is_empty());
    }

    #[test]
    fn tree_size_counts_regular_files_once() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::create_dir_all(d.join("x/y")).unwrap();
        fs::write(d.join("a"), vec![0u8; 1000]).unwrap();
        fs::write(d.join("x/y/b"), vec![0u8; 234]).unwrap();
        fs::hard_link(d.join("a"), d.join("x/a-again")).unwrap();
        symlink("/usr/bin", d.join("bin")).unwrap();
        assert_eq!(tree_size(d).unwrap(), 1234);
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), OsString::from("/a b\\c"));
        assert_eq!(unescape_mountinfo("/plain"), OsString::from("/plain"));
        assert_eq!(unescape_mountinfo(r"/trailing\04"), OsString::from(r"/trailing\04"));
    }

    #[test]
    fn mirror_from_deb822_text() {
        let debian = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";
        assert_eq!(mirror_from_deb822(debian).as_deref(), Some("http://deb.debian.org/debian"));

        let mixed = "\
# third-party repository first, then a disabled mirror, then the real one
Types: deb
URIs: https://download.docker.com/linux/debian
Suites: bookworm
Components: stable

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

types: deb deb-src
uris: cdrom:[Debian]/ http://ftp.de.debian.org/debian/
  http://second.example/debian
suites:
 bookworm
components: main contrib
";
        assert_eq!(mirror_from_deb822(mixed).as_deref(), Some("http://ftp.de.debian.org/debian/"));
        assert_eq!(mirror_from_deb822("Types: deb\nURIs: http://x/debian\nSuites: trixie\nComponents: main\n"), None);
        assert_eq!(mirror_from_deb822(""), None);
    }

    #[test]
    fn mirror_from_one_line_sources() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb https://download.docker.com/linux/debian bookworm stable
deb [arch=amd64 signed-by=/usr/share/keyrings/debian.gpg] http://mirror.example/debian bookworm main contrib # local
deb http://later.example/debian bookworm main
";
        assert_eq!(mirror_from_sources_list(text).as_deref(), Some("http://mirror.example/debian"));
        assert_eq!(
            mirror_from_sources_list("deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"),
            None
        );
        assert_eq!(
            mirror_from_sources_list("deb [trusted=yes] file:/srv/mirror bookworm main\n").as_deref(),
            Some("file:/srv/mirror")
        );
    }

    #[test]
    fn host_apt_mirror_order() {
        let tmp = tempfile::tempdir().unwrap();
        let apt = tmp.path();
        assert_eq!(host_apt_mirror(apt), None);
        fs::create_dir_all(apt.join("sources.list.d")).unwrap();
        fs::write(
            apt.join("sources.list.d/zz.sources"),
            "Types: deb\nURIs: http://zz/debian\nSuites: bookworm\nComponents: main\n",
        )
        .unwrap();
        fs::write(apt.join("sources.list.d/aa.list"), "deb http://aa/debian bookworm main\n").unwrap();
        fs::write(
            apt.join("sources.list.d/00.sources.disabled"),
            "Types: deb\nURIs: http://no/debian\nSuites: bookworm\nComponents: main\n",
        )
        .unwrap();
        assert_eq!(host_apt_mirror(apt).as_deref(), Some("http://aa/debian"));
        fs::write(apt.join("sources.list"), "# empty\n").unwrap();
        assert_eq!(host_apt_mirror(apt).as_deref(), Some("http://aa/debian"));
        fs::write(apt.join("sources.list"), "deb http://main/debian bookworm main\n").unwrap();
        assert_eq!(host_apt_mirror(apt).as_deref(), Some("http://main/debian"));
    }

    /// Real debootstrap output (bookworm minbase + the devbox packages), recorded once.
    const DEBOOTSTRAP_LOG: &str = include_str!("../tests/images_debootstrap_output.txt");

    #[test]
    fn debootstrap_progress_is_monotonic_and_phased() {
        let mut tracker = DebootstrapProgress::new(DEVBOX_PACKAGES.len());
        let mut fractions = Vec::new();
        let mut steps = Vec::new();
        for line in DEBOOTSTRAP_LOG.lines() {
            for p in tracker.feed(line) {
                match p {
                    Progress::Fraction(f, what) => fractions.push((f, what)),
                    Progress::Step(s) => steps.push(s),
                    Progress::Line(_) => unreachable!("the tracker only derives"),
                }
            }
        }
        assert_eq!(
            steps,
            [
                "fetching package lists",
                "resolving packages",
                "downloading packages",
                "extracting packages",
                "installing packages",
                "base system installed"
            ]
        );
        assert!(fractions.len() > 300, "{}", fractions.len());
        for w in fractions.windows(2) {
            assert!(w[1].0 >= w[0].0, "not monotonic: {:?} then {:?}", w[0], w[1]);
        }
        assert!(fractions.iter().all(|(f, _)| (0.0..=1.0).contains(f)));
        let at = |prefix: &str| fractions.iter().find(|(_, w)| w.starts_with(prefix)).unwrap().0;
        let last = |prefix: &str| fractions.iter().rev().find(|(_, w)| w.starts_with(prefix)).unwrap().0;
        assert!(at("downloading") < 0.1);
        assert!(last("validating") > 0.40 && last("validating") <= 0.55, "{}", last("validating"));
        assert!((0.55..=0.70).contains(&at("extracting")));
        assert!(last("extracting") > 0.68);
        assert!(at("unpacking") >= 0.70 && at("unpacking") < 0.75);
        assert!(last("configuring") > 0.9, "{}", last("configuring"));
        assert_eq!(fractions.last().unwrap().0, 0.97);
        // The download estimate is not far off: it does not sit at its cap for long.
        let capped = fractions.iter().filter(|(f, w)| w.starts_with("validating") && *f >= 0.549).count();
        assert!(capped < 20, "download estimate saturated for {capped} packages");
    }
}
