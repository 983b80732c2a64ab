//! Request counters per RPC and status code, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use tonic::Code;

/// Counters of finished calls, by method path and status code.
#[derive(Debug, Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<(&'static str, i32), u64>>,
}

/// The gRPC name of a code, as grpc-go prints it (`OK`, `NotFound`, ...).
pub fn code_name(code: Code) -> String {
    match code {
        Code::Ok => "OK".to_owned(),
        other => format!("{other:?}"),
    }
}

impl Metrics {
    /// Counts one call of `method` (a full path) that ended with `code`.
    pub fn record(&self, method: &'static str, code: Code) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        *calls.entry((method, code as i32)).or_insert(0) += 1;
    }

    /// The number of calls of `method` that ended with `code`.
    pub fn count(&self, method: &str, code: Code) -> u64 {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.get(&(method, code as i32)).copied().unwrap_or(0)
    }

    /// `imaged_grpc_requests_total` in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::from(
            "# HELP imaged_grpc_requests_total gRPC calls handled, by method and status code.\n\
             # TYPE imaged_grpc_requests_total counter\n",
        );
        for ((method, code), n) in calls.iter() {
            let path = method.trim_start_matches('/');
            let (service, name) = path.rsplit_once('/').unwrap_or(("", path));
            let _ = writeln!(
                out,
                "imaged_grpc_requests_total{{grpc_service=\"{service}\",grpc_method=\"{name}\",grpc_code=\"{}\"}} {n}",
                code_name(Code::from_i32(*code))
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::default();
        m.record("/imaged.v1.ImageService/ListImages", Code::Ok);
        m.record("/imaged.v1.ImageService/ListImages", Code::Ok);
        m.record("/imaged.v1.ImageService/RemoveImage", Code::NotFound);
        assert_eq!(m.count("/imaged.v1.ImageService/ListImages", Code::Ok), 2);
        let text = m.render();
        assert!(text.contains("# TYPE imaged_grpc_requests_total counter"));
        assert!(text.contains(
            "imaged_grpc_requests_total{grpc_service=\"imaged.v1.ImageService\",grpc_method=\"ListImages\",grpc_code=\"OK\"} 2\n"
        ));
        assert!(text.contains("grpc_method=\"RemoveImage\",grpc_code=\"NotFound\"} 1\n"));
    }
}
