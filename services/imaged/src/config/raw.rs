//! The unvalidated configuration and its three sources: the TOML file, the `IMAGED_*`
//! environment variables and the command-line flags. Each source yields a [`Raw`] and
//! the errors it found; later sources override earlier ones key by key.

use toml::{Table, Value};

/// `[auth]` as given.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawAuth {
    pub admin_uids: Option<Vec<i64>>,
    pub admin_gids: Option<Vec<i64>>,
    pub reader_uids: Option<Vec<i64>>,
    pub reader_gids: Option<Vec<i64>>,
    pub admin_token_file: Option<String>,
    pub reader_token_file: Option<String>,
}

/// `[tls]` as given.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
}

/// Every key, as given (`None`: not set by this source).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Raw {
    pub listen: Option<Vec<String>>,
    pub store: Option<String>,
    pub root: Option<String>,
    pub runroot: Option<String>,
    pub storage_driver: Option<String>,
    pub search_registries: Option<Vec<String>>,
    pub platform: Option<String>,
    pub pinned_images: Option<Vec<String>>,
    pub max_load_bytes: Option<i64>,
    pub max_load_unpacked_bytes: Option<i64>,
    pub max_load_header_bytes: Option<i64>,
    pub max_load_metadata_bytes: Option<i64>,
    pub max_load_metadata_total_bytes: Option<i64>,
    pub min_free_bytes: Option<i64>,
    pub max_recv_message_bytes: Option<i64>,
    pub max_send_message_bytes: Option<i64>,
    pub grace_period: Option<f64>,
    pub max_connections: Option<i64>,
    pub max_connections_per_peer: Option<i64>,
    pub handshake_timeout: Option<f64>,
    pub idle_timeout: Option<f64>,
    pub load_idle_timeout: Option<f64>,
    pub insecure_tcp: Option<bool>,
    pub metrics_listen: Option<String>,
    pub log: Option<String>,
    pub auth: RawAuth,
    pub tls: RawTls,
    /// `[gc]` as given (file only; read by `config::gc`).
    pub gc: Option<Table>,
}

fn pick<T>(base: &mut Option<T>, over: Option<T>) {
    if over.is_some() {
        *base = over;
    }
}

impl Raw {
    /// Overrides the keys `over` sets.
    pub(crate) fn overlay(&mut self, over: Raw) {
        pick(&mut self.listen, over.listen);
        pick(&mut self.store, over.store);
        pick(&mut self.root, over.root);
        pick(&mut self.runroot, over.runroot);
        pick(&mut self.storage_driver, over.storage_driver);
        pick(&mut self.search_registries, over.search_registries);
        pick(&mut self.platform, over.platform);
        pick(&mut self.pinned_images, over.pinned_images);
        pick(&mut self.max_load_bytes, over.max_load_bytes);
        pick(&mut self.min_free_bytes, over.min_free_bytes);
        pick(
            &mut self.max_load_unpacked_bytes,
            over.max_load_unpacked_bytes,
        );
        pick(&mut self.max_load_header_bytes, over.max_load_header_bytes);
        pick(
            &mut self.max_load_metadata_bytes,
            over.max_load_metadata_bytes,
        );
        pick(
            &mut self.max_load_metadata_total_bytes,
            over.max_load_metadata_total_bytes,
        );
        pick(
            &mut self.max_recv_message_bytes,
            over.max_recv_message_bytes,
        );
        pick(
            &mut self.max_send_message_bytes,
            over.max_send_message_bytes,
        );
        pick(&mut self.grace_period, over.grace_period);
        pick(&mut self.max_connections, over.max_connections);
        pick(
            &mut self.max_connections_per_peer,
            over.max_connections_per_peer,
        );
        pick(&mut self.handshake_timeout, over.handshake_timeout);
        pick(&mut self.idle_timeout, over.idle_timeout);
        pick(&mut self.load_idle_timeout, over.load_idle_timeout);
        pick(&mut self.insecure_tcp, over.insecure_tcp);
        pick(&mut self.metrics_listen, over.metrics_listen);
        pick(&mut self.log, over.log);
        pick(&mut self.auth.admin_uids, over.auth.admin_uids);
        pick(&mut self.auth.admin_gids, over.auth.admin_gids);
        pick(&mut self.auth.reader_uids, over.auth.reader_uids);
        pick(&mut self.auth.reader_gids, over.auth.reader_gids);
        pick(&mut self.auth.admin_token_file, over.auth.admin_token_file);
        pick(
            &mut self.auth.reader_token_file,
            over.auth.reader_token_file,
        );
        pick(&mut self.tls.cert, over.tls.cert);
        pick(&mut self.tls.key, over.tls.key);
        pick(&mut self.tls.client_ca, over.tls.client_ca);
        pick(&mut self.gc, over.gc);
    }
}

