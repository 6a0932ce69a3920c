//! What the API does, independent of HTTP: validate, record desired state, ask the node.
//! Bad input is refused before anything is recorded; a node failure during create undoes the
//! whole create, so nothing is ever half-made.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_api::{validate, Cidr, ExecRequest, ExecResponse, Member, Network, NetworkCreate, Nic, Sandbox, SandboxCreate};
use shoal_node::dataplane::NicSpec;
use shoal_node::{naming, SandboxSpec};

use crate::error::ApiError;
use crate::ipam;
use crate::store::{self, NetworkRow, NicRow, SandboxRow, Store};
use crate::App;

pub const MAX_EXEC_TIMEOUT_MS: u64 = 3_600_000;
/// Error code of a create that lost the race for its idempotency key (never leaves the server).
const IDEMPOTENCY_RACE: &str = "idempotency_race";
pub const DEFAULT_EXEC_TIMEOUT_MS: u64 = 60_000;

// ---------------------------------------------------------------- views

fn network_view(s: &Store, n: NetworkRow) -> Result<Network, ApiError> {
    let mut members = Vec::new();
    let mut nics = s.nics_of_network(&n.id)?;
    nics.sort_by_key(|nic| nic.ip.parse::<Ipv4Addr>().ok());
    for nic in nics {
        let (name, state) = s.sandbox(&nic.sandbox_id)?.map(|sb| (sb.name, sb.state)).unwrap_or_default();
        let dns_name = format!("{name}.{}.{}", n.name, shoal_node::dns::SUFFIX);
        members.push(Member { sandbox_id: nic.sandbox_id, sandbox_name: name, ip: nic.ip, mac: nic.mac, dns_name, state, joined_at: nic.joined_at });
    }
    Ok(Network { id: n.id, name: n.name, cidr: n.cidr, created_at: n.created_at, members })
}

fn sandbox_view(s: &Store, sb: SandboxRow) -> Result<Sandbox, ApiError> {
    let mut networks = Vec::new();
    for nic in s.nics_of_sandbox(&sb.id)? {
        let net_name = s.network(&nic.network_id)?.map(|n| n.name).unwrap_or_default();
        networks.push(Nic { network_id: nic.network_id, network_name: net_name, ifname: naming::guest_ifname(nic.idx), ip: nic.ip, mac: nic.mac });
    }
    Ok(Sandbox {
        id: sb.id,
        name: sb.name,
        shape: sb.shape,
        rootfs: sb.rootfs,
        state: sb.state,
        state_reason: sb.state_reason,
        runtime: "container".into(),
        networks,
        env: sb.env,
        created_at: sb.created_at,
        expires_at: sb.expires_at_ms.map(crate::time::rfc3339_ms),
        on_timeout: sb.on_timeout,
    })
}

fn nic_spec(s: &Store, nic: &NicRow) -> Result<NicSpec, ApiError> {
    let net = s.network(&nic.network_id)?.ok_or_else(|| ApiError::internal(format!("network {} of a NIC is gone", nic.network_id)))?;
    Ok(NicSpec {
        network_id: nic.network_id.clone(),
        index: nic.idx,
        ip: nic.ip.parse().map_err(|_| ApiError::internal(format!("stored address {} is not IPv4", nic.ip)))?,
        cidr: net.cidr.parse().map_err(|_| ApiError::internal(format!("stored block {} is not a CIDR", net.cidr)))?,
        mac: nic.mac.clone(),
    })
}

