//! Exit codes (podman's) and the result of a command.

use imaged_client::{ClientError, ErrorKind};

/// Everything went well.
pub(crate) const OK: i32 = 0;
/// `rm`: every failure was "image not known".
pub(crate) const NOT_KNOWN: i32 = 1;
/// Any other failure (podman's generic error code).
pub(crate) const FAILURE: i32 = 125;

/// What a command produced: its standard output, the errors to print (each as
/// `Error: <message>` on standard error, after the output, as podman does) and the exit
/// code.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// Text for standard output.
    pub stdout: String,
    /// Error messages, without the `Error: ` prefix.
    pub errors: Vec<String>,
    /// Process exit code.
    pub code: i32,
}

impl Report {
    /// A successful report with this output.
    pub(crate) fn ok(stdout: String) -> Self {
        Self {
            stdout,
            errors: Vec::new(),
            code: OK,
        }
    }
}

/// A command that failed as a whole: one message and an exit code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The message, without the `Error: ` prefix.
    pub message: String,
    /// Process exit code.
    pub code: i32,
}

impl Failure {
    /// A failure with podman's generic code 125.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: FAILURE,
        }
    }

    /// A client error; a daemon that cannot be reached reads
    /// `cannot connect to imaged at <url>: <reason>`.
    pub(crate) fn from_client(url: &str, err: &ClientError) -> Self {
        Self::new(describe(url, err))
    }
}

impl From<Failure> for Report {
    fn from(f: Failure) -> Self {
        Self {
            stdout: String::new(),
            errors: vec![f.message],
            code: f.code,
        }
    }
}

/// The message printed for a client error.
pub(crate) fn describe(url: &str, err: &ClientError) -> String {
    if err.is_connection_error() {
        format!("cannot connect to imaged at {url}: {}", err.message)
    } else {
        err.message.clone()
    }
}

/// podman's `rm` (containers) exit code: 0 none, 1 when every failure is "not known",
/// 125 otherwise.
pub(crate) fn container_removal_code(failures: &[ErrorKind]) -> i32 {
    if failures.is_empty() {
        OK
    } else if failures.iter().all(|k| k.is_not_found()) {
        NOT_KNOWN
    } else {
        FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imaged_client::ErrorReason;

    #[test]
    fn container_removal_codes() {
        assert_eq!(container_removal_code(&[]), 0);
        let not_known = ErrorKind::from(ErrorReason::ContainerNotKnown);
        assert_eq!(container_removal_code(&[not_known]), 1);
        assert_eq!(
            container_removal_code(&[not_known, ErrorReason::ReadOnlyStore.into()]),
            125
        );
    }

    #[test]
    fn connection_errors_name_the_url() {
        let err = ClientError::unavailable("connection refused");
        assert_eq!(
            describe("unix:///x.sock", &err),
            "cannot connect to imaged at unix:///x.sock: connection refused"
        );
        let err = tonic_status_not_found();
        assert_eq!(describe("unix:///x.sock", &err), "foo: image not known");
        let f = Failure::from_client("u", &ClientError::unavailable("down"));
        assert_eq!(f.code, FAILURE);
        let r = Report::from(f);
        assert_eq!(
            r.errors,
            vec!["cannot connect to imaged at u: down".to_owned()]
        );
    }

    fn tonic_status_not_found() -> ClientError {
        ClientError::local(
            ErrorReason::ImageNotKnown,
            imaged_client::Code::NotFound,
            "foo: image not known",
        )
    }
}
