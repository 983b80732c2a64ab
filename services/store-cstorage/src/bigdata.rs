//! Big-data file names (`cs/store.go` `makeBigDataBaseName`, design doc §2.2).

use base64::Engine as _;

/// The file name c/storage uses for the big-data item `key`: the key itself when every
/// character is one of `.`, `0-9`, `a-z`, else `=` + standard base64 of the key.
///
/// Quirk reproduced on purpose: c/storage consumes the offending character before it
/// checks whether bytes remain, so a key whose only invalid character is its **last** one
/// is not encoded (`"abcX"` stays `"abcX"`).
pub(crate) fn base_name(key: &str) -> String {
    let mut consumed = 0;
    for c in key.chars() {
        consumed += c.len_utf8();
        let ok = c.len_utf8() == 1 && (c == '.' || c.is_ascii_digit() || c.is_ascii_lowercase());
        if !ok {
            break;
        }
    }
    if consumed < key.len() {
        format!("={}", base64::engine::general_purpose::STANDARD.encode(key))
    } else {
        key.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_from_podman() {
        // Design doc §9 (from a store written by podman 4.3.1 on this machine).
        assert_eq!(base_name("manifest"), "manifest");
        let id = "fb69e7a3";
        assert!(base_name(&format!("sha256:{id}")).starts_with("=c2hhMjU2OmZiNjllN2Ez"));
        assert!(base_name("manifest-sha256:996b").starts_with("=bWFuaWZlc3Qtc2hh"));
        assert!(base_name("signature-996b").starts_with("=c2lnbmF0dXJlLTk5"));
    }

    #[test]
    fn last_rune_quirk() {
        assert_eq!(base_name("abcX"), "abcX");
        assert_eq!(base_name("ab:c"), "=YWI6Yw==");
        assert_eq!(base_name("abc:"), "abc:");
        assert_eq!(base_name("abcé"), "abcé");
        assert_eq!(base_name("éa"), "=w6lh");
        assert_eq!(base_name(""), "");
        assert_eq!(base_name("a.1"), "a.1");
    }
}