fn sandbox_spec(s: &Store, sb: &SandboxRow) -> Result<SandboxSpec, ApiError> {
    let shape = shoal_api::shapes::find(&sb.shape).ok_or_else(|| ApiError::internal(format!("stored shape {} is unknown", sb.shape)))?;
    let nics = s.nics_of_sandbox(&sb.id)?.iter().map(|n| nic_spec(s, n)).collect::<Result<Vec<_>, _>>()?;
    let running = !matches!(sb.state.as_str(), "stopped" | "stopping");
    Ok(SandboxSpec { id: sb.id.clone(), name: sb.name.clone(), image: sb.rootfs.clone(), shape, env: sb.env.clone(), nics, running })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

// ---------------------------------------------------------------- networks

pub async fn create_network(app: &Arc<App>, req: NetworkCreate) -> Result<Network, ApiError> {
    validate::name("network", &req.name).map_err(ApiError::unprocessable)?;
    let asked = match req.cidr.as_deref() {
        Some(c) => Some(Cidr::parse_network(c).map_err(|e| ApiError::unprocessable(e.to_string()))?),
        None => None,
    };
    let _guard = app.alloc.lock().await;
    let s = app.store.lock().unwrap();
    if s.network(&req.name)?.is_some() {
        return Err(ApiError::conflict(format!("a network named `{}` already exists: pick another name or delete it first", req.name)));
    }
    let existing = s.networks()?;
    let taken: Vec<Cidr> = existing.iter().filter_map(|n| n.cidr.parse().ok()).collect();
    let cidr = match asked {
        Some(c) => {
            if let Some(other) = existing.iter().find(|n| n.cidr.parse::<Cidr>().is_ok_and(|t| t.overlaps(&c))) {
                return Err(ApiError::conflict(format!("{c} overlaps network `{}` ({}): pick a block that overlaps no other network", other.name, other.cidr)));
            }
            c
        }
        None => ipam::next_block(app.pool, ipam::DEFAULT_PREFIX, &taken).ok_or_else(|| {
            ApiError::conflict(format!("the address pool {} is exhausted: delete unused networks or pass an explicit `cidr`", app.pool))
        })?,
    };
    let row = NetworkRow { id: naming::new_id(naming::NETWORK_ID_PREFIX), name: req.name, cidr: cidr.to_string(), created_at: crate::time::now() };
    s.insert_network(&row)?;
    network_view(&s, row)
}

pub fn list_networks(app: &App) -> Result<Vec<Network>, ApiError> {
    let s = app.store.lock().unwrap();
    s.networks()?.into_iter().map(|n| network_view(&s, n)).collect()
}

fn find_network(s: &Store, key: &str) -> Result<NetworkRow, ApiError> {
    s.network(key)?.ok_or_else(|| ApiError::not_found(format!("network `{key}` not found: `shoal network list` shows the networks that exist")))
}

pub fn get_network(app: &App, key: &str) -> Result<Network, ApiError> {
    let s = app.store.lock().unwrap();
    let n = find_network(&s, key)?;
    network_view(&s, n)
}

/// Deletes a network. With members it is refused unless `force`, which first unplugs every
/// member from it (the sandboxes keep running on their other networks).
pub async fn delete_network(app: &Arc<App>, key: &str, force: bool) -> Result<(), ApiError> {
    let _guard = app.alloc.lock().await;
    let (net, members) = {
        let s = app.store.lock().unwrap();
        let net = find_network(&s, key)?;
        let members = s.nics_of_network(&net.id)?;
        if !members.is_empty() && !force {
            return Err(ApiError::conflict(format!(
                "network `{}` still has {} member(s): delete them first, or force it (`shoal network rm --force`, `?force=true`) to detach them",
                net.name,
                members.len()
            )));
        }
        let specs = members.iter().map(|m| nic_spec(&s, m)).collect::<Result<Vec<_>, _>>()?;
        (net, members.into_iter().zip(specs).collect::<Vec<_>>())
    };
    for (row, spec) in members {
        let node = app.node.clone();
        let sid = row.sandbox_id.clone();
        blocking(move || node.detach(&sid, &spec)).await??;
        app.store.lock().unwrap().delete_nic(&row.sandbox_id, &row.network_id)?;
    }
    let node = app.node.clone();
    let id = net.id.clone();
    blocking(move || node.remove_network(&id)).await??;
    app.store.lock().unwrap().delete_network(&net.id)?;
    refresh_dns(app)
}

// ---------------------------------------------------------------- sandboxes

pub fn list_sandboxes(app: &App) -> Result<Vec<Sandbox>, ApiError> {
    let s = app.store.lock().unwrap();
    s.sandboxes()?.into_iter().map(|sb| sandbox_view(&s, sb)).collect()
}

fn find_sandbox(s: &Store, key: &str) -> Result<SandboxRow, ApiError> {
    s.sandbox(key)?.ok_or_else(|| ApiError::not_found(format!("sandbox `{key}` not found: `shoal sandbox list` shows the sandboxes that exist")))
}

pub fn get_sandbox(app: &App, key: &str) -> Result<Sandbox, ApiError> {
    let s = app.store.lock().unwrap();
    let sb = find_sandbox(&s, key)?;
    sandbox_view(&s, sb)
}

/// `create_sandbox` with an optional `Idempotency-Key`: a retry with the same key and body gets
/// the sandbox the first request made (waiting for it if that create is still running) instead
/// of a second one. Returns whether the answer is such a replay.
pub async fn create_sandbox_idempotent(app: &Arc<App>, req: SandboxCreate, key: Option<String>) -> Result<(Sandbox, bool), ApiError> {
    let Some(key) = key else { return Ok((create_sandbox_with(app, req, None).await?, false)) };
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request("`Idempotency-Key` must be 1-255 printable ASCII characters"));
    }
    let hash = crate::auth::hash_key(&serde_json::to_string(&req).expect("json"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let existing = {
            let s = app.store.lock().unwrap();
            match s.idempotency_key(&key)? {
                None => None,
                Some((_, h)) if h != hash => {
                    return Err(ApiError::unprocessable("this Idempotency-Key was used for a different request: use a new key for a new sandbox"));
                }
                Some((id, _)) => s.sandbox(&id)?.map(|sb| (sb.state == "creating", sb.id)),
            }
        };
        match existing {
            Some((false, id)) => return Ok((get_sandbox(app, &id)?, true)),
            Some((true, _)) if std::time::Instant::now() < deadline => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            Some((true, _)) => return Err(ApiError::conflict("the create with this Idempotency-Key is still running: retry later")),
            None => match create_sandbox_with(app, req.clone(), Some((key.clone(), hash.clone()))).await {
                // Lost a race with an identical request: go round and replay its answer.
                Err(e) if e.code == IDEMPOTENCY_RACE => continue,
                other => return other.map(|s| (s, false)),
            },
        }
    }
}

