//! Compiles the `.proto` files with protox (pure Rust; no `protoc` is ever run) and
//! generates messages, clients and servers with tonic-prost-build from the descriptor set.
//! The encoded descriptor set is written next to the code for server reflection, and each
//! package gets a `<package>.methods.rs` with the service names and full method paths of
//! its services (tonic spells those paths only inside its generated match arms).

use std::fmt::Write as _;
use std::path::PathBuf;

use heck::{ToShoutySnakeCase, ToSnakeCase};
use prost::Message;
use prost_types::FileDescriptorSet;

const PROTOS: &[&str] = &[
    "imaged/v1/images.proto",
    "imaged/v1/containers.proto",
    "imaged/v1/gc.proto",
    "imaged/v1/errors.proto",
    "runtime/v1/api.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("imaged_descriptor.bin"), fds.encode_to_vec())?;
    for (package, code) in method_paths(&fds) {
        std::fs::write(out.join(format!("{package}.methods.rs")), code)?;
    }
    tonic_prost_build::configure()
        .build_client(std::env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        .generate_default_stubs(true)
        // The archive's chunks are the bulk of a LoadImages call: as `Bytes`, the server
        // decodes each one as a view of the received buffer instead of copying it out.
        .bytes(".imaged.v1.LoadImagesRequest.chunk")
        .compile_fds(fds)?;
    Ok(())
}

/// Per package, a module `<service>_methods` per service with `SERVICE_NAME`, one
/// `<METHOD>` constant per method (the full path `/<package>.<Service>/<Method>`) and
/// `ALL` (every path, in proto order).
fn method_paths(fds: &FileDescriptorSet) -> Vec<(String, String)> {
    let mut per_package: Vec<(String, String)> = Vec::new();
    for file in &fds.file {
        let package = file.package().to_owned();
        let mut code = String::new();
        for service in &file.service {
            let full = format!("{package}.{}", service.name());
            let _ = writeln!(code, "/// Names of `{full}` (generated from its proto).");
            let _ = writeln!(
                code,
                "pub mod {}_methods {{",
                service.name().to_snake_case()
            );
            let _ = writeln!(code, "    /// `{full}`.");
            let _ = writeln!(code, "    pub const SERVICE_NAME: &str = \"{full}\";");
            let mut all = Vec::new();
            for method in &service.method {
                let konst = method.name().to_shouty_snake_case();
                let path = format!("/{full}/{}", method.name());
                let _ = writeln!(code, "    /// `{path}`.");
                let _ = writeln!(code, "    pub const {konst}: &str = \"{path}\";");
                all.push(konst);
            }
            let _ = writeln!(
                code,
                "    /// Every method path of the service, in proto order."
            );
            let _ = writeln!(code, "    pub const ALL: &[&str] = &[{}];", all.join(", "));
            let _ = writeln!(code, "}}");
        }
        if code.is_empty() {
            continue;
        }
        match per_package.iter_mut().find(|(p, _)| *p == package) {
            Some((_, c)) => c.push_str(&code),
            None => per_package.push((package, code)),
        }
    }
    per_package
}
