//! Compiles the minimal containerd images API (`proto/containerd/...`, written for this
//! crate from containerd 1.6's `api/services/images/v1/images.proto`) with protox and
//! tonic-prost-build, like `proto/build.rs`: no `protoc` is run.

const PROTOS: &[&str] = &[
    "containerd/services/images/v1/images.proto",
    "containerd/types/descriptor.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed=proto/{p}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
