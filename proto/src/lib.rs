//! The imaged wire contract.
//!
//! * [`imaged::v1`] — the native API (`imaged.v1.ImageService`, `imaged.v1.ContainerService`,
//!   `imaged.v1.ErrorReason`), documented field by field in `proto/imaged/v1/*.proto`.
//! * [`runtime::v1`] — a Kubernetes CRI v1 `runtime.v1.ImageService`, wire-identical to
//!   the upstream CRI API for the image service.
//! * [`FILE_DESCRIPTOR_SET`] — the encoded descriptors of both, for server reflection.
//! * Service names and full method paths, generated from the protos by `build.rs`: e.g.
//!   [`imaged::v1::image_service_methods::LIST_IMAGES`] is
//!   `/imaged.v1.ImageService/ListImages`, [`runtime::v1::image_service_methods::SERVICE_NAME`]
//!   is `runtime.v1.ImageService`; each module's `ALL` lists every method path.
//!
//! Code is generated at build time with protox and tonic-prost-build; no `protoc` is needed.
//! Features: `client` (tonic clients), `server` (tonic servers); both on by default.

/// Native API, package `imaged.v1`.
pub mod imaged {
    /// Package `imaged.v1`.
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("imaged.v1");
        include!(concat!(env!("OUT_DIR"), "/imaged.v1.methods.rs"));
    }
}

/// Kubernetes CRI image service, package `runtime.v1`.
pub mod runtime {
    /// Package `runtime.v1`.
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("runtime.v1");
        include!(concat!(env!("OUT_DIR"), "/runtime.v1.methods.rs"));
    }
}

/// Encoded `FileDescriptorSet` of every `.proto` file of this crate, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/imaged_descriptor.bin"));

/// The `google.rpc.ErrorInfo` domain of every imaged error.
pub const ERROR_DOMAIN: &str = "imaged.io";