pub async fn create_sandbox(app: &Arc<App>, req: SandboxCreate) -> Result<Sandbox, ApiError> {
    create_sandbox_with(app, req, None).await
}

async fn create_sandbox_with(app: &Arc<App>, req: SandboxCreate, idem: Option<(String, String)>) -> Result<Sandbox, ApiError> {
    // 1. Validate everything before recording anything.
    if let Some(name) = &req.name {
        validate::name("sandbox", name).map_err(ApiError::unprocessable)?;
    }
    let shape_name = req.shape.clone().unwrap_or_else(|| shoal_api::shapes::DEFAULT_SHAPE.to_string());
    let shape = shoal_api::shapes::find(&shape_name)
        .ok_or_else(|| ApiError::unprocessable(format!("unknown shape `{shape_name}`: use one of {}", shoal_api::shapes::names())))?;
    validate::image_ref(&req.rootfs).map_err(ApiError::unprocessable)?;
    validate::env(&req.env).map_err(ApiError::unprocessable)?;
    let on_timeout = parse_on_timeout(req.on_timeout.as_deref())?;
    let expires_at_ms = match req.timeout_secs {
        Some(secs) => Some(expiry(secs)?),
        None => None,
    };
    {
        let node = app.node.clone();
        let image = req.rootfs.clone();
        blocking(move || node.images().get(&image)).await?.map_err(|e| ApiError::unprocessable(e.to_string()))?;
    }
    let mut keys = Vec::new();
    for r in &req.networks {
        match (&r.id, &r.name) {
            (Some(k), None) | (None, Some(k)) => keys.push(k.clone()),
            _ => return Err(ApiError::unprocessable("each entry of `networks` needs exactly one of `id` or `name`")),
        }
    }

    // 2. Decide id, name and addresses, and record them (state `creating`) in one transaction.
    let guard = app.alloc.lock().await;
    let (row, spec) = {
        let mut s = app.store.lock().unwrap();
        let id = naming::new_id(naming::SANDBOX_ID_PREFIX);
        let name = req.name.clone().unwrap_or_else(|| format!("sandbox-{}", &id[naming::SANDBOX_ID_PREFIX.len()..]));
        if s.sandbox(&name)?.is_some() {
            return Err(ApiError::conflict(format!("a sandbox named `{name}` already exists: pick another name or delete it first")));
        }
        if let Some((key, _)) = &idem {
            if s.idempotency_key(key)?.is_some() {
                return Err(ApiError::new(axum::http::StatusCode::CONFLICT, IDEMPOTENCY_RACE, "a create with this Idempotency-Key is already in progress"));
            }
        }
        let mut nets = Vec::new();
        for k in &keys {
            // A network named in the body that does not exist makes the body invalid (422), not
            // the URL (404).
            let n = find_network(&s, k).map_err(|e| ApiError::unprocessable(e.message))?;
            if nets.iter().any(|x: &NetworkRow| x.id == n.id) {
                return Err(ApiError::unprocessable(format!("network `{k}` is listed twice")));
            }
            nets.push(n);
        }
        let mut nics = Vec::new();
        for (idx, n) in nets.iter().enumerate() {
            nics.push(allocate_nic(&s, &id, n, idx as u32)?);
        }
        let row = SandboxRow {
            id: id.clone(),
            name,
            shape: shape.name.to_string(),
            rootfs: req.rootfs.clone(),
            state: "creating".into(),
            state_reason: None,
            env: req.env.clone(),
            created_at: crate::time::now(),
            expires_at_ms,
            // Kept even without a timeout yet: it applies once one is set.
            on_timeout: (expires_at_ms.is_some() || req.on_timeout.is_some()).then(|| on_timeout.to_string()),
        };
        let tx = s.transaction()?;
        store::insert_sandbox(&tx, &row, &nics)?;
        if let Some((key, hash)) = &idem {
            store::insert_idempotency_key(&tx, key, &row.id, hash, &row.created_at)?;
        }
        tx.commit().map_err(store::StoreError::from)?;
        let spec = sandbox_spec(&s, &row)?;
        (row, spec)
    };
    drop(guard);

    // 3. Make it real; on failure undo everything (host objects first, then the rows).
    let node = app.node.clone();
    let spec2 = spec.clone();
    let made = blocking(move || node.ensure_sandbox(&spec2)).await?;
    if let Err(e) = made {
        let node = app.node.clone();
        let (id, nics) = (spec.id.clone(), spec.nics.clone());
        if let Err(cleanup) = blocking(move || node.delete_sandbox(&id, &nics)).await? {
            tracing::error!(sandbox = %spec.id, "cleaning up a failed create: {cleanup}");
        }
        app.store.lock().unwrap().delete_sandbox(&spec.id)?;
        return Err(ApiError::from(e));
    }
    app.store.lock().unwrap().set_sandbox_state(&row.id, "running", None)?;
    refresh_dns(app)?;
    get_sandbox(app, &row.id)
}

