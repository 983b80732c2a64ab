//! `imagectl inspect`: a JSON array like `podman image inspect`.

use imaged_client::{Client, ClientError, proto};

use crate::args::InspectArgs;
use crate::exit::{self, Failure, Report};
use crate::output::json;

/// Inspects every reference; the found ones are printed, the failures reported after
/// them with exit code 125.
pub(crate) async fn run(client: &Client, args: &InspectArgs) -> Result<Report, Failure> {
    let mut results = Vec::with_capacity(args.refs.len());
    for reference in &args.refs {
        let result = client.inspect_image(reference).await;
        if let Err(err) = &result
            && err.is_connection_error()
        {
            return Err(Failure::from_client(client.url(), err));
        }
        results.push(result);
    }
    Ok(render(&results))
}

/// The JSON array of the successes and the error messages of the failures.
pub(crate) fn render(results: &[Result<proto::InspectImageResponse, ClientError>]) -> Report {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(resp) => found.push(json::inspect(resp)),
            Err(err) => errors.push(err.message.clone()),
        }
    }
    let code = if errors.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    };
    Report {
        stdout: json::pretty(&serde_json::Value::Array(found)),
        errors,
        code,
    }
}

#[cfg(test)]
mod tests {
    use imaged_client::{Code, ErrorReason};

    use super::*;

    #[test]
    fn partial_results_and_exit_code() {
        let ok = Ok(proto::InspectImageResponse {
            image: Some(proto::Image {
                id: "sha256:ab".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let missing = Err(ClientError::local(
            ErrorReason::ImageNotKnown,
            Code::NotFound,
            "x: image not known",
        ));
        let report = render(&[ok, missing]);
        let v: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["Id"], serde_json::json!("ab"));
        assert_eq!(report.errors, vec!["x: image not known"]);
        assert_eq!(report.code, 125);
        assert_eq!(render(&[]).stdout, "[]\n");
    }
}
