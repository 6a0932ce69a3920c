//! `shoal image …`: images live in the local data directory, so these commands work on it
//! directly (no server needed); a running `shoal up` sees new images at once.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use shoal_node::images::{ImageStore, Progress};

use crate::output::{json, table};
use crate::DataDirArg;

#[derive(Subcommand)]
pub enum ImageCmd {
    /// List images.
    #[command(alias = "ls")]
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Build an image: `busybox:1` from busybox-static (seconds), anything else as Debian 12
    /// minbase with debootstrap (`devbox:1` adds curl, python3, iproute2, …).
    Build {
        /// NAME:TAG
        reference: String,
        /// Extra Debian packages, comma-separated.
        #[arg(long, value_delimiter = ',')]
        packages: Vec<String>,
        /// Print every line of the build tool's output.
        #[arg(long, short = 'v')]
        verbose: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Import a root filesystem tarball (e.g. from `docker export`).
    Import {
        reference: String,
        tarball: PathBuf,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Remove an image.
    #[command(alias = "remove")]
    Rm {
        reference: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

fn store(dir: &DataDirArg) -> ImageStore {
    ImageStore::new(dir.images_dir())
}

/// A one-line progress display on a terminal; plain lines otherwise (CI logs).
fn progress_printer(verbose: bool) -> impl FnMut(Progress) {
    let tty = unsafe { libc::isatty(2) } == 1;
    let mut last_pct = -1i32;
    move |p| match p {
        Progress::Step(s) => {
            if tty {
                eprint!("\r\x1b[K");
            }
            eprintln!("==> {s}");
        }
        Progress::Line(l) => {
            if verbose {
                eprintln!("    {l}");
            }
        }
        Progress::Fraction(f, what) => {
            let pct = (f * 100.0).round() as i32;
            let bar = "#".repeat((f * 30.0) as usize);
            if tty {
                eprint!("\r\x1b[K[{bar:<30}] {pct:>3}% {what}");
                let _ = std::io::stderr().flush();
            } else if pct / 10 != last_pct / 10 {
                eprintln!("[{bar:<30}] {pct:>3}% {what}");
            }
            last_pct = pct;
        }
    }
}

pub fn run(cmd: ImageCmd, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        ImageCmd::List { dir } => {
            let images = store(&dir).list()?;
            if as_json {
                json(&images)
            } else {
                table(
                    &["IMAGE", "SIZE", "CREATED", "SOURCE"],
                    images.into_iter().map(|i| vec![i.reference, format!("{:.1} MiB", i.size_bytes as f64 / 1048576.0), i.created_at, i.source]).collect(),
                );
            }
        }
        ImageCmd::Build { reference, packages, verbose, dir } => {
            let started = std::time::Instant::now();
            let img = store(&dir).build(&reference, &packages, &mut progress_printer(verbose))?;
            eprintln!();
            if as_json { json(&img) } else { println!("built {} ({:.1} MiB) in {:.1} s", img.reference, img.size_bytes as f64 / 1048576.0, started.elapsed().as_secs_f64()) }
        }
        ImageCmd::Import { reference, tarball, dir } => {
            let img = store(&dir).import(&reference, &tarball, &mut progress_printer(false))?;
            if as_json { json(&img) } else { println!("imported {} ({:.1} MiB)", img.reference, img.size_bytes as f64 / 1048576.0) }
        }
        ImageCmd::Rm { reference, dir } => {
            let images = store(&dir);
            let users = shoal_node::runtime::container::overlays_using(&images.rootfs(&reference)?);
            if users > 0 {
                anyhow::bail!("image {reference} is the root of {users} sandbox(es): delete them first (`shoal sandbox list` shows which)");
            }
            images.remove(&reference)?;
            if !as_json {
                println!("removed image {reference}");
            }
        }
    }
    Ok(())
}