/// The lowest free address of `net` for a new member (caller holds `app.alloc`).
fn allocate_nic(s: &Store, sandbox_id: &str, net: &NetworkRow, idx: u32) -> Result<NicRow, ApiError> {
    let block: Cidr = net.cidr.parse().map_err(|_| ApiError::internal("stored CIDR unreadable"))?;
    let taken: Vec<Ipv4Addr> = s.nics_of_network(&net.id)?.iter().filter_map(|m| m.ip.parse().ok()).collect();
    let ip = ipam::next_address(block, &taken).ok_or_else(|| {
        ApiError::conflict(format!("network `{}` ({}) has no free address left ({} members)", net.name, net.cidr, taken.len()))
    })?;
    Ok(NicRow { sandbox_id: sandbox_id.to_string(), network_id: net.id.clone(), idx, ip: ip.to_string(), mac: naming::mac_for_ip(ip), joined_at: crate::time::now() })
}

/// Pushes who-is-where to the node's resolver; called after every membership change.
pub fn refresh_dns(app: &App) -> Result<(), ApiError> {
    let mut view = shoal_node::dns::DnsView::default();
    {
        let s = app.store.lock().unwrap();
        let names: std::collections::BTreeMap<String, String> = s.sandboxes()?.into_iter().map(|sb| (sb.id, sb.name)).collect();
        for n in s.networks()? {
            let members = view.networks.entry(n.name.clone()).or_default();
            for nic in s.nics_of_network(&n.id)? {
                let (Some(name), Ok(ip)) = (names.get(&nic.sandbox_id), nic.ip.parse()) else { continue };
                members.insert(name.clone(), ip);
                view.memberships.entry(nic.sandbox_id.clone()).or_default().insert(n.name.clone());
            }
        }
    }
    app.node.set_dns_view(view);
    Ok(())
}

pub fn members(app: &App, key: &str) -> Result<Vec<Member>, ApiError> {
    Ok(get_network(app, key)?.members)
}

