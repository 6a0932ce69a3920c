//! The two-sandboxes example in shell and Rust (examples/), run as a user would against a real
//! `shoal up`. (The TypeScript and Python ones run in their SDKs' suites.)

use std::process::Command;

use crate::harness::{ensure_image, shoal_bin, Host, API_KEY};

fn run_example(h: &Host, program: &[String]) {
    let out = Command::new("ip")
        .args(["netns", "exec", &h.ns])
        .args(program)
        .env("SHOAL_URL", "http://127.0.0.1:7070")
        .env("SHOAL_API_KEY", API_KEY)
        .env("SHOAL_CONFIG", "/nonexistent")
        .env("SHOAL", format!("{}", shoal_bin().display()))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program:?} failed:\n{text}");
    assert!(text.contains("HTTP 200") && text.contains("HTTP 000"), "{text}");
    // The example cleans up after itself.
    let (_, sbs) = h.http("GET", "/v1/sandboxes", None);
    assert_eq!(sbs["sandboxes"], serde_json::json!([]), "{program:?} left sandboxes behind");
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn shell_and_rust_examples_run() {
    ensure_image("devbox:1");
    let h = Host::start();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    run_example(&h, &["bash".into(), root.join("examples/shell/two-sandboxes.sh").display().to_string()]);
    let rust = shoal_bin().with_file_name("two-sandboxes");
    assert!(rust.is_file(), "{} is missing: build the workspace (`cargo build --release --workspace`)", rust.display());
    run_example(&h, &[rust.display().to_string()]);
}