/// Reads typed values out of a TOML table, collecting one error per bad key.
struct Keys<'a> {
    prefix: &'a str,
    errors: &'a mut Vec<String>,
}

impl Keys<'_> {
    fn err(&mut self, key: &str, what: &str) {
        self.errors.push(format!("{}`{key}`: {what}", self.prefix));
    }

    fn string(&mut self, key: &str, v: Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s),
            other => {
                self.err(
                    key,
                    &format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn strings(&mut self, key: &str, v: Value) -> Option<Vec<String>> {
        let Value::Array(items) = v else {
            self.err(
                key,
                &format!("expected an array of strings, found {}", v.type_str()),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) => out.push(s),
                other => {
                    self.err(
                        &format!("{key}[{i}]"),
                        &format!("expected a string, found {}", other.type_str()),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn int(&mut self, key: &str, v: Value) -> Option<i64> {
        match v {
            Value::Integer(n) => Some(n),
            other => {
                self.err(
                    key,
                    &format!("expected an integer, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn ints(&mut self, key: &str, v: Value) -> Option<Vec<i64>> {
        let Value::Array(items) = v else {
            self.err(
                key,
                &format!("expected an array of integers, found {}", v.type_str()),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::Integer(n) => out.push(n),
                other => {
                    self.err(
                        &format!("{key}[{i}]"),
                        &format!("expected an integer, found {}", other.type_str()),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn number(&mut self, key: &str, v: Value) -> Option<f64> {
        match v {
            #[allow(clippy::cast_precision_loss)]
            Value::Integer(n) => Some(n as f64),
            Value::Float(f) => Some(f),
            other => {
                self.err(
                    key,
                    &format!("expected a number of seconds, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, v: Value) -> Option<bool> {
        match v {
            Value::Boolean(b) => Some(b),
            other => {
                self.err(
                    key,
                    &format!("expected true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn table(&mut self, key: &str, v: Value) -> Option<Table> {
        match v {
            Value::Table(t) => Some(t),
            other => {
                self.err(
                    key,
                    &format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }
}

/// Parses the TOML text of a config file (`origin` names it in errors).
pub(crate) fn from_toml(text: &str, origin: &str) -> (Raw, Vec<String>) {
    let mut errors = Vec::new();
    let table: Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("{origin}: {}", e.to_string().trim_end()));
            return (Raw::default(), errors);
        }
    };
    let prefix = format!("{origin}: key ");
    let mut raw = Raw::default();
    let mut keys = Keys {
        prefix: &prefix,
        errors: &mut errors,
    };
    for (key, v) in table {
        match key.as_str() {
            "listen" => raw.listen = keys.strings(&key, v),
            "store" => raw.store = keys.string(&key, v),
            "root" => raw.root = keys.string(&key, v),
            "runroot" => raw.runroot = keys.string(&key, v),
            "storage_driver" => raw.storage_driver = keys.string(&key, v),
            "search_registries" => raw.search_registries = keys.strings(&key, v),
            "platform" => raw.platform = keys.string(&key, v),
            "pinned_images" => raw.pinned_images = keys.strings(&key, v),
            "max_load_bytes" => raw.max_load_bytes = keys.int(&key, v),
            "max_load_unpacked_bytes" => raw.max_load_unpacked_bytes = keys.int(&key, v),
            "max_load_header_bytes" => raw.max_load_header_bytes = keys.int(&key, v),
            "max_load_metadata_bytes" => raw.max_load_metadata_bytes = keys.int(&key, v),
            "max_load_metadata_total_bytes" => {
                raw.max_load_metadata_total_bytes = keys.int(&key, v);
            }
            "min_free_bytes" => raw.min_free_bytes = keys.int(&key, v),
            "max_recv_message_bytes" => raw.max_recv_message_bytes = keys.int(&key, v),
            "max_send_message_bytes" => raw.max_send_message_bytes = keys.int(&key, v),
            "grace_period" => raw.grace_period = keys.number(&key, v),
            "max_connections" => raw.max_connections = keys.int(&key, v),
            "max_connections_per_peer" => raw.max_connections_per_peer = keys.int(&key, v),
            "handshake_timeout" => raw.handshake_timeout = keys.number(&key, v),
            "idle_timeout" => raw.idle_timeout = keys.number(&key, v),
            "load_idle_timeout" => raw.load_idle_timeout = keys.number(&key, v),
            "insecure_tcp" => raw.insecure_tcp = keys.boolean(&key, v),
            "metrics_listen" => raw.metrics_listen = keys.string(&key, v),
            "log" => raw.log = keys.string(&key, v),
            "auth" => {
                if let Some(t) = keys.table(&key, v) {
                    raw.auth = auth_table(t, origin, keys.errors);
                }
            }
            "tls" => {
                if let Some(t) = keys.table(&key, v) {
                    raw.tls = tls_table(t, origin, keys.errors);
                }
            }
            "gc" => raw.gc = keys.table(&key, v),
            _ => keys.err(&key, "unknown key"),
        }
    }
    (raw, errors)
}

fn auth_table(t: Table, origin: &str, errors: &mut Vec<String>) -> RawAuth {
    let prefix = format!("{origin}: key auth.");
    let mut keys = Keys {
        prefix: &prefix,
        errors,
    };
    let mut a = RawAuth::default();
    for (key, v) in t {
        match key.as_str() {
            "admin_uids" => a.admin_uids = keys.ints(&key, v),
            "admin_gids" => a.admin_gids = keys.ints(&key, v),
            "reader_uids" => a.reader_uids = keys.ints(&key, v),
            "reader_gids" => a.reader_gids = keys.ints(&key, v),
            "admin_token_file" => a.admin_token_file = keys.string(&key, v),
            "reader_token_file" => a.reader_token_file = keys.string(&key, v),
            _ => keys.err(&key, "unknown key"),
        }
    }
    a
}

fn tls_table(t: Table, origin: &str, errors: &mut Vec<String>) -> RawTls {
    let prefix = format!("{origin}: key tls.");
    let mut keys = Keys {
        prefix: &prefix,
        errors,
    };
    let mut tls = RawTls::default();
    for (key, v) in t {
        match key.as_str() {
            "cert" => tls.cert = keys.string(&key, v),
            "key" => tls.key = keys.string(&key, v),
            "client_ca" => tls.client_ca = keys.string(&key, v),
            _ => keys.err(&key, "unknown key"),
        }
    }
    tls
}

/// The environment variables read (`IMAGED_<KEY>`); lists are comma-separated.
pub(crate) const ENV_KEYS: &[&str] = &[
    "IMAGED_LISTEN",
    "IMAGED_STORE",
    "IMAGED_ROOT",
    "IMAGED_RUNROOT",
    "IMAGED_STORAGE_DRIVER",
    "IMAGED_SEARCH_REGISTRIES",
    "IMAGED_PLATFORM",
    "IMAGED_PINNED_IMAGES",
    "IMAGED_MAX_LOAD_BYTES",
    "IMAGED_MAX_LOAD_UNPACKED_BYTES",
    "IMAGED_MAX_LOAD_HEADER_BYTES",
    "IMAGED_MAX_LOAD_METADATA_BYTES",
    "IMAGED_MAX_LOAD_METADATA_TOTAL_BYTES",
    "IMAGED_MIN_FREE_BYTES",
    "IMAGED_GRACE_PERIOD",
    "IMAGED_INSECURE_TCP",
    "IMAGED_METRICS_LISTEN",
    "IMAGED_LOG",
];

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads the `IMAGED_*` variables through `get`.
pub(crate) fn from_env(get: &dyn Fn(&str) -> Option<String>) -> (Raw, Vec<String>) {
    let mut raw = Raw::default();
    let mut errors = Vec::new();
    for &name in ENV_KEYS {
        let Some(v) = get(name) else { continue };
        match name {
            "IMAGED_LISTEN" => raw.listen = Some(list(&v)),
            "IMAGED_STORE" => raw.store = Some(v),
            "IMAGED_ROOT" => raw.root = Some(v),
            "IMAGED_RUNROOT" => raw.runroot = Some(v),
            "IMAGED_STORAGE_DRIVER" => raw.storage_driver = Some(v),
            "IMAGED_SEARCH_REGISTRIES" => raw.search_registries = Some(list(&v)),
            "IMAGED_PLATFORM" => raw.platform = Some(v),
            "IMAGED_PINNED_IMAGES" => raw.pinned_images = Some(list(&v)),
            "IMAGED_MAX_LOAD_BYTES"
            | "IMAGED_MAX_LOAD_UNPACKED_BYTES"
            | "IMAGED_MAX_LOAD_HEADER_BYTES"
            | "IMAGED_MAX_LOAD_METADATA_BYTES"
            | "IMAGED_MAX_LOAD_METADATA_TOTAL_BYTES"
            | "IMAGED_MIN_FREE_BYTES" => match v.trim().parse() {
                Ok(n) => {
                    let slot = match name {
                        "IMAGED_MIN_FREE_BYTES" => &mut raw.min_free_bytes,
                        "IMAGED_MAX_LOAD_BYTES" => &mut raw.max_load_bytes,
                        "IMAGED_MAX_LOAD_UNPACKED_BYTES" => &mut raw.max_load_unpacked_bytes,
                        "IMAGED_MAX_LOAD_HEADER_BYTES" => &mut raw.max_load_header_bytes,
                        "IMAGED_MAX_LOAD_METADATA_BYTES" => &mut raw.max_load_metadata_bytes,
                        _ => &mut raw.max_load_metadata_total_bytes,
                    };
                    *slot = Some(n);
                }
                Err(_) => errors.push(format!("{name}: expected an integer, got {v:?}")),
            },
            "IMAGED_GRACE_PERIOD" => match v.trim().parse() {
                Ok(n) => raw.grace_period = Some(n),
                Err(_) => errors.push(format!("{name}: expected a number of seconds, got {v:?}")),
            },
            "IMAGED_INSECURE_TCP" => match v.trim() {
                "1" | "true" => raw.insecure_tcp = Some(true),
                "0" | "false" => raw.insecure_tcp = Some(false),
                _ => errors.push(format!("{name}: expected true or false, got {v:?}")),
            },
            "IMAGED_METRICS_LISTEN" => raw.metrics_listen = Some(v),
            "IMAGED_LOG" => raw.log = Some(v),
            _ => {}
        }
    }
    (raw, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let (raw, errors) = from_toml(
            r#"
            listen = ["unix:///run/x.sock", "tcp://127.0.0.1:0"]
            store = "memory"
            root = "/srv/imaged"
            search_registries = ["quay.io"]
            pinned_images = ["registry.k8s.io/pause:*"]
            max_load_bytes = 1024
            max_recv_message_bytes = 2048
            max_send_message_bytes = 4096
            grace_period = 2.5
            max_connections = 100
            max_connections_per_peer = 10
            handshake_timeout = 5
            idle_timeout = 60.5
            insecure_tcp = true
            metrics_listen = "127.0.0.1:9464"
            log = "debug"
            [auth]
            admin_uids = [0]
            admin_gids = [10]
            reader_uids = [1000]
            reader_gids = [100]
            admin_token_file = "/etc/imaged/admin.token"
            reader_token_file = "/etc/imaged/reader.token"
            [tls]
            cert = "c.pem"
            key = "k.pem"
            client_ca = "ca.pem"
            "#,
            "f.toml",
        );
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(raw.listen.as_deref().map(<[String]>::len), Some(2));
        assert_eq!(raw.grace_period, Some(2.5));
        assert_eq!(raw.max_connections, Some(100));
        assert_eq!(raw.max_connections_per_peer, Some(10));
        assert_eq!(raw.handshake_timeout, Some(5.0));
        assert_eq!(raw.idle_timeout, Some(60.5));
        assert_eq!(raw.auth.reader_gids, Some(vec![100]));
        assert_eq!(raw.tls.client_ca.as_deref(), Some("ca.pem"));
        assert_eq!(raw.max_send_message_bytes, Some(4096));
    }

    #[test]
    fn reports_every_bad_key() {
        let (_, errors) = from_toml(
            "store = 1\nlisten = \"x\"\nbogus = true\ngrace_period = \"ten\"\n[auth]\nadmin_uids = [\"root\"]\nnope = 1\n",
            "f.toml",
        );
        let joined = errors.join("\n");
        for needle in [
            "f.toml: key `store`: expected a string",
            "f.toml: key `listen`: expected an array of strings",
            "f.toml: key `bogus`: unknown key",
            "f.toml: key `grace_period`: expected a number",
            "f.toml: key auth.`admin_uids[0]`: expected an integer",
            "f.toml: key auth.`nope`: unknown key",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
        }
        assert_eq!(errors.len(), 6, "{joined}");
    }

    #[test]
    fn syntax_error_is_reported() {
        let (_, errors) = from_toml("listen = [", "f.toml");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("f.toml: "), "{}", errors[0]);
    }

    #[test]
    fn env_and_overlay() {
        let env = |k: &str| match k {
            "IMAGED_LISTEN" => Some("unix:///a.sock, tcp://127.0.0.1:1".to_owned()),
            "IMAGED_STORE" => Some("memory".to_owned()),
            "IMAGED_GRACE_PERIOD" => Some("soon".to_owned()),
            "IMAGED_INSECURE_TCP" => Some("yes".to_owned()),
            _ => None,
        };
        let (env_raw, errors) = from_env(&env);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            env_raw.listen,
            Some(vec![
                "unix:///a.sock".to_owned(),
                "tcp://127.0.0.1:1".to_owned()
            ])
        );
        let (mut base, _) = from_toml("store = \"local\"\nroot = \"/r\"", "f");
        base.overlay(env_raw);
        assert_eq!(
            base.store.as_deref(),
            Some("memory"),
            "env wins over the file"
        );
        assert_eq!(
            base.root.as_deref(),
            Some("/r"),
            "unset keys keep the file's value"
        );
    }
}
