//! Authorization (SPEC §10): read-only callers vs admin callers.
//!
//! Every handler calls [`Authorizer::authorize`] first with its full gRPC method path.
//! [`access`] says what the method needs: the read-only methods are listed there, every
//! other method needs an admin.
//!
//! Who the caller is:
//! * **Unix socket** — by the peer's credentials as the kernel recorded them when it
//!   connected: a [`Peer`] in the request's extensions (the daemon captures uid, primary
//!   gid and supplementary groups at accept, with `SO_PEERCRED` and `SO_PEERGROUPS`), or
//!   else uid and gid from tonic's [`UdsConnectInfo`] (no supplementary groups). Never
//!   looked up again by PID: a PID can be reused by another process. When none of `admin_uids`,
//!   `admin_gids`, `reader_uids`, `reader_gids` is configured, every local peer is admin:
//!   the socket's mode (0660) and its directory (0750) are the gate. When any list is
//!   configured, only listed callers get in (uid 0 too: list it if root should
//!   administer); anyone else gets `PERMISSION_DENIED`.
//! * **TCP** — by a bearer token (`authorization: Bearer <token>` metadata) from the
//!   configured admin and read-only token files; without a token, a connection whose
//!   listener verified a TLS client certificate ([`ListenerInfo::client_cert_verified`])
//!   is admin. Anything else is `UNAUTHENTICATED`: a TCP listener with neither tokens nor
//!   client certificates only serves health and reflection (which need no credentials).

use std::fmt;
use std::task::{Context, Poll};

use imaged_core::{Error, ErrorKind};
use imaged_proto::imaged::v1::{
    container_service_methods as containers, gc_service_methods as gc,
    image_service_methods as images,
};
use imaged_proto::runtime::v1::image_service_methods as cri;
use tonic::metadata::MetadataMap;
use tonic::transport::server::UdsConnectInfo;

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading: allowed to readers and admins.
    Read,
    /// Changing the store: admins only.
    Admin,
}

/// The methods that only read (full gRPC paths, generated from the protos). Every other
/// method needs an admin.
pub const READ_ONLY_METHODS: &[&str] = &[
    images::LIST_IMAGES,
    images::INSPECT_IMAGE,
    images::IMAGE_DISK_USAGE,
    images::WATCH_EVENTS,
    containers::LIST_CONTAINERS,
    gc::GET_GC_POLICY,
    cri::LIST_IMAGES,
    cri::STREAM_IMAGES,
    cri::IMAGE_STATUS,
    cri::IMAGE_FS_INFO,
];

/// What `method` (a full path such as `/imaged.v1.ImageService/ListImages`) needs.
pub fn access(method: &str) -> Access {
    if READ_ONLY_METHODS.contains(&method) {
        Access::Read
    } else {
        Access::Admin
    }
}

/// The role of an identified caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May call read-only methods.
    Reader,
    /// May call every method.
    Admin,
}

impl Role {
    /// Whether the role grants `access`.
    pub fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Role::Admin, _) | (Role::Reader, Access::Read)
        )
    }
}

/// A bearer token. `name` identifies it in logs (e.g. `admin.token:1`); the secret is
/// never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Name used in logs.
    pub name: String,
    secret: String,
}

impl Token {
    /// A token called `name` with the value `secret`.
    pub fn new(name: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            secret: secret.into(),
        }
    }

    fn matches(&self, presented: &str) -> bool {
        constant_time_eq(self.secret.as_bytes(), presented.as_bytes())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who may do what (from the daemon's `[auth]` configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Unix-socket peers with these uids are admins.
    pub admin_uids: Vec<u32>,
    /// Unix-socket peers in these groups are admins.
    pub admin_gids: Vec<u32>,
    /// Unix-socket peers with these uids are readers.
    pub reader_uids: Vec<u32>,
    /// Unix-socket peers in these groups are readers.
    pub reader_gids: Vec<u32>,
    /// TCP bearer tokens of admins.
    pub admin_tokens: Vec<Token>,
    /// TCP bearer tokens of readers.
    pub reader_tokens: Vec<Token>,
}

impl AuthConfig {
    /// Whether any uid/gid list is configured (otherwise every local peer is admin).
    pub fn local_lists_configured(&self) -> bool {
        !(self.admin_uids.is_empty()
            && self.admin_gids.is_empty()
            && self.reader_uids.is_empty()
            && self.reader_gids.is_empty())
    }

    /// Whether any bearer token is configured.
    pub fn has_tokens(&self) -> bool {
        !(self.admin_tokens.is_empty() && self.reader_tokens.is_empty())
    }
}

/// A unix-socket peer, as it was when it connected (put into the request's extensions
/// by the daemon's listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid.
    pub uid: u32,
    /// Effective (primary) gid.
    pub gid: u32,
    /// Supplementary groups (empty when unknown).
    pub groups: Vec<u32>,
    /// Process ID at connect time, when the kernel told: for logs only (never used to
    /// look anything up).
    pub pid: Option<i32>,
}

impl Peer {
    fn in_any(&self, gids: &[u32]) -> bool {
        gids.contains(&self.gid) || self.groups.iter().any(|g| gids.contains(g))
    }
}