/// Plugs a running sandbox into one more network (the next free ethN).
pub async fn attach(app: &Arc<App>, key: &str, net: shoal_api::NetworkRef) -> Result<Sandbox, ApiError> {
    let net_key = match (&net.id, &net.name) {
        (Some(k), None) | (None, Some(k)) => k.clone(),
        _ => return Err(ApiError::unprocessable("name the network with exactly one of `id` or `name`")),
    };
    let guard = app.alloc.lock().await;
    let (sandbox_id, nic_row, spec) = {
        let s = app.store.lock().unwrap();
        let sb = find_sandbox(&s, key)?;
        if sb.state != "running" {
            return Err(ApiError::conflict(format!("sandbox `{}` is {}: only a running sandbox can be attached", sb.name, sb.state)));
        }
        let n = find_network(&s, &net_key)?;
        let nics = s.nics_of_sandbox(&sb.id)?;
        if nics.iter().any(|x| x.network_id == n.id) {
            return Err(ApiError::conflict(format!("sandbox `{}` is already on network `{}`", sb.name, n.name)));
        }
        let idx = (0..).find(|i| !nics.iter().any(|x| x.idx == *i)).expect("a free index");
        let row = allocate_nic(&s, &sb.id, &n, idx)?;
        store::insert_nic(s.conn(), &row)?;
        let spec = nic_spec(&s, &row)?;
        (sb.id, row, spec)
    };
    drop(guard);
    let node = app.node.clone();
    let (id, nic) = (sandbox_id.clone(), spec.clone());
    if let Err(e) = blocking(move || node.attach(&id, &nic)).await? {
        let node = app.node.clone();
        let (id, nic) = (sandbox_id.clone(), spec);
        let _ = blocking(move || node.detach(&id, &nic)).await?;
        app.store.lock().unwrap().delete_nic(&sandbox_id, &nic_row.network_id)?;
        return Err(ApiError::from(e));
    }
    refresh_dns(app)?;
    refresh_hosts(app, &sandbox_id).await?;
    get_sandbox(app, &sandbox_id)
}

/// Rewrites the sandbox's /etc/hosts so its own name maps to its current first address.
async fn refresh_hosts(app: &Arc<App>, sandbox_id: &str) -> Result<(), ApiError> {
    let spec = {
        let s = app.store.lock().unwrap();
        let row = find_sandbox(&s, sandbox_id)?;
        sandbox_spec(&s, &row)?
    };
    let node = app.node.clone();
    blocking(move || node.write_hosts(&spec)).await??;
    Ok(())
}

/// Unplugs a sandbox from a network: its interface disappears, traffic through it stops at
/// once, and its address returns to the pool.
pub async fn detach(app: &Arc<App>, key: &str, net_key: &str) -> Result<Sandbox, ApiError> {
    let _guard = app.alloc.lock().await;
    let (sb, row, spec) = {
        let s = app.store.lock().unwrap();
        let sb = find_sandbox(&s, key)?;
        let n = find_network(&s, net_key)?;
        let row = s.nics_of_sandbox(&sb.id)?.into_iter().find(|x| x.network_id == n.id).ok_or_else(|| {
            ApiError::not_found(format!("sandbox `{}` is not on network `{}`", sb.name, n.name))
        })?;
        let spec = nic_spec(&s, &row)?;
        (sb, row, spec)
    };
    let node = app.node.clone();
    let id = sb.id.clone();
    blocking(move || node.detach(&id, &spec)).await??;
    app.store.lock().unwrap().delete_nic(&sb.id, &row.network_id)?;
    refresh_dns(app)?;
    refresh_hosts(app, &sb.id).await?;
    get_sandbox(app, &sb.id)
}

pub const MAX_TIMEOUT_SECS: u64 = 30 * 24 * 3600;

fn parse_on_timeout(v: Option<&str>) -> Result<&'static str, ApiError> {
    match v.unwrap_or("delete") {
        "delete" => Ok("delete"),
        "stop" => Ok("stop"),
        other => Err(ApiError::unprocessable(format!("`on_timeout` must be `delete` or `stop`, not `{other}`"))),
    }
}

fn expiry(secs: u64) -> Result<i64, ApiError> {
    if secs == 0 || secs > MAX_TIMEOUT_SECS {
        return Err(ApiError::unprocessable(format!("`timeout_secs` must be between 1 and {MAX_TIMEOUT_SECS} (30 days)")));
    }
    Ok(crate::time::now_ms() + (secs as i64) * 1000)
}

