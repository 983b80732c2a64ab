//! AIP-158 page tokens of ListImages: an opaque cursor (sort key, image ID) bound to the
//! filters, `all` and the order it was issued for, carrying the total of the first page
//! (reused while the catalog version is unchanged).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::digest::Digest;
use crate::engine::ops::Order;
use crate::error::{Error, ErrorKind, Result};
use crate::graph::tree::SortKey;
use crate::model::ImageId;

/// A decoded page token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageToken {
    /// Hash of the request parameters the token belongs to.
    pub bind: u64,
    /// Catalog generation when issued.
    pub generation: u64,
    /// Matching images when issued.
    pub total: usize,
    /// Sort key of the last image returned.
    pub key: SortKey,
    /// ID of the last image returned.
    pub id: ImageId,
}

const VERSION: &str = "imaged-page-1";

fn invalid(message: &str) -> Error {
    Error::new(ErrorKind::InvalidPageToken, message).with_field("page_token", message)
}

impl PageToken {
    /// The binding of a request: filters (in order), `all`, order.
    pub(crate) fn binding(filters: &[String], all: bool, order: Order) -> u64 {
        let mut s = format!("{all}|{order:?}");
        for f in filters {
            s.push('|');
            s.push_str(&f.len().to_string());
            s.push(':');
            s.push_str(f);
        }
        let d = Digest::of(s.as_bytes());
        let b = d.as_bytes();
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// The opaque string.
    pub(crate) fn encode(&self) -> String {
        let key = match &self.key {
            SortKey::None => "-".to_owned(),
            SortKey::Int(n) => format!("i{n}"),
            SortKey::Str(None) => "n".to_owned(),
            SortKey::Str(Some(s)) => format!("s{s}"),
        };
        let raw = format!(
            "{VERSION}\n{:016x}\n{}\n{}\n{}\n{key}",
            self.bind,
            self.generation,
            self.total,
            self.id.hex()
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes a token and checks that it belongs to a request with binding `bind`.
    pub(crate) fn decode(token: &str, bind: u64) -> Result<Self> {
        let malformed = || invalid("invalid page token");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
        let raw = String::from_utf8(raw).map_err(|_| malformed())?;
        let mut it = raw.splitn(6, '\n');
        if it.next() != Some(VERSION) {
            return Err(malformed());
        }
        let mut next = || it.next().ok_or_else(malformed);
        let token_bind = u64::from_str_radix(next()?, 16).map_err(|_| malformed())?;
        let generation = next()?.parse().map_err(|_| malformed())?;
        let total = next()?.parse().map_err(|_| malformed())?;
        let id = Digest::from_hex(next()?).map_err(|_| malformed())?;
        let k = next()?;
        let key = match k.split_at_checked(1) {
            Some(("-", "")) => SortKey::None,
            Some(("n", "")) => SortKey::Str(None),
            Some(("i", n)) => SortKey::Int(n.parse().map_err(|_| malformed())?),
            Some(("s", s)) => SortKey::Str(Some(s.to_owned())),
            _ => return Err(malformed()),
        };
        if token_bind != bind {
            return Err(invalid(
                "page token does not match the request: filters, all and order must stay the \
                 same across pages",
            ));
        }
        Ok(Self {
            bind,
            generation,
            total,
            key,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds() {
        let bind = PageToken::binding(&["dangling=true".into()], false, Order::Created);
        for key in [
            SortKey::None,
            SortKey::Int(-5),
            SortKey::Str(None),
            SortKey::Str(Some("a:b".into())),
        ] {
            let t = PageToken {
                bind,
                generation: 3,
                total: 7,
                key,
                id: Digest::of(b"x"),
            };
            assert_eq!(PageToken::decode(&t.encode(), bind), Ok(t.clone()));
            let other = PageToken::binding(&[], false, Order::Created);
            let e = PageToken::decode(&t.encode(), other).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidPageToken);
        }
        assert_eq!(
            PageToken::decode("%%%", bind).unwrap_err().kind,
            ErrorKind::InvalidPageToken
        );
        assert_ne!(
            bind,
            PageToken::binding(&["dangling=true".into()], true, Order::Created)
        );
        assert_ne!(
            bind,
            PageToken::binding(&["dangling=true".into()], false, Order::Id)
        );
    }
}
