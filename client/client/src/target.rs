//! Where the daemon is: parsing of `unix://`, `http://`, `https://` (and `tcp://`) URLs and
//! the default socket path.

use std::path::{Path, PathBuf};

use crate::ClientError;

/// Environment variable holding the daemon URL.
pub const HOST_ENV: &str = "IMAGED_HOST";

/// Socket path of a daemon run by root.
pub const ROOT_SOCKET: &str = "/run/imaged/imaged.sock";

/// A parsed daemon address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A unix socket at an absolute path (`unix:///run/imaged/imaged.sock`).
    Unix(PathBuf),
    /// Plain-text HTTP/2 (`http://host:port`; `tcp://host:port` is an alias).
    Http(String),
    /// HTTP/2 over TLS (`https://host:port`).
    Https(String),
}

impl Target {
    /// Parses a daemon URL.
    ///
    /// `unix:///abs/path` (also `unix:/abs/path`), `http://host:port`, `https://host:port`,
    /// `tcp://host:port` (same as `http://`, the daemon's own listener syntax).
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("unix:") {
            // unix:///abs → "///abs" → "/abs"; unix:/abs → "/abs".
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(ClientError::config(format!(
                    "invalid daemon URL {url:?}: a unix socket path must be absolute (unix:///path)"
                )));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            ClientError::config(format!(
                "invalid daemon URL {url:?}: expected unix:///path, http://host:port or https://host:port"
            ))
        })?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(ClientError::config(format!(
                "invalid daemon URL {url:?}: expected host:port after {scheme}://"
            )));
        }
        match scheme {
            "http" | "tcp" => Ok(Self::Http(format!("http://{authority}"))),
            "https" => Ok(Self::Https(format!("https://{authority}"))),
            other => Err(ClientError::config(format!(
                "invalid daemon URL {url:?}: unsupported scheme {other:?} (unix, http, https, tcp)"
            ))),
        }
    }
}

/// The default daemon URL: `$IMAGED_HOST` if set and not empty, else
/// `unix:///run/imaged/imaged.sock` for root, else
/// `unix://$XDG_RUNTIME_DIR/imaged/imaged.sock` (`/run/user/<uid>` when unset).
pub fn default_url() -> String {
    if let Ok(url) = std::env::var(HOST_ENV)
        && !url.trim().is_empty()
    {
        return url;
    }
    default_socket_url(
        current_uid(),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
    )
}

/// The default socket URL for a user, without looking at `IMAGED_HOST`.
pub fn default_socket_url(uid: Option<u32>, xdg_runtime_dir: Option<PathBuf>) -> String {
    if uid == Some(0) {
        return format!("unix://{ROOT_SOCKET}");
    }
    let runtime = xdg_runtime_dir
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| match uid {
            Some(uid) => PathBuf::from(format!("/run/user/{uid}")),
            None => PathBuf::from("/run/imaged-user"),
        });
    format!(
        "unix://{}",
        runtime.join("imaged").join("imaged.sock").display()
    )
}

/// The effective user ID of this process (owner of `/proc/self`), `None` if unknown.
fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(Path::new("/proc/self"))
        .ok()
        .map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_urls() {
        assert_eq!(
            Target::parse("unix:///run/imaged/imaged.sock").unwrap(),
            Target::Unix(PathBuf::from("/run/imaged/imaged.sock"))
        );
        assert_eq!(
            Target::parse("unix:/tmp/x.sock").unwrap(),
            Target::Unix(PathBuf::from("/tmp/x.sock"))
        );
        assert!(Target::parse("unix://relative.sock").is_err());
        assert!(Target::parse("unix:").is_err());
    }

    #[test]
    fn parses_tcp_urls() {
        assert_eq!(
            Target::parse("http://127.0.0.1:7000").unwrap(),
            Target::Http("http://127.0.0.1:7000".into())
        );
        assert_eq!(
            Target::parse("tcp://127.0.0.1:7000/").unwrap(),
            Target::Http("http://127.0.0.1:7000".into())
        );
        assert_eq!(
            Target::parse("https://imaged.example:7443").unwrap(),
            Target::Https("https://imaged.example:7443".into())
        );
        let err = Target::parse("ftp://x:1").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Config);
        assert!(Target::parse("http://").is_err());
        assert!(Target::parse("http://h:1/path").is_err());
        assert!(Target::parse("localhost:1").is_err());
    }

    #[test]
    fn default_socket_paths() {
        assert_eq!(
            default_socket_url(Some(0), None),
            "unix:///run/imaged/imaged.sock"
        );
        assert_eq!(
            default_socket_url(Some(0), Some("/run/user/0".into())),
            "unix:///run/imaged/imaged.sock"
        );
        assert_eq!(
            default_socket_url(Some(1000), Some("/run/user/1000".into())),
            "unix:///run/user/1000/imaged/imaged.sock"
        );
        assert_eq!(
            default_socket_url(Some(1000), None),
            "unix:///run/user/1000/imaged/imaged.sock"
        );
        assert_eq!(
            default_socket_url(Some(1000), Some("relative".into())),
            "unix:///run/user/1000/imaged/imaged.sock"
        );
    }
}
