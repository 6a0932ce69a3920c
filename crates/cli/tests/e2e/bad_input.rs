//! Bad input gets a clear 4xx and changes nothing: no rows, links, bundles or containers.

use crate::harness::Host;

/// Everything a failed request could have left behind.
fn footprint(h: &Host) -> (usize, usize, Vec<String>, usize, String) {
    let (_, sbs) = h.http("GET", "/v1/sandboxes", None);
    let (_, nets) = h.http("GET", "/v1/networks", None);
    let dirs = std::fs::read_dir(h.data_dir().join("sandboxes")).map(|d| d.count()).unwrap_or(0);
    (sbs["sandboxes"].as_array().unwrap().len(), nets["networks"].as_array().unwrap().len(), h.shoal_links(), dirs, h.host_cmd(&["nft", "list", "map", "bridge", "shoal", "ports"]))
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn bad_input_is_refused_and_changes_nothing() {
    let h = Host::start();
    let (st, _) = h.http("POST", "/v1/networks", Some(r#"{"name":"n1"}"#));
    assert_eq!(st, 201);
    let (st, _) = h.http("POST", "/v1/sandboxes", Some(r#"{"name":"a","rootfs":"busybox:1","networks":[{"name":"n1"}]}"#));
    assert_eq!(st, 201);
    let before = footprint(&h);

    let cases: &[(&str, &str, &str, u16, &str, &str)] = &[
        // (what, method+path, body, status, code, words the message must contain)
        ("unknown shape", "/v1/sandboxes", r#"{"rootfs":"busybox:1","shape":"s-99vcpu"}"#, 422, "invalid_argument", "unknown shape"),
        ("unknown image", "/v1/sandboxes", r#"{"rootfs":"nope:1"}"#, 422, "invalid_argument", "shoal image build"),
        ("bad image ref", "/v1/sandboxes", r#"{"rootfs":"../etc:1"}"#, 422, "invalid_argument", "NAME:TAG"),
        ("duplicate sandbox name", "/v1/sandboxes", r#"{"name":"a","rootfs":"busybox:1"}"#, 409, "conflict", "already exists"),
        ("missing network", "/v1/sandboxes", r#"{"rootfs":"busybox:1","networks":[{"name":"ghost"}]}"#, 422, "invalid_argument", "ghost"),
        ("network ref with both", "/v1/sandboxes", r#"{"rootfs":"busybox:1","networks":[{"id":"x","name":"n1"}]}"#, 422, "invalid_argument", "exactly one"),
        ("bad sandbox name", "/v1/sandboxes", r#"{"name":"Bad_Name","rootfs":"busybox:1"}"#, 422, "invalid_argument", "invalid sandbox name"),
        ("bad env", "/v1/sandboxes", r#"{"rootfs":"busybox:1","env":{"1X":"y"}}"#, 422, "invalid_argument", "environment"),
        ("unknown field", "/v1/sandboxes", r#"{"rootfs":"busybox:1","cpus":9}"#, 422, "invalid_argument", "unknown field"),
        ("missing rootfs", "/v1/sandboxes", r#"{"name":"x"}"#, 422, "invalid_argument", "rootfs"),
        ("not JSON", "/v1/sandboxes", r#"{"name":"#, 400, "invalid_argument", "invalid request body"),
        ("malformed CIDR", "/v1/networks", r#"{"name":"n2","cidr":"10.0.0.0/33"}"#, 422, "invalid_argument", "CIDR"),
        ("CIDR with host bits", "/v1/networks", r#"{"name":"n2","cidr":"10.0.0.1/24"}"#, 422, "invalid_argument", "10.0.0.0/24"),
        ("overlapping CIDR", "/v1/networks", r#"{"name":"n2","cidr":"10.210.0.0/16"}"#, 409, "conflict", "overlaps"),
        ("duplicate network name", "/v1/networks", r#"{"name":"n1"}"#, 409, "conflict", "already exists"),
        ("bad network name", "/v1/networks", r#"{"name":"net-x"}"#, 422, "invalid_argument", "reserved"),
    ];
    for (what, path, body, status, code, words) in cases {
        let (st, r) = h.http("POST", path, Some(body));
        assert_eq!(st, *status, "{what}: {r}");
        assert_eq!(r["error"]["code"], *code, "{what}: {r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.contains(words), "{what}: message `{msg}` should mention `{words}`");
        assert_eq!(footprint(&h), before, "{what} left something behind");
    }

    // Exec input errors and a sandbox that is gone.
    let (st, r) = h.http("POST", "/v1/sandboxes/a/exec", Some(r#"{"cmd":""}"#));
    assert_eq!((st, r["error"]["code"].as_str()), (422, Some("invalid_argument")), "{r}");
    let (st, r) = h.http("POST", "/v1/sandboxes/a/exec", Some(r#"{"cmd":"true","timeout_ms":0}"#));
    assert_eq!(st, 422, "{r}");
    let (st, r) = h.http("POST", "/v1/sandboxes/a/exec", Some(r#"{"cmd":"ls","cwd":"/no/such/dir"}"#));
    assert_eq!(st, 422, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("/no/such/dir"), "{r}");
    let (st, r) = h.http("POST", "/v1/sandboxes/a/exec", Some(r#"{"cmd":"no-such-command"}"#));
    assert_eq!((st, r["exit_code"].as_i64()), (200, Some(127)), "{r}");

    // Deleting a network with members is refused unless forced.
    let (st, r) = h.http("DELETE", "/v1/networks/n1", None);
    assert_eq!(st, 409, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("force"), "{r}");
    assert_eq!(footprint(&h), before);

    let (st, _) = h.http("DELETE", "/v1/sandboxes/a", None);
    assert_eq!(st, 204);
    let (st, r) = h.http("POST", "/v1/sandboxes/a/exec", Some(r#"{"cmd":"true"}"#));
    assert_eq!((st, r["error"]["code"].as_str()), (404, Some("not_found")), "{r}");
    let (st, _) = h.http("DELETE", "/v1/sandboxes/a", None);
    assert_eq!(st, 404);
    let (st, _) = h.http("GET", "/v1/networks/ghost", None);
    assert_eq!(st, 404);

    // The API contract is public (no key) and matches the committed copy.
    let (st, doc) = h.http_with_key(None, "GET", "/v1/openapi.json", None);
    assert_eq!(st, 200);
    let committed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap()).unwrap();
    assert_eq!(doc, committed);

    // Authentication.
    let (st, r) = h.http_with_key(None, "GET", "/v1/sandboxes", None);
    assert_eq!((st, r["error"]["code"].as_str()), (401, Some("unauthorized")), "{r}");
    let (st, _) = h.http_with_key(Some("wrong"), "GET", "/v1/networks", None);
    assert_eq!(st, 401);
    let (st, r) = h.http("PUT", "/v1/networks", None);
    assert_eq!((st, r["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{r}");
    let (st, r) = h.http("GET", "/v1/nothing-here", None);
    assert_eq!((st, r["error"]["code"].as_str()), (404, Some("not_found")), "{r}");

    // The CLI shows the server's message and fails.
    let out = h.cli(&["sandbox", "create", "--rootfs", "busybox:1", "--shape", "huge"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown shape `huge`") && err.contains("s-1vcpu-1gb"), "{err}");
    let out = h.cli(&["exec", "ghost", "--", "true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn a_retried_create_with_an_idempotency_key_makes_one_sandbox() {
    let h = std::sync::Arc::new(Host::start());
    let body = r#"{"rootfs":"busybox:1"}"#;
    // Two identical requests at once, then a late retry: one sandbox, the same answer each time.
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || h.http_with_headers("Idempotency-Key: job-42\r\n", "POST", "/v1/sandboxes", Some(body)))
        })
        .collect();
    let answers: Vec<(u16, serde_json::Value)> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let (st, late) = h.http_with_headers("Idempotency-Key: job-42\r\n", "POST", "/v1/sandboxes", Some(body));
    assert_eq!(st, 200, "a replay answers 200: {late}");
    let mut codes: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    codes.sort();
    assert_eq!(codes, [200, 201], "{answers:?}");
    for (_, a) in &answers {
        assert_eq!(a["id"], late["id"], "{answers:?}");
    }
    let (_, list) = h.http("GET", "/v1/sandboxes", None);
    assert_eq!(list["sandboxes"].as_array().unwrap().len(), 1, "{list}");
    // The same key with another request is refused; no key means a new sandbox each time.
    let (st, r) = h.http_with_headers("Idempotency-Key: job-42\r\n", "POST", "/v1/sandboxes", Some(r#"{"rootfs":"busybox:1","shape":"s-1vcpu-256mb"}"#));
    assert_eq!(st, 422, "{r}");
    let (st, _) = h.http("POST", "/v1/sandboxes", Some(body));
    assert_eq!(st, 201);
    let (_, list) = h.http("GET", "/v1/sandboxes", None);
    assert_eq!(list["sandboxes"].as_array().unwrap().len(), 2);
}
