use prost::Message as _;

use super::*;

fn image(i: usize) -> pb::Image {
    pb::Image {
        id: format!("sha256:{i:064x}"),
        repo_tags: vec![format!("registry.example.com/app{i}:v{}", i % 7)],
        size: i as u64 * 4096,
        labels: [(format!("k{}", i % 3), format!("v{i}"))]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

fn page(n: usize) -> pb::ListImagesResponse {
    pb::ListImagesResponse {
        images: (0..n).map(image).collect(),
        next_page_token: if n.is_multiple_of(2) {
            format!("token-{n}")
        } else {
            String::new()
        },
        total_size: n as i32 * 3,
    }
}

fn decoded(raw: Vec<u8>) -> Result<pb::ListImagesResponse, ClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(malformed)?;
    rt.block_on(decode(Bytes::from(raw)))
}

/// Below and above the split, with and without a token: what prost decodes.
#[test]
fn a_split_decoding_gives_what_prost_gives() {
    for n in [0, 1, SPLIT_MIN - 1, SPLIT_MIN, SPLIT_MIN + 1, 1000, 1001] {
        let want = page(n);
        let got = decoded(want.encode_to_vec());
        assert_eq!(got.ok().as_ref(), Some(&want), "{n} images");
    }
}

/// The token and total before, between and after the images, repeated (the last wins, as
/// in prost), and a field this client does not know: still what prost decodes.
#[test]
fn fields_anywhere_and_unknown_fields_decode_as_in_prost() {
    let images = page(600).images;
    let mut raw = Vec::new();
    pb::ListImagesResponse {
        next_page_token: "first".into(),
        total_size: 1,
        ..Default::default()
    }
    .encode(&mut raw)
    .ok();
    for (i, img) in images.iter().enumerate() {
        pb::ListImagesResponse {
            images: vec![img.clone()],
            ..Default::default()
        }
        .encode(&mut raw)
        .ok();
        if i == 300 {
            // Field 9, varint 5: unknown to this client.
            raw.extend_from_slice(&[9 << 3, 5]);
            pb::ListImagesResponse {
                next_page_token: "middle".into(),
                ..Default::default()
            }
            .encode(&mut raw)
            .ok();
        }
    }
    pb::ListImagesResponse {
        total_size: 600,
        ..Default::default()
    }
    .encode(&mut raw)
    .ok();
    let want = pb::ListImagesResponse::decode(raw.as_slice()).ok();
    assert_eq!(want.as_ref().map(|p| p.images.len()), Some(600));
    assert_eq!(
        want.as_ref().map(|p| p.next_page_token.as_str()),
        Some("middle")
    );
    assert_eq!(decoded(raw).ok(), want);
}

/// Truncated pages, an image field of the wrong wire type and a broken image: errors,
/// as prost's decoding of the whole message gives.
#[test]
fn malformed_pages_are_errors() {
    let raw = page(400).encode_to_vec();
    for cut in [1, 2, 100, raw.len() / 2, raw.len() - 1] {
        let short = raw.get(..cut).unwrap_or_default().to_vec();
        assert!(pb::ListImagesResponse::decode(short.as_slice()).is_err());
        let err = decoded(short).err().map(|e| e.code);
        assert_eq!(err, Some(Code::Internal), "cut at {cut}");
    }
    // Field 1 as a varint.
    let mut wrong = raw.clone();
    wrong.extend_from_slice(&[1 << 3, 1]);
    assert!(pb::ListImagesResponse::decode(wrong.as_slice()).is_err());
    assert_eq!(decoded(wrong).err().map(|e| e.code), Some(Code::Internal));
    // An image whose own field 1 (id) claims more bytes than the image has.
    let mut broken = raw;
    broken.extend_from_slice(&[1 << 3 | 2, 2, 1 << 3 | 2, 9]);
    assert!(pb::ListImagesResponse::decode(broken.as_slice()).is_err());
    assert_eq!(decoded(broken).err().map(|e| e.code), Some(Code::Internal));
}
