//! Where clients find the API: flags, then `SHOAL_URL`/`SHOAL_API_KEY`, then the client config
//! file that `shoal up` writes on first start (mode 0600).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Error;

pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientConfig {
    pub url: String,
    pub api_key: String,
}

/// `SHOAL_CONFIG`, else `$XDG_CONFIG_HOME/shoal/config.json`, else `~/.config/shoal/config.json`.
pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("SHOAL_CONFIG") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".config"));
    base.join("shoal").join("config.json")
}

pub fn load() -> Option<ClientConfig> {
    serde_json::from_slice(&std::fs::read(path()).ok()?).ok()
}

/// Writes the config file with mode 0600 (it holds a secret).
pub fn save(c: &ClientConfig) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = path();
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = p.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(c).expect("json"))?;
    f.sync_all()?;
    std::fs::rename(&tmp, &p)?;
    Ok(p)
}

/// Explicit values win, then the environment, then the file.
pub fn resolve(url: Option<String>, api_key: Option<String>) -> Result<ClientConfig, Error> {
    let file = load();
    let url = url
        .or_else(|| std::env::var("SHOAL_URL").ok().filter(|s| !s.is_empty()))
        .or_else(|| file.as_ref().map(|c| c.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let api_key = api_key
        .or_else(|| std::env::var("SHOAL_API_KEY").ok().filter(|s| !s.is_empty()))
        .or_else(|| file.as_ref().map(|c| c.api_key.clone()))
        .ok_or_else(|| {
            Error::Config(format!(
                "no API key: set SHOAL_API_KEY, pass --api-key, or start `shoal up` once so that it writes {}",
                path().display()
            ))
        })?;
    Ok(ClientConfig { url, api_key })
}
