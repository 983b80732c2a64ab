//! ListImages without re-encoding: each listed image's `imaged.v1.Image` message is
//! encoded once per layer tree (the engine builds one tree per catalog version, so the
//! encoding of an image cannot go stale) and a page is the concatenation of those
//! encodings. A listing then costs a copy of the bytes instead of building and encoding
//! ~20 strings per image; the first listing after a change pays for the encodings once.
//!
//! [`EncodedPage`] is wire-identical to `imaged.v1.ListImagesResponse` (the tests decode
//! one as the other); names narrowed by a `reference` filter are encoded per request.

use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use imaged_core::graph::Tree;
use imaged_core::ops::ListOptions;
use imaged_core::{Engine, Error};
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use super::convert;

/// `imaged.v1.ListImagesResponse` with its images already encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EncodedPage {
    /// Field 1: each an encoded `imaged.v1.Image`.
    pub images: Vec<Bytes>,
    /// Field 2.
    pub next_page_token: String,
    /// Field 3.
    pub total_size: i32,
}

impl Message for EncodedPage {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for m in &self.images {
            encoding::encode_key(1, WireType::LengthDelimited, buf);
            encoding::encode_varint(m.len() as u64, buf);
            buf.put_slice(m);
        }
        if !self.next_page_token.is_empty() {
            encoding::string::encode(2, &self.next_page_token, buf);
        }
        if self.total_size != 0 {
            encoding::int32::encode(3, &self.total_size, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => {
                let mut m = Bytes::new();
                encoding::bytes::merge(wire_type, &mut m, buf, ctx)?;
                self.images.push(m);
                Ok(())
            }
            2 => encoding::string::merge(wire_type, &mut self.next_page_token, buf, ctx),
            3 => encoding::int32::merge(wire_type, &mut self.total_size, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let images: usize = self
            .images
            .iter()
            .map(|m| encoding::key_len(1) + encoding::encoded_len_varint(m.len() as u64) + m.len())
            .sum();
        let token = if self.next_page_token.is_empty() {
            0
        } else {
            encoding::string::encoded_len(2, &self.next_page_token)
        };
        let total = if self.total_size == 0 {
            0
        } else {
            encoding::int32::encoded_len(3, &self.total_size)
        };
        images + token + total
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// One lazily encoded image per index of a tree.
type Slots = Arc<Vec<OnceLock<Bytes>>>;

/// The encoded images of the newest tree listed (held weakly: it goes with its tree).
#[derive(Debug, Default)]
pub(crate) struct EncodedImages(Mutex<Option<(Weak<Tree>, Slots)>>);

impl EncodedImages {
    /// The slots of `tree`, replacing those of an older tree.
    fn slots(&self, tree: &Arc<Tree>) -> Slots {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // The weak reference keeps the old tree's allocation, so an equal address is
        // the same tree.
        if let Some((t, s)) = slot.as_ref()
            && std::ptr::eq(t.as_ptr(), Arc::as_ptr(tree))
        {
            return Arc::clone(s);
        }
        let s: Slots = Arc::new((0..tree.len()).map(|_| OnceLock::new()).collect());
        *slot = Some((Arc::downgrade(tree), Arc::clone(&s)));
        s
    }

    /// One ListImages page, each image encoded at most once per tree.
    pub(crate) fn page(&self, engine: &Engine, opts: &ListOptions) -> Result<EncodedPage, Error> {
        let mut slots: Option<Slots> = None;
        let page = engine.list_map(opts, |tree, i, names, pinned| {
            let encode = |names| {
                let s = imaged_core::summary(tree, i, names, pinned);
                Bytes::from(convert::image_owned(s).encode_to_vec())
            };
            if names.is_some() {
                return encode(names);
            }
            let slots = slots.get_or_insert_with(|| self.slots(tree));
            match slots.get(i as usize) {
                Some(cell) => cell.get_or_init(|| encode(None)).clone(),
                None => encode(None),
            }
        })?;
        Ok(EncodedPage {
            images: page.items,
            next_page_token: page.next_page_token,
            total_size: i32::try_from(page.total_size).unwrap_or(i32::MAX),
        })
    }
}
