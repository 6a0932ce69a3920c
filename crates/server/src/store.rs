//! The state store: what should exist. SQLite (WAL, synchronous=FULL) under the data directory.
//!
//! Every multi-row change runs in one transaction, so a crash leaves either the old or the new
//! state, never half of one.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sql(#[from] rusqlite::Error),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRow {
    pub id: String,
    pub name: String,
    pub cidr: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SandboxRow {
    pub id: String,
    pub name: String,
    pub shape: String,
    pub rootfs: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub env: BTreeMap<String, String>,
    pub created_at: String,
    /// Unix milliseconds.
    pub expires_at_ms: Option<i64>,
    pub on_timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NicRow {
    pub sandbox_id: String,
    pub network_id: String,
    pub idx: u32,
    pub ip: String,
    pub mac: String,
    pub joined_at: String,
}

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        cidr TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE sandboxes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        shape TEXT NOT NULL,
        rootfs TEXT NOT NULL,
        state TEXT NOT NULL,
        state_reason TEXT,
        env TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE nics (
        sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
        network_id TEXT NOT NULL REFERENCES networks(id),
        idx INTEGER NOT NULL,
        ip TEXT NOT NULL,
        mac TEXT NOT NULL,
        PRIMARY KEY (sandbox_id, network_id),
        UNIQUE (network_id, ip),
        UNIQUE (sandbox_id, idx)
    );
    CREATE TABLE api_keys (
        sha256 TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    );",
    // 2: when each member joined its network.
    "ALTER TABLE nics ADD COLUMN joined_at TEXT NOT NULL DEFAULT '';",
    // 3: sandbox lifetimes.
    "ALTER TABLE sandboxes ADD COLUMN expires_at_ms INTEGER;
     ALTER TABLE sandboxes ADD COLUMN on_timeout TEXT;",
    // 4: idempotency keys of sandbox creates (gone with their sandbox).
    "CREATE TABLE idempotency_keys (
        key TEXT PRIMARY KEY,
        sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
        request_sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL
    );",
];

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let tx = self.conn.transaction()?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn transaction(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self.conn.transaction()?)
    }

    // ---- api keys

    pub fn api_key_count(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0))?)
    }

    pub fn add_api_key(&self, sha256: &str, now: &str) -> Result<(), StoreError> {
        self.conn.execute("INSERT OR IGNORE INTO api_keys (sha256, created_at) VALUES (?1, ?2)", params![sha256, now])?;
        Ok(())
    }

    pub fn has_api_key(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self.conn.query_row("SELECT 1 FROM api_keys WHERE sha256 = ?1", [sha256], |_| Ok(())).optional()?.is_some())
    }

    // ---- networks

    pub fn networks(&self) -> Result<Vec<NetworkRow>, StoreError> {
        let mut st = self.conn.prepare("SELECT id, name, cidr, created_at FROM networks ORDER BY created_at, name")?;
        let rows = st.query_map([], network_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// By id or by name.
    pub fn network(&self, key: &str) -> Result<Option<NetworkRow>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT id, name, cidr, created_at FROM networks WHERE id = ?1 OR name = ?1", [key], network_row)
            .optional()?)
    }

    pub fn insert_network(&self, n: &NetworkRow) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO networks (id, name, cidr, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![n.id, n.name, n.cidr, n.created_at],
        )?;
        Ok(())
    }

    pub fn delete_network(&self, id: &str) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM networks WHERE id = ?1", [id])?;
        Ok(())
    }

    // ---- sandboxes

    pub fn sandboxes(&self) -> Result<Vec<SandboxRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, name, shape, rootfs, state, state_reason, env, created_at, expires_at_ms, on_timeout FROM sandboxes ORDER BY created_at, name",
        )?;
        let rows = st.query_map([], sandbox_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn sandbox(&self, key: &str) -> Result<Option<SandboxRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, shape, rootfs, state, state_reason, env, created_at, expires_at_ms, on_timeout FROM sandboxes WHERE id = ?1 OR name = ?1",
                [key],
                sandbox_row,
            )
            .optional()?)
    }

    pub fn set_sandbox_state(&self, id: &str, state: &str, reason: Option<&str>) -> Result<(), StoreError> {
        self.conn.execute("UPDATE sandboxes SET state = ?2, state_reason = ?3 WHERE id = ?1", params![id, state, reason])?;
        Ok(())
    }

    /// (sandbox id, request hash) recorded for an idempotency key.
    pub fn idempotency_key(&self, key: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT sandbox_id, request_sha256 FROM idempotency_keys WHERE key = ?1", [key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    pub fn set_expiry(&self, id: &str, expires_at_ms: Option<i64>) -> Result<(), StoreError> {
        self.conn.execute("UPDATE sandboxes SET expires_at_ms = ?2 WHERE id = ?1", params![id, expires_at_ms])?;
        Ok(())
    }

    /// Running sandboxes whose lifetime ended at or before `now_ms`.
    pub fn expired(&self, now_ms: i64) -> Result<Vec<SandboxRow>, StoreError> {
        Ok(self.sandboxes()?.into_iter().filter(|s| s.state == "running" && s.expires_at_ms.is_some_and(|t| t <= now_ms)).collect())
    }

    pub fn delete_sandbox(&self, id: &str) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM sandboxes WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn delete_nic(&self, sandbox_id: &str, network_id: &str) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM nics WHERE sandbox_id = ?1 AND network_id = ?2", params![sandbox_id, network_id])?;
        Ok(())
    }

    pub fn nics_of_sandbox(&self, sandbox_id: &str) -> Result<Vec<NicRow>, StoreError> {
        nics_where(&self.conn, "sandbox_id = ?1 ORDER BY idx", sandbox_id)
    }

    pub fn nics_of_network(&self, network_id: &str) -> Result<Vec<NicRow>, StoreError> {
        nics_where(&self.conn, "network_id = ?1 ORDER BY ip", network_id)
    }
}

