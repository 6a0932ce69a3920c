//! The main job: two sandboxes on one private network talk; a third on another network
//! cannot reach them, nor they it.

use crate::harness::{ensure_image, Host};

const HEALTH_SERVER: &str = "mkdir -p /srv && echo ok > /srv/health && cd /srv && \
    nohup python3 -m http.server 8080 >/dev/null 2>&1 &";

fn curl_status(ip: &str) -> String {
    // Retries for a few seconds while the server starts; prints the HTTP status (000 = no answer).
    format!("for i in $(seq 30); do c=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 2 http://{ip}:8080/health) && break; sleep 0.2; done; echo $c")
}

const UNREACHABLE: &str = "curl -s -o /dev/null -w '%{http_code}' --max-time 2";

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn two_sandboxes_on_one_network_via_cli() {
    ensure_image("devbox:1");
    let h = Host::start();
    h.ok(&["network", "create", "team-eval"]);
    let api = h.sandbox("api", "devbox:1", &["team-eval"]);
    let worker = h.sandbox("worker", "devbox:1", &["team-eval"]);
    assert_eq!(api["state"], "running");
    assert_eq!(worker["networks"][0]["ifname"], "eth0");
    h.sh_ok("worker", HEALTH_SERVER);
    let worker_ip = h.member_ip("team-eval", "worker");
    assert_eq!(h.sh_ok("api", &curl_status(&worker_ip)).trim(), "200");

    h.ok(&["network", "create", "other"]);
    h.sandbox("outsider", "devbox:1", &["other"]);
    let outsider_ip = h.member_ip("other", "outsider");
    h.sh_ok("outsider", HEALTH_SERVER);
    let (code, out, _) = h.sh("outsider", &format!("{UNREACHABLE} http://{worker_ip}:8080/health"));
    assert!(code != 0 && out.trim() == "000", "outsider reached worker: exit {code}, status {out}");
    let (code, out, _) = h.sh("api", &format!("{UNREACHABLE} http://{outsider_ip}:8080/health"));
    assert!(code != 0 && out.trim() == "000", "api reached outsider: exit {code}, status {out}");

    // The human table shows both members.
    let table = h.ok(&["network", "get", "team-eval"]);
    assert!(table.contains("api") && table.contains("worker") && table.contains(&worker_ip), "{table}");
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn two_sandboxes_on_one_network_via_http() {
    ensure_image("devbox:1");
    let h = Host::start();
    let (st, net) = h.http("POST", "/v1/networks", Some(r#"{"name":"team-eval"}"#));
    assert_eq!(st, 201, "{net}");
    let net_id = net["id"].as_str().unwrap().to_string();
    for name in ["api", "worker"] {
        let body = format!(r#"{{"name":"{name}","shape":"s-1vcpu-1gb","rootfs":"devbox:1","networks":[{{"id":"{net_id}"}}]}}"#);
        let (st, sb) = h.http("POST", "/v1/sandboxes", Some(&body));
        assert_eq!(st, 201, "{sb}");
        assert_eq!(sb["state"], "running");
    }
    let run = |sandbox: &str, script: &str| {
        let body = serde_json::json!({"cmd": "sh", "args": ["-c", script], "timeout_ms": 20000}).to_string();
        let (st, r) = h.http("POST", &format!("/v1/sandboxes/{sandbox}/exec"), Some(&body));
        assert_eq!(st, 200, "{r}");
        r
    };
    run("worker", HEALTH_SERVER);
    let (_, net) = h.http("GET", &format!("/v1/networks/{net_id}"), None);
    let members = net["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let worker = members.iter().find(|m| m["sandbox_name"] == "worker").unwrap();
    assert!(worker["mac"].as_str().unwrap().starts_with("02:"), "{worker}");
    let worker_ip = worker["ip"].as_str().unwrap();
    let r = run("api", &curl_status(worker_ip));
    assert_eq!(r["stdout"].as_str().unwrap().trim(), "200", "{r}");
    assert_eq!(r["exit_code"], 0);

    let (st, _) = h.http("POST", "/v1/networks", Some(r#"{"name":"other","cidr":"10.77.0.0/24"}"#));
    assert_eq!(st, 201);
    let (st, sb) = h.http("POST", "/v1/sandboxes", Some(r#"{"name":"outsider","rootfs":"devbox:1","networks":[{"name":"other"}]}"#));
    assert_eq!(st, 201, "{sb}");
    assert_eq!(sb["networks"][0]["ip"], "10.77.0.2");
    let r = run("outsider", &format!("{UNREACHABLE} http://{worker_ip}:8080/health"));
    assert_eq!(r["stdout"].as_str().unwrap().trim(), "000", "{r}");
    assert_ne!(r["exit_code"], 0);
}
