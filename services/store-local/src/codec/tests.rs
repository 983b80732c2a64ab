use super::*;

fn rand_str(rng: &mut fastrand::Rng) -> String {
    let n = rng.usize(0..12);
    (0..n)
        .map(|_| {
            if rng.u8(..) < 16 {
                'é'
            } else {
                rng.alphanumeric()
            }
        })
        .collect()
}

fn rand_strs(rng: &mut fastrand::Rng) -> Vec<String> {
    (0..rng.usize(0..4)).map(|_| rand_str(rng)).collect()
}

fn rand_digest(rng: &mut fastrand::Rng) -> Digest {
    let mut b = [0u8; 32];
    rng.fill(&mut b);
    Digest::from_bytes(b)
}

fn rand_platform(rng: &mut fastrand::Rng) -> Platform {
    Platform {
        os: rand_str(rng),
        architecture: rand_str(rng),
        variant: rand_str(rng),
    }
}

fn rand_blob(rng: &mut fastrand::Rng) -> BlobRef {
    BlobRef {
        digest: rand_digest(rng),
        size: rng.u64(..),
        media_type: if rng.bool() {
            "application/vnd.oci.image.layer.v1.tar+gzip".into()
        } else {
            rand_str(rng).into()
        },
    }
}

fn rand_opt_i64(rng: &mut fastrand::Rng) -> Option<i64> {
    rng.bool().then(|| rng.i64(..))
}

fn rand_image(rng: &mut fastrand::Rng) -> Image {
    Image {
        id: rand_digest(rng),
        names: rand_strs(rng),
        digests: (0..rng.usize(1..3)).map(|_| rand_digest(rng)).collect(),
        manifest: rand_blob(rng),
        config_blob: rng.bool().then(|| rand_blob(rng)),
        layers: (0..rng.usize(0..4))
            .map(|_| Layer {
                blob: rand_blob(rng),
                diff_id: rand_digest(rng),
            })
            .collect(),
        config: Arc::new(ImageConfig {
            created: rand_opt_i64(rng),
            platform: Arc::new(rand_platform(rng)),
            labels: Arc::new(
                (0..rng.usize(0..3))
                    .map(|_| (rand_str(rng), rand_str(rng)))
                    .collect(),
            ),
            run: Arc::new(RunConfig {
                user: rand_str(rng),
                env: rand_strs(rng),
                entrypoint: rand_strs(rng),
                cmd: rand_strs(rng),
                working_dir: rand_str(rng),
                exposed_ports: rand_strs(rng),
                volumes: rand_strs(rng),
                stop_signal: rand_str(rng),
            }),
            history: (0..rng.usize(0..3))
                .map(|_| {
                    Arc::new(HistoryEntry {
                        created: rand_opt_i64(rng),
                        created_by: rand_str(rng),
                        author: rand_str(rng),
                        comment: rand_str(rng),
                        empty_layer: rng.bool(),
                    })
                })
                .collect(),
        }),
        instances: rng.bool().then(|| {
            (0..rng.usize(0..3))
                .map(|_| ManifestInstance {
                    digest: rand_digest(rng),
                    platform: rand_platform(rng),
                })
                .collect()
        }),
        read_only: rng.bool(),
        added: rng.i64(..),
        last_used: rand_opt_i64(rng),
        stored_size: None,
    }
}

#[test]
fn random_images_and_containers_round_trip() {
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..2000 {
        let img = rand_image(&mut rng);
        assert_eq!(decode_image(&encode_image(&img)), Ok(img));
    }
    for state in [
        ContainerState::Created,
        ContainerState::Running,
        ContainerState::Stopped,
    ] {
        let c = Container {
            id: "c".repeat(64),
            image_id: rand_digest(&mut rng),
            state,
            external: true,
            name: "web".into(),
            created: -5,
        };
        assert_eq!(decode_container(&encode_container(&c)), Ok(c));
    }
}

#[test]
fn extreme_integers_round_trip() {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut img = rand_image(&mut rng);
    for (added, size) in [(i64::MIN, u64::MAX), (i64::MAX, 0), (0, 127), (-1, 128)] {
        img.added = added;
        img.manifest.size = size;
        assert_eq!(decode_image(&encode_image(&img)), Ok(img.clone()));
    }
}

