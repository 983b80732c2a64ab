//! The compact binary encoding of image and container records in `meta.redb` (schema v3
//! and later); public for tools and tests that read or write the database directly.
//!
//! JSON records made start-up with 100k images take seconds (about 3 KiB of JSON per
//! image, 14 hex digests each); this encoding stores digests as their 32 raw bytes,
//! integers as LEB128 varints and strings length-prefixed, and decodes several times
//! faster. Every record starts with a format byte ([`FORMAT`]), so a future model change
//! can add a format and keep decoding the old one.
//!
//! The encoders destructure every model struct without `..`: a field added to the model is
//! a compile error here, not silently lost data. Adding one means: a new format byte (or a
//! schema migration, see `migrate.rs`), encoding it, decoding both formats.

use std::collections::BTreeMap;
use std::sync::Arc;

use imaged_core::Digest;
use imaged_core::intern::Interner;
use imaged_core::model::{
    BlobRef, Container, ContainerState, HistoryEntry, Image, ImageConfig, Layer, ManifestInstance,
    MediaType, Platform, RunConfig,
};

/// The format byte of records this build writes.
pub const FORMAT: u8 = 1;

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
        self.str(media_type);
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
        self.str(user);
        self.strs(env);
        self.strs(entrypoint);
        self.strs(cmd);
        self.str(working_dir);
        self.strs(exposed_ports);
        self.strs(volumes);
        self.str(stop_signal);
        self.u64(history.len() as u64);
        for h in history {
            let HistoryEntry {
                created,
                created_by,
                author,
                comment,
                empty_layer,
            } = &**h;
            self.opt_i64(*created);
            self.str(created_by);
            self.str(author);
            self.str(comment);
            self.bool(*empty_layer);
        }
    }
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
    e.0.push(FORMAT);
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
    fn blob(&mut self) -> Result<BlobRef, DecodeError> {
        Ok(BlobRef {
            digest: self.digest()?,
            size: self.u64()?,
            media_type: MediaType::new(self.str_ref()?),
        })
    }
    fn config(&mut self, shared: &Interner) -> Result<ImageConfig, DecodeError> {
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
        let run = shared.run(key, || {
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
        })?;
        let history = self.vec(|d| {
            let key = d.span(|d| {
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
        })?;
        Ok(ImageConfig {
            created,
            platform,
            labels,
            run,
            history,
        })
    }
    fn format(&mut self) -> Result<(), DecodeError> {
        match self.byte()? {
            FORMAT => Ok(()),
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
pub fn decode_image_with(bytes: &[u8], shared: &Interner) -> Result<Image, DecodeError> {
    let mut d = Dec(bytes);
    d.format()?;
    let img = Image {
        id: d.digest()?,
        names: d.strs()?,
        digests: d.vec(Dec::digest)?,
        manifest: d.blob()?,
        config_blob: if d.bool()? { Some(d.blob()?) } else { None },
        layers: d.vec(|d| {
            Ok(Layer {
                blob: d.blob()?,
                diff_id: d.digest()?,
            })
        })?,
        config: Arc::new(d.config(shared)?),
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
    d.format()?;
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