/// Sets a running or stopped sandbox to expire `secs` from now (extends or shortens).
pub fn set_timeout(app: &App, key: &str, secs: u64, on_timeout: Option<&str>) -> Result<Sandbox, ApiError> {
    let at = expiry(secs)?;
    let action = match on_timeout {
        Some(a) => Some(parse_on_timeout(Some(a))?),
        None => None,
    };
    let s = app.store.lock().unwrap();
    let sb = find_sandbox(&s, key)?;
    s.set_expiry(&sb.id, Some(at))?;
    let action = action.or(sb.on_timeout.as_deref().map(|a| if a == "stop" { "stop" } else { "delete" })).unwrap_or("delete");
    s.conn().execute("UPDATE sandboxes SET on_timeout = ?2 WHERE id = ?1", [&sb.id, action]).map_err(crate::store::StoreError::from)?;
    let sb = find_sandbox(&s, &sb.id)?;
    sandbox_view(&s, sb)
}

/// Stops a sandbox's processes; its filesystem, addresses and ports stay.
pub async fn stop_sandbox(app: &Arc<App>, key: &str) -> Result<Sandbox, ApiError> {
    let (id, nics) = {
        let s = app.store.lock().unwrap();
        let sb = find_sandbox(&s, key)?;
        match sb.state.as_str() {
            "stopped" => return sandbox_view(&s, sb),
            "running" | "failed" => {}
            other => return Err(ApiError::conflict(format!("sandbox `{}` is {other}: retry when that finishes", sb.name))),
        }
        s.set_sandbox_state(&sb.id, "stopping", None)?;
        (sb.id.clone(), sandbox_spec(&s, &sb)?.nics)
    };
    let node = app.node.clone();
    let id2 = id.clone();
    let r = blocking(move || node.stop_sandbox(&id2, &nics, std::time::Duration::from_secs(5))).await?;
    let s = app.store.lock().unwrap();
    match r {
        Ok(()) => s.set_sandbox_state(&id, "stopped", None)?,
        Err(e) => {
            s.set_sandbox_state(&id, "failed", Some(&format!("stopping failed: {e}")))?;
            return Err(ApiError::from(e));
        }
    }
    let sb = find_sandbox(&s, &id)?;
    sandbox_view(&s, sb)
}

/// Starts a stopped (or failed) sandbox again on its kept filesystem.
pub async fn start_sandbox(app: &Arc<App>, key: &str) -> Result<Sandbox, ApiError> {
    let spec = {
        let s = app.store.lock().unwrap();
        let sb = find_sandbox(&s, key)?;
        match sb.state.as_str() {
            "running" => return sandbox_view(&s, sb),
            "stopped" | "failed" => {}
            other => return Err(ApiError::conflict(format!("sandbox `{}` is {other}: retry when that finishes", sb.name))),
        }
        let mut spec = sandbox_spec(&s, &sb)?;
        spec.running = true;
        spec
    };
    let node = app.node.clone();
    let spec2 = spec.clone();
    let r = blocking(move || node.ensure_sandbox(&spec2)).await?;
    let s = app.store.lock().unwrap();
    match r {
        Ok(()) => s.set_sandbox_state(&spec.id, "running", None)?,
        Err(e) => {
            s.set_sandbox_state(&spec.id, "failed", Some(&format!("starting failed: {e}")))?;
            return Err(ApiError::from(e));
        }
    }
    let sb = find_sandbox(&s, &spec.id)?;
    sandbox_view(&s, sb)
}

pub async fn logs(app: &Arc<App>, key: &str, lines: usize) -> Result<String, ApiError> {
    let id = find_sandbox(&app.store.lock().unwrap(), key)?.id;
    let node = app.node.clone();
    blocking(move || node.console(&id, lines)).await
}

pub async fn metrics(app: &Arc<App>, key: &str) -> Result<shoal_api::SandboxMetrics, ApiError> {
    let spec = {
        let s = app.store.lock().unwrap();
        let sb = find_sandbox(&s, key)?;
        sandbox_spec(&s, &sb)?
    };
    let node = app.node.clone();
    let m = blocking(move || node.metrics(&spec.id, &spec.nics)).await?;
    Ok(shoal_api::SandboxMetrics {
        cpu_usage_ns: m.cpu_usage_ns,
        memory_bytes: m.memory_bytes,
        memory_limit_bytes: m.memory_limit_bytes,
        pids: m.pids,
        disk_bytes: m.disk_bytes,
        interfaces: m
            .interfaces
            .into_iter()
            .map(|i| shoal_api::InterfaceMetrics { ifname: i.ifname, network_id: i.network_id, rx_bytes: i.rx_bytes, tx_bytes: i.tx_bytes, rx_packets: i.rx_packets, tx_packets: i.tx_packets })
            .collect(),
    })
}