#[test]
fn damaged_records_are_errors_never_panics() {
    let mut rng = fastrand::Rng::with_seed(3);
    let img = rand_image(&mut rng);
    let bytes = encode_image(&img);
    for n in 0..bytes.len() {
        assert!(
            decode_image(&bytes[..n]).is_err(),
            "prefix of {n} bytes decoded"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(decode_image(&longer), Err("trailing bytes"));
    let mut other = bytes.clone();
    other[0] = FORMAT + 1;
    assert_eq!(decode_image(&other), Err("unknown record format"));
    other[0] = 0;
    assert_eq!(decode_image(&other), Err("unknown record format"));
    for _ in 0..5000 {
        let mut flipped = bytes.clone();
        let i = rng.usize(..flipped.len());
        flipped[i] ^= 1 << rng.u8(0..8);
        let _ = decode_image(&flipped); // must not panic nor allocate wildly
    }
    assert!(decode_container(b"").is_err());
    assert!(
        decode_image(br#"{"id":"sha256:..."}"#).is_err(),
        "JSON is not this format"
    );
}

#[test]
fn format_1_records_still_decode_and_re_encode_in_format_2() {
    let mut rng = fastrand::Rng::with_seed(11);
    let shared = Interner::new();
    for _ in 0..2000 {
        let img = rand_image(&mut rng);
        let old = encode_image_format_1(&img);
        assert_eq!(decode_image(&old), Ok(img.clone()));
        // A shared interner never mixes the formats' keys.
        assert_eq!(decode_image_with(&old, &shared), Ok(img.clone()));
        let new = encode_image(&img);
        assert_eq!(new[0], FORMAT);
        assert_eq!(decode_image_with(&new, &shared), Ok(img));
    }
}

#[test]
fn format_2_codes_known_media_types_and_skips_empty_fields() {
    let mut rng = fastrand::Rng::with_seed(13);
    let mut img = rand_image(&mut rng);
    for (i, m) in MEDIA_CODES.iter().enumerate() {
        img.manifest.media_type = MediaType::new(m);
        let enc = encode_image(&img);
        let found = decode_image(&enc).unwrap();
        assert_eq!(found.manifest.media_type, *m);
        // The code is the byte after the digest and the size.
        let mut probe = Enc(Vec::new());
        probe.u64(img.manifest.size);
        let at = 1
            + 32
            + varint_len(img.names.len())
            + names_len(&img)
            + digests_len(&img)
            + 32
            + probe.0.len();
        assert_eq!(usize::from(enc[at]), i + 1, "{m}");
    }
    // Empty run settings and history fields cost one mask byte each.
    let mut small = img.clone();
    let config = Arc::make_mut(&mut small.config);
    config.run = Arc::new(RunConfig::default());
    config.history = (0..3).map(|_| Arc::new(HistoryEntry::default())).collect();
    let v1 = encode_image_format_1(&small);
    let v2 = encode_image(&small);
    assert_eq!(decode_image(&v2), Ok(small));
    assert!(
        v1.len() >= v2.len() + 7 + 3 * 3,
        "{} vs {}",
        v1.len(),
        v2.len()
    );
    // Masks with unknown bits are corruption.
    let mut bad = Enc(vec![]);
    bad.0.push(0x80);
    assert_eq!(Dec(&bad.0).mask(5), Err("bad field mask"));
    let bad_code = u8::try_from(MEDIA_CODES.len() + 1).unwrap();
    assert_eq!(
        Dec(&[bad_code]).media_type(),
        Err("unknown media type code")
    );
}

fn varint_len(n: usize) -> usize {
    let mut e = Enc(Vec::new());
    e.u64(n as u64);
    e.0.len()
}

fn names_len(img: &Image) -> usize {
    img.names
        .iter()
        .map(|n| varint_len(n.len()) + n.len())
        .sum()
}

fn digests_len(img: &Image) -> usize {
    varint_len(img.digests.len()) + 32 * img.digests.len()
}

#[test]
fn encoding_is_several_times_smaller_than_json() {
    let mut rng = fastrand::Rng::with_seed(9);
    let img = rand_image(&mut rng);
    let json = serde_json::to_vec(&img).unwrap();
    assert!(encode_image(&img).len() * 2 < json.len());
}
