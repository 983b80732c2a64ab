//! The compact binary encoding of image and container records in `meta.redb` (schema v3
//! and later); public for tools and tests that read or write the database directly.
//!
//! JSON records made start-up with 100k images take seconds (about 3 KiB of JSON per
//! image, 14 hex digests each); this encoding stores digests as their 32 raw bytes,
//! integers as LEB128 varints and strings length-prefixed, and decodes several times
//! faster. Every record starts with a format byte ([`FORMAT`]), so a future model change
//! can add a format and keep decoding the old one.
//!
//! * Format 1 (schema v3): every media type as its string, every run setting and history
//!   field written even when empty.
//! * Format 2 (schema v4, written today): a media type of the OCI and Docker specifications
//!   is one byte ([`MEDIA_CODES`]; any other is `0` and its string), and run settings and
//!   history entries start with a byte saying which of their fields are not empty (only
//!   those follow). A record of the benchmark's 100k store went from 1047 to about 780
//!   bytes: a quarter less to read and decode at every start-up.
//!
//! The encoders destructure every model struct without `..`: a field added to the model is
//! a compile error here, not silently lost data. Adding one means: a new format byte (or a
//! schema migration, see `migrate.rs`), encoding it, decoding both formats.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use imaged_core::Digest;
use imaged_core::intern::Interner;
use imaged_core::model::{
    BlobRef, Container, ContainerState, HistoryEntry, Image, ImageConfig, Layer, ManifestInstance,
    MediaType, Platform, RunConfig,
};

/// The format byte of image records this build writes.
pub const FORMAT: u8 = 2;

/// The format of schema v3's records (still decoded; container records keep it).
pub const FORMAT_1: u8 = 1;

/// Media types written as one byte in format 2: code `i + 1` is `MEDIA_CODES[i]`, code `0`
/// is followed by the string. Part of the on-disk format: append only, never reorder.
pub const MEDIA_CODES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "",
];

/// [`MEDIA_CODES`] as shared values, so decoding a code allocates nothing.
static MEDIA: LazyLock<Vec<MediaType>> =
    LazyLock::new(|| MEDIA_CODES.iter().map(|m| MediaType::new(m)).collect());

/// Why a record could not be decoded.
pub type DecodeError = &'static str;

/// Appends values to a buffer.
struct Enc(Vec<u8>);

impl Enc {
    fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn i64(&mut self, v: i64) {
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }
    fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn digest(&mut self, d: &Digest) {
        self.0.extend_from_slice(d.as_bytes());
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.i64(v);
        }
    }
    fn strs(&mut self, v: &[String]) {
        self.u64(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }
    fn platform(&mut self, p: &Platform) {
        let Platform {
            os,
            architecture,
            variant,
        } = p;
        self.str(os);
        self.str(architecture);
        self.str(variant);
    }
    fn blob(&mut self, b: &BlobRef) {
        let BlobRef {
            digest,
            size,
            media_type,
        } = b;
        self.digest(digest);
        self.u64(*size);
        self.media_type(media_type);
    }
    fn media_type(&mut self, m: &MediaType) {
        match MEDIA_CODES.iter().position(|k| *k == m.as_str()) {
            Some(i) => self.0.push(u8::try_from(i + 1).unwrap_or(0)),
            None => {
                self.0.push(0);
                self.str(m);
            }
        }
    }
    fn config(&mut self, c: &ImageConfig) {
        let ImageConfig {
            created,
            platform,
            labels,
            run,
            history,
        } = c;
        let RunConfig {
            user,
            env,
            entrypoint,
            cmd,
            working_dir,
            exposed_ports,
            volumes,
            stop_signal,
        } = &**run;
        self.opt_i64(*created);
        self.platform(platform);
        self.u64(labels.len() as u64);
        for (k, v) in labels.iter() {
            self.str(k);
            self.str(v);
        }
        let present = [
            !user.is_empty(),
            !env.is_empty(),
            !entrypoint.is_empty(),
            !cmd.is_empty(),
            !working_dir.is_empty(),
            !exposed_ports.is_empty(),
            !volumes.is_empty(),
            !stop_signal.is_empty(),
        ];
        self.0.push(mask(&present));
        for (i, _) in present.iter().enumerate().filter(|(_, p)| **p) {
            match i {
                0 => self.str(user),
                1 => self.strs(env),
                2 => self.strs(entrypoint),
                3 => self.strs(cmd),
                4 => self.str(working_dir),
                5 => self.strs(exposed_ports),
                6 => self.strs(volumes),
                _ => self.str(stop_signal),
            }
        }
        self.u64(history.len() as u64);
        for h in history {
            let HistoryEntry {
                created,
                created_by,
                author,
                comment,
                empty_layer,
            } = &**h;
            self.0.push(mask(&[
                created.is_some(),
                !created_by.is_empty(),
                !author.is_empty(),
                !comment.is_empty(),
                *empty_layer,
            ]));
            if let Some(t) = created {
                self.i64(*t);
            }
            for s in [created_by, author, comment] {
                if !s.is_empty() {
                    self.str(s);
                }
            }
        }
    }
}