/// An identified caller: who (for logs) and what role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `uid=1000 pid=42`, `token admin.token:1`, `tls-client-cert`.
    pub identity: String,
    /// What the caller may do.
    pub role: Role,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.identity)
    }
}

/// Facts about the listener a request came through, inserted into the request's
/// extensions by [`ListenerLayer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerInfo {
    /// The listener is TLS with a required, verified client certificate (mTLS).
    pub client_cert_verified: bool,
}

/// Decides who a caller is and whether it may call a method.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    cfg: AuthConfig,
}

impl Authorizer {
    /// An authorizer for `cfg`.
    pub fn new(cfg: AuthConfig) -> Self {
        Self { cfg }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// Identifies the caller of `request` and checks that it may call `method`.
    /// Fails with `Unauthenticated` (no usable credentials) or `PermissionDenied`.
    pub fn authorize<T>(&self, method: &str, request: &tonic::Request<T>) -> Result<Caller, Error> {
        let caller = self.identify(request.extensions(), request.metadata())?;
        let needed = access(method);
        if caller.role.allows(needed) {
            return Ok(caller);
        }
        tracing::warn!(caller = %caller, method, "permission denied: read-only caller");
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("{caller} may only call read-only methods, not {method}"),
        )
        .with_meta("method", method)
        .with_meta("caller", caller.identity))
    }

    /// Identifies a caller from the request's extensions (connection info) and metadata.
    pub fn identify(&self, ext: &http::Extensions, md: &MetadataMap) -> Result<Caller, Error> {
        if let Some(peer) = ext.get::<Peer>() {
            // Captured when the connection was accepted (the daemon's listener).
            return self.identify_peer(peer);
        }
        if let Some(uds) = ext.get::<UdsConnectInfo>() {
            // Served without that capture (e.g. tests serving the routes directly): uid
            // and gid from SO_PEERCRED, fixed at connect; supplementary groups unknown,
            // never looked up by PID (the PID may belong to another process by now).
            let cred = uds.peer_cred.ok_or_else(|| {
                unauthenticated("the unix socket peer's credentials are unavailable")
            })?;
            return self.identify_peer(&Peer {
                uid: cred.uid(),
                gid: cred.gid(),
                groups: Vec::new(),
                pid: cred.pid(),
            });
        }
        if let Some(value) = md.get("authorization") {
            let value = value
                .to_str()
                .map_err(|_| unauthenticated("the authorization metadata is not ASCII"))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| unauthenticated("authorization must be `Bearer <token>`"))?;
            return self.identify_token(token.trim());
        }
        if ext
            .get::<ListenerInfo>()
            .is_some_and(|l| l.client_cert_verified)
        {
            return Ok(Caller {
                identity: "tls-client-cert".to_owned(),
                role: Role::Admin,
            });
        }
        Err(unauthenticated(
            "no credentials: send `authorization: Bearer <token>` or use the unix socket",
        ))
    }

    /// The role of a unix-socket peer.
    pub fn identify_peer(&self, peer: &Peer) -> Result<Caller, Error> {
        let identity = match peer.pid {
            Some(pid) => format!("uid={} pid={pid}", peer.uid),
            None => format!("uid={}", peer.uid),
        };
        let c = &self.cfg;
        let role = if !c.local_lists_configured()
            || c.admin_uids.contains(&peer.uid)
            || peer.in_any(&c.admin_gids)
        {
            Role::Admin
        } else if c.reader_uids.contains(&peer.uid) || peer.in_any(&c.reader_gids) {
            Role::Reader
        } else {
            tracing::warn!(%identity, gid = peer.gid, "permission denied: peer not in [auth] lists");
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("{identity} is not allowed to use imaged (see [auth] in the config)"),
            )
            .with_meta("caller", identity));
        };
        Ok(Caller { identity, role })
    }

    /// The role of a bearer token.
    pub fn identify_token(&self, presented: &str) -> Result<Caller, Error> {
        let found = |tokens: &[Token], role| {
            tokens
                .iter()
                .find(|t| t.matches(presented))
                .map(|t| Caller {
                    identity: format!("token {}", t.name),
                    role,
                })
        };
        found(&self.cfg.admin_tokens, Role::Admin)
            .or_else(|| found(&self.cfg.reader_tokens, Role::Reader))
            .ok_or_else(|| unauthenticated("invalid bearer token"))
    }
}

fn unauthenticated(msg: &str) -> Error {
    Error::new(ErrorKind::Unauthenticated, msg)
}

/// A tower layer that inserts a [`ListenerInfo`] into every request's extensions
/// (`Server::builder().layer(ListenerLayer::new(info))`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ListenerLayer {
    info: ListenerInfo,
}

impl ListenerLayer {
    /// A layer marking requests with `info`.
    pub fn new(info: ListenerInfo) -> Self {
        Self { info }
    }
}

impl<S> tower::Layer<S> for ListenerLayer {
    type Service = WithListener<S>;
    fn layer(&self, inner: S) -> Self::Service {
        WithListener {
            inner,
            info: self.info,
        }
    }
}

/// The service of [`ListenerLayer`].
#[derive(Debug, Clone)]
pub struct WithListener<S> {
    inner: S,
    info: ListenerInfo,
}

impl<S, B> tower::Service<http::Request<B>> for WithListener<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.info);
        self.inner.call(req)
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
