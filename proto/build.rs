//! Compiles the `.proto` files with protox (pure Rust; no `protoc` is ever run) and
//! generates messages, clients and servers with tonic-prost-build from the descriptor set.
//! The encoded descriptor set is written next to the code for server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "imaged/v1/images.proto",
    "imaged/v1/containers.proto",
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
    tonic_prost_build::configure()
        .build_client(std::env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
