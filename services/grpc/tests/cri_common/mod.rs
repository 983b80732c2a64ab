//! Shared by the CRI test binaries (`cri_wire.rs`, `cri_api.rs`): a server over a memory
//! store on a unix socket, raw-bytes calls, and a hand-written protobuf reader/writer.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use imaged_core::catalog::ChangeSet;
use imaged_core::{EngineConfig, MemoryStore, Store};
use imaged_grpc::auth::AuthConfig;
use imaged_grpc::{GrpcOptions, Services};
use imaged_testkit::images::ImageSpec;
use prost::bytes::{Buf, BufMut};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint, Server};

// ------------------------------------------------------------------ fixture

/// A running server, its store and a channel to it; dropping it stops the server.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Arc<MemoryStore>,
    pub channel: Channel,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Fixture {
    /// The store's data directory.
    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }
}

/// A server over a memory store whose filesystem is `<tmp>/store` (a real directory),
/// with `pinned_images` configured.
pub(crate) async fn start(auth: AuthConfig, pinned: &[&str]) -> Fixture {
    start_with(
        GrpcOptions {
            auth,
            ..GrpcOptions::default()
        },
        pinned,
    )
    .await
}

/// [`start`] with every gRPC option given.
pub(crate) async fn start_with(opts: GrpcOptions, pinned: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("store")).expect("mkdir");
    let store = Arc::new(MemoryStore::with_root(dir.path().join("store")));
    let config = EngineConfig {
        pinned_images: pinned.iter().map(|s| (*s).to_owned()).collect(),
        ..EngineConfig::default()
    };
    let services = Arc::new(
        Services::new(Arc::clone(&store) as Arc<dyn Store>, config, opts)
            .await
            .expect("services"),
    );
    services.set_serving(true).await;
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let routes = services.routes();
    tokio::spawn(async move {
        let _keep = services;
        Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
    });
    let channel = connect(path).await;
    Fixture {
        dir,
        store,
        channel,
        stop: Some(stop),
    }
}

/// A channel over the unix socket at `path` (authority `localhost`).
pub(crate) async fn connect(path: PathBuf) -> Channel {
    Endpoint::try_from("http://localhost")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .expect("connect")
}

/// Stores `spec` with the config user `user`; returns the image ID as written on the wire.
pub(crate) fn add(store: &dyn Store, spec: &ImageSpec, user: &str) -> String {
    let (blobs, mut img) = spec.build();
    Arc::make_mut(&mut Arc::make_mut(&mut img.config).run).user = user.to_owned();
    let staging = {
        let mut s = store.stage().expect("stage");
        for b in blobs {
            s.put(&mut b.as_slice(), None).expect("put");
        }
        s
    };
    let id = img.id.to_string();
    store
        .apply(&ChangeSet {
            put_images: vec![Arc::new(img)],
            ..ChangeSet::default()
        })
        .expect("apply");
    drop(staging);
    id
}

/// A one-layer image with `names`.
pub(crate) fn named(content: &str, names: &[&str]) -> ImageSpec {
    names
        .iter()
        .fold(ImageSpec::base(content, 1_700_000_000), |s, n| s.name(n))
}

/// The uid of this process, as the server sees it.
pub(crate) async fn my_uid() -> u32 {
    let (a, _b) = UnixStream::pair().expect("pair");
    a.peer_cred().expect("cred").uid()
}

// ------------------------------------------------------------------ raw calls

/// A codec that sends and receives message bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Raw;

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

/// Calls `/runtime.v1.ImageService/<method>` with the request `body`; the reply's bytes.
pub(crate) async fn raw(f: &Fixture, method: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(f.channel.clone());
    grpc.ready().await.expect("ready");
    let path = format!("/runtime.v1.ImageService/{method}")
        .parse()
        .expect("path");
    grpc.unary(tonic::Request::new(body), path, Raw)
        .await
        .map(tonic::Response::into_inner)
}

// ------------------------------------------------------------------ protobuf by hand

/// A field value: varint or length-delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    Varint(u64),
    Bytes(Vec<u8>),
}

/// Reads one varint off the front of `buf`.
pub(crate) fn varint(buf: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (b, rest) = buf.split_first().expect("truncated varint");
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
    }
    panic!("varint too long")
}

/// Every (field number, value) of a message; wire types other than varint and
/// length-delimited fail the test (no CRI image field uses them).
pub(crate) fn fields(mut buf: &[u8]) -> Vec<(u64, Val)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf);
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, Val::Varint(varint(&mut buf)))),
            2 => {
                let n = usize::try_from(varint(&mut buf)).expect("len");
                assert!(n <= buf.len(), "field {num}: truncated");
                out.push((num, Val::Bytes(buf[..n].to_vec())));
                buf = &buf[n..];
            }
            w => panic!("field {num}: unexpected wire type {w}"),
        }
    }
    out
}

/// The values of field `num`, in wire order.
pub(crate) fn all(fs: &[(u64, Val)], num: u64) -> Vec<&Val> {
    fs.iter()
        .filter(|(n, _)| *n == num)
        .map(|(_, v)| v)
        .collect()
}

/// The value of field `num`, which must occur once.
pub(crate) fn one(fs: &[(u64, Val)], num: u64) -> &Val {
    let v = all(fs, num);
    assert_eq!(v.len(), 1, "field {num} once in {fs:?}");
    v[0]
}

/// A length-delimited value.
pub(crate) fn bytes(v: &Val) -> &[u8] {
    match v {
        Val::Bytes(b) => b,
        Val::Varint(_) => panic!("length-delimited expected, got {v:?}"),
    }
}

/// A length-delimited value as UTF-8.
pub(crate) fn text(v: &Val) -> String {
    String::from_utf8(bytes(v).to_vec()).expect("utf-8")
}

/// A varint value.
pub(crate) fn uint(v: &Val) -> u64 {
    match v {
        Val::Varint(x) => *x,
        Val::Bytes(_) => panic!("varint expected, got {v:?}"),
    }
}

/// The field numbers in wire order, consecutive repeats merged.
pub(crate) fn numbers(fs: &[(u64, Val)]) -> Vec<u64> {
    let mut n: Vec<u64> = fs.iter().map(|(n, _)| *n).collect();
    n.dedup();
    n
}

/// A length-delimited field, encoded by hand.
pub(crate) fn ld(num: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, (num << 3) | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// Appends `v` as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

// ------------------------------------------------------------------ tests