/// Bit `i` set when `present[i]` (at most 8).
fn mask(present: &[bool]) -> u8 {
    present
        .iter()
        .enumerate()
        .fold(0, |m, (i, p)| m | (u8::from(*p) << i))
}

/// Encodes an image record.
pub fn encode_image(img: &Image) -> Vec<u8> {
    let Image {
        id,
        names,
        digests,
        manifest,
        config_blob,
        layers,
        config,
        instances,
        read_only,
        added,
        last_used,
        stored_size: _, // a local store counts its blobs
    } = img;
    let mut e = Enc(Vec::with_capacity(1024));
    e.0.push(FORMAT);
    e.digest(id);
    e.strs(names);
    e.u64(digests.len() as u64);
    for d in digests {
        e.digest(d);
    }
    e.blob(manifest);
    e.bool(config_blob.is_some());
    if let Some(b) = config_blob {
        e.blob(b);
    }
    e.u64(layers.len() as u64);
    for Layer { blob, diff_id } in layers {
        e.blob(blob);
        e.digest(diff_id);
    }
    e.config(config);
    e.bool(instances.is_some());
    if let Some(list) = instances {
        e.u64(list.len() as u64);
        for ManifestInstance { digest, platform } in list {
            e.digest(digest);
            e.platform(platform);
        }
    }
    e.bool(*read_only);
    e.i64(*added);
    e.opt_i64(*last_used);
    e.0
}

/// Encodes an image record in format 1 (schema v3), as imaged up to schema v3 wrote it: for
/// tools and tests that write an older store (the migration to v4 re-encodes it).
pub fn encode_image_format_1(img: &Image) -> Vec<u8> {
    let mut e = Enc(vec![FORMAT_1]);
    e.digest(&img.id);
    e.strs(&img.names);
    e.u64(img.digests.len() as u64);
    for d in &img.digests {
        e.digest(d);
    }
    let blob = |e: &mut Enc, b: &BlobRef| {
        e.digest(&b.digest);
        e.u64(b.size);
        e.str(b.media_type.as_str());
    };
    blob(&mut e, &img.manifest);
    e.bool(img.config_blob.is_some());
    if let Some(b) = &img.config_blob {
        blob(&mut e, b);
    }
    e.u64(img.layers.len() as u64);
    for l in &img.layers {
        blob(&mut e, &l.blob);
        e.digest(&l.diff_id);
    }
    let c = &img.config;
    e.opt_i64(c.created);
    e.platform(&c.platform);
    e.u64(c.labels.len() as u64);
    for (k, v) in c.labels.iter() {
        e.str(k);
        e.str(v);
    }
    let r = &c.run;
    e.str(&r.user);
    e.strs(&r.env);
    e.strs(&r.entrypoint);
    e.strs(&r.cmd);
    e.str(&r.working_dir);
    e.strs(&r.exposed_ports);
    e.strs(&r.volumes);
    e.str(&r.stop_signal);
    e.u64(c.history.len() as u64);
    for h in &c.history {
        e.opt_i64(h.created);
        e.str(&h.created_by);
        e.str(&h.author);
        e.str(&h.comment);
        e.bool(h.empty_layer);
    }
    e.bool(img.instances.is_some());
    if let Some(list) = &img.instances {
        e.u64(list.len() as u64);
        for m in list {
            e.digest(&m.digest);
            e.platform(&m.platform);
        }
    }
    e.bool(img.read_only);
    e.i64(img.added);
    e.opt_i64(img.last_used);
    e.0
}