/// Inserts a sandbox and its NICs (inside the caller's transaction).
pub fn insert_sandbox(tx: &Transaction<'_>, s: &SandboxRow, nics: &[NicRow]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO sandboxes (id, name, shape, rootfs, state, state_reason, env, created_at, expires_at_ms, on_timeout) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![s.id, s.name, s.shape, s.rootfs, s.state, s.state_reason, serde_json::to_string(&s.env).unwrap(), s.created_at, s.expires_at_ms, s.on_timeout],
    )?;
    for n in nics {
        insert_nic(tx, n)?;
    }
    Ok(())
}

pub fn insert_idempotency_key(conn: &Connection, key: &str, sandbox_id: &str, request_sha256: &str, now: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO idempotency_keys (key, sandbox_id, request_sha256, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key, sandbox_id, request_sha256, now],
    )?;
    Ok(())
}

pub fn insert_nic(conn: &Connection, n: &NicRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO nics (sandbox_id, network_id, idx, ip, mac, joined_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![n.sandbox_id, n.network_id, n.idx, n.ip, n.mac, n.joined_at],
    )?;
    Ok(())
}

pub fn nics_where(conn: &Connection, cond: &str, arg: &str) -> Result<Vec<NicRow>, StoreError> {
    let sql = format!("SELECT sandbox_id, network_id, idx, ip, mac, joined_at FROM nics WHERE {cond}");
    let mut st = conn.prepare(&sql)?;
    let rows = st
        .query_map([arg], |r| {
            Ok(NicRow { sandbox_id: r.get(0)?, network_id: r.get(1)?, idx: r.get(2)?, ip: r.get(3)?, mac: r.get(4)?, joined_at: r.get(5)? })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn network_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkRow> {
    Ok(NetworkRow { id: r.get(0)?, name: r.get(1)?, cidr: r.get(2)?, created_at: r.get(3)? })
}

fn sandbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SandboxRow> {
    let env: String = r.get(6)?;
    Ok(SandboxRow {
        id: r.get(0)?,
        name: r.get(1)?,
        shape: r.get(2)?,
        rootfs: r.get(3)?,
        state: r.get(4)?,
        state_reason: r.get(5)?,
        env: serde_json::from_str(&env).unwrap_or_default(),
        created_at: r.get(7)?,
        expires_at_ms: r.get(8)?,
        on_timeout: r.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_with_nics_round_trips_and_cascades() {
        let mut s = Store::open_in_memory().unwrap();
        let net = NetworkRow { id: "net-0000000001".into(), name: "n".into(), cidr: "10.210.0.0/24".into(), created_at: "t".into() };
        s.insert_network(&net).unwrap();
        assert_eq!(s.network("n").unwrap(), Some(net.clone()));
        assert_eq!(s.network("net-0000000001").unwrap(), Some(net.clone()));
        let sb = SandboxRow {
            id: "sbx-0000000001".into(),
            name: "a".into(),
            shape: "s-1vcpu-1gb".into(),
            rootfs: "busybox:1".into(),
            state: "running".into(),
            state_reason: None,
            env: BTreeMap::from([("K".into(), "V".into())]),
            created_at: "t".into(),
            expires_at_ms: Some(5),
            on_timeout: Some("stop".into()),
        };
        let nic = NicRow { sandbox_id: sb.id.clone(), network_id: net.id.clone(), idx: 0, ip: "10.210.0.2".into(), mac: "m".into(), joined_at: "t".into() };
        let tx = s.transaction().unwrap();
        insert_sandbox(&tx, &sb, std::slice::from_ref(&nic)).unwrap();
        tx.commit().unwrap();
        assert_eq!(s.sandbox("a").unwrap(), Some(sb.clone()));
        assert_eq!(s.nics_of_network(&net.id).unwrap(), vec![nic]);
        // A second member with the same IP is refused by the schema itself.
        let tx = s.transaction().unwrap();
        let sb2 = SandboxRow { id: "sbx-0000000002".into(), name: "b".into(), ..sb.clone() };
        let dup = NicRow { sandbox_id: sb2.id.clone(), network_id: net.id.clone(), idx: 0, ip: "10.210.0.2".into(), mac: "m".into(), joined_at: "t".into() };
        assert!(insert_sandbox(&tx, &sb2, &[dup]).is_err());
        drop(tx);
        s.delete_sandbox(&sb.id).unwrap();
        assert!(s.nics_of_network(&net.id).unwrap().is_empty());
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Store::open(&path).unwrap().add_api_key("h", "t").unwrap();
        let s = Store::open(&path).unwrap();
        assert!(s.has_api_key("h").unwrap());
    }
}
