//! Building the gRPC channel: unix socket, plain HTTP/2 or TLS, and the bearer-token
//! interceptor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::ClientError;
use crate::target::Target;

/// Default time allowed to establish the connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to connect, besides the URL.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// PEM file of the CA that signed the daemon's certificate (`https://` only); the
    /// system roots are used when absent.
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for mTLS (`https://` only; needs `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Server name to verify instead of the URL's host (`https://` only).
    pub tls_domain: Option<String>,
    /// Bearer token sent as `authorization: Bearer <token>` on every call.
    pub token: Option<String>,
    /// Time allowed to connect; [`DEFAULT_CONNECT_TIMEOUT`] when `None`.
    pub connect_timeout: Option<Duration>,
}

impl ConnectOptions {
    /// Sets the bearer token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Reads the bearer token from a file (surrounding whitespace is ignored).
    pub fn with_token_file(mut self, path: &Path) -> Result<Self, ClientError> {
        let raw = std::fs::read_to_string(path).map_err(|e| {
            ClientError::config(format!("cannot read token file {}: {e}", path.display()))
        })?;
        let token = raw.trim();
        if token.is_empty() {
            return Err(ClientError::config(format!(
                "token file {} is empty",
                path.display()
            )));
        }
        self.token = Some(token.to_owned());
        Ok(self)
    }

    /// Sets the CA file used to verify the daemon.
    #[must_use]
    pub fn with_tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(path.into());
        self
    }

    /// Sets the client certificate and key for mTLS.
    #[must_use]
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls_cert = Some(cert.into());
        self.tls_key = Some(key.into());
        self
    }

    fn has_tls_settings(&self) -> bool {
        self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.tls_domain.is_some()
    }

    /// The interceptor that adds the bearer token (if any).
    pub(crate) fn auth(&self) -> Result<BearerAuth, ClientError> {
        BearerAuth::new(self.token.as_deref())
    }
}

/// Adds `authorization: Bearer <token>` to every request when a token is set.
#[derive(Clone, Debug, Default)]
pub struct BearerAuth {
    header: Option<MetadataValue<Ascii>>,
}

impl BearerAuth {
    /// An interceptor for `token` (none: requests pass unchanged).
    pub fn new(token: Option<&str>) -> Result<Self, ClientError> {
        let header = match token {
            None => None,
            Some(t) => {
                let mut value: MetadataValue<Ascii> =
                    format!("Bearer {t}").parse().map_err(|_| {
                        ClientError::config("the bearer token holds invalid characters")
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(Self { header })
    }
}

impl Interceptor for BearerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The largest HTTP/2 frame this client accepts (HTTP/2's default is 16 KiB). A ListImages
/// page of 1000 images (~450 KiB) then comes in one DATA frame instead of ~28: fewer
/// frames for the daemon to write and for this client to parse (a listing of 1000 images
/// over a unix socket: ~8% faster).
const MAX_FRAME_SIZE: u32 = 1 << 20;

/// Connects to `target` and returns the channel (the connection is established here, so
/// an unreachable daemon fails now, not at the first call).
pub(crate) async fn channel(
    target: &Target,
    opts: &ConnectOptions,
) -> Result<Channel, ClientError> {
    let timeout = opts.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    match target {
        Target::Unix(path) => {
            if opts.has_tls_settings() {
                return Err(ClientError::config(
                    "TLS options need an https:// daemon URL, not a unix socket",
                ));
            }
            // The authority must be `localhost`: the daemon rejects anything else on its
            // unix socket (and so do other gRPC servers, e.g. grpc-go's).
            let endpoint = Endpoint::from_static("http://localhost")
                .connect_timeout(timeout)
                .max_frame_size(MAX_FRAME_SIZE);
            let path = Arc::new(path.clone());
            let connector = tower::service_fn(move |_: Uri| {
                let path = Arc::clone(&path);
                async move {
                    let stream = UnixStream::connect(path.as_path()).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            });
            endpoint
                .connect_with_connector(connector)
                .await
                .map_err(|e| ClientError::unavailable(error_chain(&e)))
        }
        Target::Http(url) => {
            if opts.has_tls_settings() {
                return Err(ClientError::config(
                    "TLS options need an https:// daemon URL, not http://",
                ));
            }
            endpoint(url, timeout)?
                .connect()
                .await
                .map_err(|e| ClientError::unavailable(error_chain(&e)))
        }
        Target::Https(url) => {
            let tls = tls_config(opts)?;
            endpoint(url, timeout)?
                .tls_config(tls)
                .map_err(|e| {
                    ClientError::config(format!("TLS configuration: {}", error_chain(&e)))
                })?
                .connect()
                .await
                .map_err(|e| ClientError::unavailable(error_chain(&e)))
        }
    }
}

fn endpoint(url: &str, timeout: Duration) -> Result<Endpoint, ClientError> {
    Endpoint::from_shared(url.to_owned())
        .map(|e| e.connect_timeout(timeout).max_frame_size(MAX_FRAME_SIZE))
        .map_err(|e| {
            ClientError::config(format!("invalid daemon URL {url:?}: {}", error_chain(&e)))
        })
}

fn tls_config(opts: &ConnectOptions) -> Result<ClientTlsConfig, ClientError> {
    let mut tls = ClientTlsConfig::new();
    tls = match &opts.tls_ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read_file(ca, "CA certificate")?)),
        None => tls.with_native_roots(),
    };
    match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(
                read_file(cert, "client certificate")?,
                read_file(key, "client key")?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(ClientError::config(
                "a client certificate needs both a certificate file and a key file",
            ));
        }
    }
    if let Some(domain) = &opts.tls_domain {
        tls = tls.domain_name(domain.clone());
    }
    Ok(tls)
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path)
        .map_err(|e| ClientError::config(format!("cannot read {what} {}: {e}", path.display())))
}

/// `err: source: source...`, skipping a source whose text the previous one already holds.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_auth_adds_header() {
        let mut auth = BearerAuth::new(Some("s3cret")).unwrap();
        let req = auth.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            req.metadata()
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap(),
            "Bearer s3cret"
        );
        let mut none = BearerAuth::new(None).unwrap();
        let req = none.call(tonic::Request::new(())).unwrap();
        assert!(req.metadata().get("authorization").is_none());
        assert!(BearerAuth::new(Some("bad\ntoken")).is_err());
    }

    #[test]
    fn token_file_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc\n").unwrap();
        let opts = ConnectOptions::default().with_token_file(&path).unwrap();
        assert_eq!(opts.token.as_deref(), Some("abc"));
        std::fs::write(&path, "\n").unwrap();
        assert!(ConnectOptions::default().with_token_file(&path).is_err());
        assert!(
            ConnectOptions::default()
                .with_token_file(&dir.path().join("missing"))
                .is_err()
        );
    }

    #[test]
    fn half_a_client_identity_is_rejected() {
        let opts = ConnectOptions {
            tls_cert: Some("/x.pem".into()),
            ..ConnectOptions::default()
        };
        assert!(tls_config(&opts).is_err());
    }
}