/// Encodes a container record.
pub fn encode_container(c: &Container) -> Vec<u8> {
    let Container {
        id,
        image_id,
        state,
        external,
        name,
        created,
    } = c;
    let mut e = Enc(Vec::with_capacity(128));
    e.0.push(FORMAT_1);
    e.str(id);
    e.digest(image_id);
    e.0.push(match state {
        ContainerState::Created => 0,
        ContainerState::Running => 1,
        ContainerState::Stopped => 2,
    });
    e.bool(*external);
    e.str(name);
    e.i64(*created);
    e.0
}

/// Reads values from a record.
struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.0.split_first().ok_or("truncated")?;
        self.0 = rest;
        Ok(b)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err("truncated");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.u64()?).map_err(|_| "length overflow")?;
        // Every element takes at least one byte: a larger count is corruption, and must not
        // drive a huge allocation.
        if n > self.0.len() {
            return Err("length past the end");
        }
        Ok(n)
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("bad bool"),
        }
    }
    /// The bytes `skip` moves over (the encoding of one value, the key it is shared by).
    fn span(
        &mut self,
        skip: impl FnOnce(&mut Self) -> Result<(), DecodeError>,
    ) -> Result<&'a [u8], DecodeError> {
        let start = self.0;
        skip(self)?;
        Ok(&start[..start.len() - self.0.len()])
    }
    fn skip_str(&mut self) -> Result<(), DecodeError> {
        let n = self.len()?;
        self.take(n).map(drop)
    }
    fn skip_strs(&mut self, per_item: usize) -> Result<(), DecodeError> {
        for _ in 0..self.len()? {
            for _ in 0..per_item {
                self.skip_str()?;
            }
        }
        Ok(())
    }
    fn str_ref(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| "bad utf-8")
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| "bad utf-8")
    }
    fn digest(&mut self) -> Result<Digest, DecodeError> {
        let bytes: [u8; 32] = self.take(32)?.try_into().map_err(|_| "truncated")?;
        Ok(Digest::from_bytes(bytes))
    }
    fn opt_i64(&mut self) -> Result<Option<i64>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.i64()?)
        } else {
            None
        })
    }
    fn vec<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }
    fn strs(&mut self) -> Result<Vec<String>, DecodeError> {
        self.vec(Self::str)
    }
    fn platform(&mut self) -> Result<Platform, DecodeError> {
        Ok(Platform {
            os: self.str()?,
            architecture: self.str()?,
            variant: self.str()?,
        })
    }
    fn blob(&mut self, v2: bool) -> Result<BlobRef, DecodeError> {
        Ok(BlobRef {
            digest: self.digest()?,
            size: self.u64()?,
            media_type: if v2 {
                self.media_type()?
            } else {
                MediaType::new(self.str_ref()?)
            },
        })
    }
    fn media_type(&mut self) -> Result<MediaType, DecodeError> {
        match usize::from(self.byte()?) {
            0 => Ok(MediaType::new(self.str_ref()?)),
            code => MEDIA
                .get(code - 1)
                .cloned()
                .ok_or("unknown media type code"),
        }
    }
    /// A field mask of format 2: bits at or above `fields` set are corruption.
    fn mask(&mut self, fields: u32) -> Result<u8, DecodeError> {
        let m = self.byte()?;
        if u32::from(m) >> fields != 0 {
            return Err("bad field mask");
        }
        Ok(m)
    }
    fn config(&mut self, shared: &Interner, v2: bool) -> Result<ImageConfig, DecodeError> {
        let created = self.opt_i64()?;
        let platform =
            imaged_core::intern::platform(self.str_ref()?, self.str_ref()?, self.str_ref()?);
        // Labels, run settings and each history entry are looked up by their bytes first:
        // most are held already (the same family, the parent's history), and then nothing
        // is decoded or allocated for them.
        let key = self.span(|d| d.skip_strs(2))?;
        let labels = shared.labels(key, || {
            Dec(key)
                .vec(|d| Ok((d.str()?, d.str()?)))
                .map(BTreeMap::from_iter)
        })?;
        let (run, history) = if v2 {
            (self.run_v2(shared)?, self.vec(|d| d.history_v2(shared))?)
        } else {
            (self.run_v1(shared)?, self.vec(|d| d.history_v1(shared))?)
        };
        Ok(ImageConfig {
            created,
            platform,
            labels,
            run,
            history,
        })
    }
    /// Format 2 run settings: a mask of the fields present (user, env, entrypoint, cmd,
    /// working_dir, exposed_ports, volumes, stop_signal), then those fields.
    fn run_v2(&mut self, shared: &Interner) -> Result<Arc<RunConfig>, DecodeError> {
        let key = self.span(|d| {
            let m = d.mask(8)?;
            for i in 0..8 {
                if m & (1 << i) != 0 {
                    match i {
                        0 | 4 | 7 => d.skip_str()?,
                        _ => d.skip_strs(1)?,
                    }
                }
            }
            Ok(())
        })?;
        shared.run(key, || {
            let mut d = Dec(key);
            let m = d.byte()?;
            let on = |i: u32| m & (1 << i) != 0;
            let str = |d: &mut Dec<'_>, i| if on(i) { d.str() } else { Ok(String::new()) };
            let strs = |d: &mut Dec<'_>, i| if on(i) { d.strs() } else { Ok(Vec::new()) };
            Ok::<_, DecodeError>(RunConfig {
                user: str(&mut d, 0)?,
                env: strs(&mut d, 1)?,
                entrypoint: strs(&mut d, 2)?,
                cmd: strs(&mut d, 3)?,
                working_dir: str(&mut d, 4)?,
                exposed_ports: strs(&mut d, 5)?,
                volumes: strs(&mut d, 6)?,
                stop_signal: str(&mut d, 7)?,
            })
        })
    }
    /// Format 2 history entry: a mask (created, created_by, author, comment, empty_layer),
    /// then the fields present.
    fn history_v2(&mut self, shared: &Interner) -> Result<Arc<HistoryEntry>, DecodeError> {
        let key = self.span(|d| {
            let m = d.mask(5)?;
            if m & 1 != 0 {
                d.u64()?;
            }
            for i in 1..4 {
                if m & (1 << i) != 0 {
                    d.skip_str()?;
                }
            }
            Ok(())
        })?;
        shared.history(key, || {
            let mut d = Dec(key);
            let m = d.byte()?;
            let on = |i: u32| m & (1 << i) != 0;
            let created = if on(0) { Some(d.i64()?) } else { None };
            let mut text = |i| if on(i) { d.str() } else { Ok(String::new()) };
            Ok::<_, DecodeError>(HistoryEntry {
                created,
                created_by: text(1)?,
                author: text(2)?,
                comment: text(3)?,
                empty_layer: on(4),
            })
        })
    }
    fn run_v1(&mut self, shared: &Interner) -> Result<Arc<RunConfig>, DecodeError> {
        let key = self.span(|d| {
            d.skip_str()?;
            d.skip_strs(1)?;
            d.skip_strs(1)?;
            d.skip_strs(1)?;
            d.skip_str()?;
            d.skip_strs(1)?;
            d.skip_strs(1)?;
            d.skip_str()
        })?;
        shared.run(key, || {
            let mut d = Dec(key);
            Ok::<_, DecodeError>(RunConfig {
                user: d.str()?,
                env: d.strs()?,
                entrypoint: d.strs()?,
                cmd: d.strs()?,
                working_dir: d.str()?,
                exposed_ports: d.strs()?,
                volumes: d.strs()?,
                stop_signal: d.str()?,
            })
        })
    }
    fn history_v1(&mut self, shared: &Interner) -> Result<Arc<HistoryEntry>, DecodeError> {
        let key = self.span(|d| {
            d.opt_i64()?;
            d.skip_str()?;
            d.skip_str()?;
            d.skip_str()?;
            d.bool().map(drop)
        })?;
        shared.history(key, || {
            let mut d = Dec(key);
            Ok::<_, DecodeError>(HistoryEntry {
                created: d.opt_i64()?,
                created_by: d.str()?,
                author: d.str()?,
                comment: d.str()?,
                empty_layer: d.bool()?,
            })
        })
    }
    /// The record's format: whether it is format 2.
    fn format(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            FORMAT => Ok(true),
            FORMAT_1 => Ok(false),
            _ => Err("unknown record format"),
        }
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes")
        }
    }
}