/// Marks `failed` the running sandboxes whose PID 1 died (e.g. `kill 1` from inside), so that
/// their state says so and `start` brings them back.
pub async fn mark_dead(app: &Arc<App>) -> Result<(), ApiError> {
    let running: Vec<String> = app.store.lock().unwrap().sandboxes()?.into_iter().filter(|s| s.state == "running").map(|s| s.id).collect();
    let node = app.node.clone();
    let dead = blocking(move || node.dead_sandboxes(&running)).await?;
    let s = app.store.lock().unwrap();
    for id in dead {
        // Re-check under the lock: a stop or delete may have started meanwhile.
        if s.sandbox(&id)?.is_some_and(|sb| sb.state == "running") {
            tracing::warn!(sandbox = %id, "PID 1 exited; marking the sandbox failed");
            s.set_sandbox_state(&id, "failed", Some("its PID 1 (shoal-agent) exited; `shoal logs` may say why; `shoal sandbox start` restarts it"))?;
        }
    }
    Ok(())
}

/// Deletes or stops sandboxes whose lifetime ended; the server runs this every second.
pub async fn reap_expired(app: &Arc<App>) -> Result<(), ApiError> {
    let expired = app.store.lock().unwrap().expired(crate::time::now_ms())?;
    for sb in expired {
        tracing::info!(sandbox = %sb.id, action = ?sb.on_timeout, "sandbox timeout reached");
        let r = if sb.on_timeout.as_deref() == Some("stop") {
            app.store.lock().unwrap().set_expiry(&sb.id, None)?;
            stop_sandbox(app, &sb.id).await.map(|_| ())
        } else {
            delete_sandbox(app, &sb.id).await
        };
        if let Err(e) = r {
            tracing::error!(sandbox = %sb.id, "acting on its timeout: {}", e.message);
        }
    }
    Ok(())
}

pub async fn delete_sandbox(app: &Arc<App>, key: &str) -> Result<(), ApiError> {
    let spec = {
        let s = app.store.lock().unwrap();
        let row = find_sandbox(&s, key)?;
        if row.state == "creating" {
            return Err(ApiError::conflict(format!("sandbox `{}` is still being created: retry when the create returns", row.name)));
        }
        s.set_sandbox_state(&row.id, "deleting", None)?;
        sandbox_spec(&s, &row)?
    };
    let node = app.node.clone();
    let (id, nics) = (spec.id.clone(), spec.nics.clone());
    match blocking(move || node.delete_sandbox(&id, &nics)).await? {
        Ok(()) => {
            app.store.lock().unwrap().delete_sandbox(&spec.id)?;
            refresh_dns(app)
        }
        Err(e) => {
            let msg = format!("deleting failed: {e}; retry the delete");
            app.store.lock().unwrap().set_sandbox_state(&spec.id, "failed", Some(&msg))?;
            Err(ApiError::internal(msg))
        }
    }
}

pub async fn exec(app: &Arc<App>, key: &str, req: ExecRequest) -> Result<ExecResponse, ApiError> {
    if req.cmd.is_empty() {
        return Err(ApiError::unprocessable("`cmd` must not be empty"));
    }
    validate::env(&req.env).map_err(ApiError::unprocessable)?;
    let timeout = req.timeout_ms.unwrap_or(DEFAULT_EXEC_TIMEOUT_MS);
    if timeout == 0 || timeout > MAX_EXEC_TIMEOUT_MS {
        return Err(ApiError::unprocessable(format!("`timeout_ms` must be between 1 and {MAX_EXEC_TIMEOUT_MS}")));
    }
    let id = {
        let s = app.store.lock().unwrap();
        let row = find_sandbox(&s, key)?;
        if row.state != "running" {
            let why = row.state_reason.map(|r| format!(" ({r})")).unwrap_or_default();
            return Err(ApiError::conflict(format!("sandbox `{}` is {}{why}: exec needs a running sandbox", row.name, row.state)));
        }
        row.id
    };
    let areq = shoal_agent_proto::ExecRequest {
        cmd: req.cmd,
        args: req.args,
        env: req.env,
        cwd: req.cwd,
        stdin: req.stdin.map(String::into_bytes),
        timeout_ms: Some(timeout),
    };
    let node = app.node.clone();
    let id2 = id.clone();
    let r = match blocking(move || node.exec(&id2, areq)).await? {
        Ok(r) => r,
        Err(e) => return Err(agent_failure(app, &id, key, e).await),
    };
    Ok(ExecResponse {
        exit_code: r.exit_code,
        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        duration_ms: r.duration_ms,
        timed_out: r.timed_out,
        signal: r.signal,
        truncated: r.truncated,
    })
}

