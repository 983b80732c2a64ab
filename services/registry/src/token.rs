//! The OAuth2 identity-token exchange, as Docker and containers/image do it: an
//! identity token (`identitytoken` in auth files, CRI `AuthConfig.identity_token`) is an
//! OAuth2 refresh token. The registry's `/v2/` names its token service
//! (`WWW-Authenticate: Bearer realm="…",service="…"`); the identity token is POSTed there
//! (`grant_type=refresh_token`, the service, and the scopes: `repository:<repo>:pull`,
//! or `:pull,push` for a push, plus `pull` on the repositories a push mounts blobs from),
//! and the access token answered (`access_token`, or `token`) is sent to the registry as
//! a Bearer token. A registry that asks for no Bearer token gets the username and
//! password (Basic) when there are some, else nothing.
//!
//! Neither token ever appears in an error or a log line: errors name the registry and
//! the HTTP status only.

use imaged_core::error::{Error, ErrorKind, Result};
use imaged_core::transfer::Credentials;
use oci_client::secrets::RegistryAuth;
use reqwest::header::WWW_AUTHENTICATE;
use serde::Deserialize;

use crate::client::request_error;

/// The `client_id` sent to token services.
const CLIENT_ID: &str = "imaged";

/// The largest token-service answer read (containers/image's limit).
const MAX_ANSWER: usize = 1 << 20;

/// What a request does in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads (manifests, blobs).
    Pull,
    /// Reads and writes (a push).
    Push,
}

/// Where requests go and what they do there: the scopes an access token is asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The registry, `host[:port]`.
    pub host: &'a str,
    /// Plain HTTP allowed (and TLS not verified).
    pub insecure: bool,
    /// The repository.
    pub repo: &'a str,
    /// Pull, or push.
    pub access: Access,
    /// Repositories of the same registry blobs may be mounted from (pulled from).
    pub mount_from: &'a [&'a str],
}

impl Target<'_> {
    /// The token scopes, the target's repository first.
    fn scopes(&self) -> Vec<String> {
        let actions = match self.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        std::iter::once(format!("repository:{}:{actions}", self.repo))
            .chain(
                self.mount_from
                    .iter()
                    .filter(|r| **r != self.repo)
                    .map(|r| format!("repository:{r}:pull")),
            )
            .collect()
    }
}

/// A token service's answer.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    token: String,
}

/// How requests to `target` authenticate with `creds`, which carry an identity token:
/// the access token it is exchanged for when the registry asks for a Bearer token, else
/// Basic with the username and password, else anonymous. `http` trusts what the
/// registry's transport trusts.
///
/// Errors: the token service refusing the token (400, 401, 403) is
/// `RegistryUnauthorized`; any other answer that is no token, `RegistryUnreachable`; a
/// transport failure, `RegistryUnreachable` or `TlsFailure`.
pub(crate) async fn exchange(
    http: &reqwest::Client,
    target: &Target<'_>,
    creds: &Credentials,
) -> Result<RegistryAuth> {
    let host = target.host;
    let what = format!("authenticating to {host}");
    let fail = |kind: ErrorKind, why: String| {
        Error::new(kind, format!("{what}: {why}")).with_meta("registry", host)
    };
    let scheme = if target.insecure { "http" } else { "https" };
    let ping = http
        .get(format!("{scheme}://{host}/v2/"))
        .send()
        .await
        .map_err(|e| request_error(&e, &what).with_meta("registry", host))?;
    let challenge = ping
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(bearer_challenge);
    let Some((realm, service)) = challenge else {
        return Ok(if creds.username.is_empty() {
            RegistryAuth::Anonymous
        } else {
            RegistryAuth::Basic(creds.username.clone(), creds.password.clone())
        });
    };
    // The refresh token never travels in clear unless the registry itself does.
    if !target.insecure && !realm.starts_with("https://") {
        return Err(fail(
            ErrorKind::RegistryUnauthorized,
            format!("the token service {realm} is not HTTPS: the identity token is not sent"),
        ));
    }
    let scopes = target.scopes();
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", creds.identity_token.as_str()),
        ("client_id", CLIENT_ID),
    ];
    if let Some(s) = &service {
        form.push(("service", s));
    }
    form.extend(scopes.iter().map(|s| ("scope", s.as_str())));
    tracing::debug!(registry = host, %realm, ?scopes, "exchanging an identity token");
    let mut answer = http
        .post(realm.as_str())
        .form(&form)
        .send()
        .await
        .map_err(|e| request_error(&e, &what).with_meta("registry", host))?;
    let status = answer.status();
    match status.as_u16() {
        200..=299 => {}
        400 | 401 | 403 => {
            return Err(fail(
                ErrorKind::RegistryUnauthorized,
                format!("the token service refused the identity token ({status})"),
            ));
        }
        _ => {
            return Err(fail(
                ErrorKind::RegistryUnreachable,
                format!("the token service answered {status}"),
            ));
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| request_error(&e, &what).with_meta("registry", host))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(fail(
                ErrorKind::RegistryUnreachable,
                format!("the token service's answer is over {MAX_ANSWER} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    // serde's messages may quote the answer (a token): only say that it is none.
    let token = serde_json::from_slice::<Answer>(&body)
        .ok()
        .map(|a| {
            if a.access_token.is_empty() {
                a.token
            } else {
                a.access_token
            }
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            fail(
                ErrorKind::RegistryUnreachable,
                "the token service answered no access token".to_owned(),
            )
        })?;
    Ok(RegistryAuth::Bearer(token))
}

/// The realm and service of a `Bearer` challenge in a `WWW-Authenticate` value.
fn bearer_challenge(value: &str) -> Option<(String, Option<String>)> {
    http_auth::ChallengeParser::new(value)
        .filter_map(std::result::Result::ok)
        .filter(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        .find_map(|c| {
            let param = |name: &str| {
                c.params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            Some((param("realm")?, param("service").filter(|s| !s.is_empty())))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scopes_of_pulls_and_pushes() {
        let t = Target {
            host: "r.example",
            insecure: false,
            repo: "ns/app",
            access: Access::Pull,
            mount_from: &[],
        };
        assert_eq!(t.scopes(), ["repository:ns/app:pull"]);
        let t = Target {
            access: Access::Push,
            mount_from: &["base", "ns/app"],
            ..t
        };
        assert_eq!(
            t.scopes(),
            ["repository:ns/app:pull,push", "repository:base:pull"]
        );
    }

    #[test]
    fn bearer_challenges_are_found_among_others() {
        let v = r#"Basic realm="x", Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a:pull""#;
        assert_eq!(
            bearer_challenge(v),
            Some((
                "https://auth.example/token".to_owned(),
                Some("reg.example".to_owned())
            ))
        );
        assert_eq!(bearer_challenge(r#"Basic realm="registry""#), None);
        assert_eq!(bearer_challenge("Bearer service=\"no realm\""), None);
    }
}