/// Decodes an image record.
pub fn decode_image(bytes: &[u8]) -> Result<Image, DecodeError> {
    decode_image_with(bytes, &Interner::new())
}

/// Decodes an image record, sharing its labels, history entries and run settings with
/// the records decoded before with `shared` (start-up decodes every record with one).
///
/// Format 1 records (schema v3, before its migration) are decoded without `shared`: the
/// keys of its values are their bytes, which mean different values in the two formats.
pub fn decode_image_with(bytes: &[u8], shared: &Interner) -> Result<Image, DecodeError> {
    let mut d = Dec(bytes);
    let v2 = d.format()?;
    let own;
    let shared = if v2 {
        shared
    } else {
        own = Interner::new();
        &own
    };
    let img = Image {
        id: d.digest()?,
        names: d.strs()?,
        digests: d.vec(Dec::digest)?,
        manifest: d.blob(v2)?,
        config_blob: if d.bool()? { Some(d.blob(v2)?) } else { None },
        layers: d.vec(|d| {
            Ok(Layer {
                blob: d.blob(v2)?,
                diff_id: d.digest()?,
            })
        })?,
        config: Arc::new(d.config(shared, v2)?),
        instances: if d.bool()? {
            Some(d.vec(|d| {
                Ok(ManifestInstance {
                    digest: d.digest()?,
                    platform: d.platform()?,
                })
            })?)
        } else {
            None
        },
        read_only: d.bool()?,
        added: d.i64()?,
        last_used: d.opt_i64()?,
        stored_size: None,
    };
    d.end()?;
    Ok(img)
}

/// Decodes a container record.
pub fn decode_container(bytes: &[u8]) -> Result<Container, DecodeError> {
    let mut d = Dec(bytes);
    if d.byte()? != FORMAT_1 {
        return Err("unknown record format");
    }
    let c = Container {
        id: d.str()?,
        image_id: d.digest()?,
        state: match d.byte()? {
            0 => ContainerState::Created,
            1 => ContainerState::Running,
            2 => ContainerState::Stopped,
            _ => return Err("bad container state"),
        },
        external: d.bool()?,
        name: d.str()?,
        created: d.i64()?,
    };
    d.end()?;
    Ok(c)
}

#[cfg(test)]
mod tests;