/// Turns a failure to talk to a sandbox's agent into an answer: if its PID 1 is gone, the
/// sandbox is marked `failed` (with the reason) and the answer is 409, not a 500.
pub async fn agent_failure(app: &Arc<App>, id: &str, key: &str, e: shoal_node::NodeError) -> ApiError {
    let unreachable = matches!(
        e,
        shoal_node::NodeError::NotRunning(_)
            | shoal_node::NodeError::Agent(shoal_node::agent_client::AgentError::Unreachable { .. } | shoal_node::agent_client::AgentError::NoAnswer)
    );
    if !unreachable {
        return ApiError::from(e);
    }
    let node = app.node.clone();
    let id2 = id.to_string();
    if tokio::task::spawn_blocking(move || node.is_running(&id2)).await.unwrap_or(true) {
        return ApiError::from(e);
    }
    let why = "its PID 1 (shoal-agent) exited; `shoal logs` may say why; `shoal sandbox start` restarts it";
    if let Err(store_err) = app.store.lock().unwrap().set_sandbox_state(id, "failed", Some(why)) {
        return store_err.into();
    }
    ApiError::conflict(format!("sandbox `{key}` is not running: {why}"))
}

// ---------------------------------------------------------------- start-up

/// Brings the host in line with the store after a (re)start: finishes interrupted creates and
/// deletes (by removing them), re-adopts every other sandbox, marks the ones that cannot be
/// repaired `failed` with the reason.
pub async fn converge_on_start(app: &Arc<App>) -> Result<(), ApiError> {
    let (interrupted, specs, networks) = {
        let s = app.store.lock().unwrap();
        let mut interrupted = Vec::new();
        let mut specs = Vec::new();
        for row in s.sandboxes()? {
            let spec = sandbox_spec(&s, &row)?;
            if row.state == "creating" || row.state == "deleting" {
                interrupted.push(spec);
            } else {
                specs.push(spec);
            }
        }
        let networks: BTreeSet<String> = s.networks()?.into_iter().map(|n| n.id).collect();
        (interrupted, specs, networks)
    };
    for spec in interrupted {
        tracing::info!(sandbox = %spec.id, "removing a sandbox whose create or delete was interrupted");
        let node = app.node.clone();
        let (id, nics) = (spec.id.clone(), spec.nics.clone());
        match blocking(move || node.delete_sandbox(&id, &nics)).await? {
            Ok(()) => app.store.lock().unwrap().delete_sandbox(&spec.id)?,
            Err(e) => {
                tracing::error!(sandbox = %spec.id, "cleaning up an interrupted create/delete: {e}");
                let why = format!("an interrupted create or delete could not be cleaned up: {e}; delete it again");
                app.store.lock().unwrap().set_sandbox_state(&spec.id, "failed", Some(&why))?;
            }
        }
    }
    refresh_dns(app)?;
    let node = app.node.clone();
    let results = blocking(move || node.converge(&specs, &networks)).await?;
    let s = app.store.lock().unwrap();
    for (id, r) in results {
        // A stop that was interrupted by the restart was finished by `converge` (spec.running
        // is false for `stopping`): record it as stopped.
        let stopped = s.sandbox(&id)?.is_some_and(|sb| sb.state == "stopped" || sb.state == "stopping");
        match r {
            Ok(()) if stopped => s.set_sandbox_state(&id, "stopped", None)?,
            Ok(()) => s.set_sandbox_state(&id, "running", None)?,
            Err(e) => {
                tracing::error!(sandbox = %id, "could not re-adopt: {e}");
                s.set_sandbox_state(&id, "failed", Some(&format!("could not be restarted after a node restart: {e}")))?;
            }
        }
    }
    Ok(())
}

/// The shape catalogue as the API shows it.
pub fn shapes() -> Vec<shoal_api::ShapeInfo> {
    shoal_api::SHAPES
        .iter()
        .map(|s| shoal_api::ShapeInfo { name: s.name.into(), vcpus: s.vcpus, memory_mb: s.memory_mb, pids_limit: s.pids_limit })
        .collect()
}

