//! The floors every imaged number is compared with, measured in the same run: a no-op
//! RPC on the same socket, protobuf encoding of the same ListImages payload, and a bare
//! redb commit with fsync on the same disk as the store.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use imaged_client::proto;
use prost::Message;
use tonic::transport::Channel;

use crate::grpc;
use crate::stats::Summary;

/// `grpc.health.v1.Health/Check` round trips on `channel`, `n` of them after a warm-up.
pub(crate) async fn health_round_trips(channel: &Channel, n: usize) -> Result<Summary> {
    for _ in 0..50 {
        grpc::health_check(channel).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        grpc::health_check(channel).await?;
        samples.push(t.elapsed());
    }
    Ok(Summary::of(&samples))
}

/// Protobuf cost of the very pages a ListImages run returned: (encode, encode + decode),
/// each the median of `repeats` passes over every page.
pub(crate) fn protobuf_pages(
    pages: &[proto::ListImagesResponse],
    repeats: usize,
) -> (Summary, Summary) {
    let mut enc = Vec::with_capacity(repeats);
    let mut both = Vec::with_capacity(repeats);
    let mut sink = 0usize;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let bufs: Vec<Vec<u8>> = pages.iter().map(Message::encode_to_vec).collect();
        enc.push(t.elapsed());
        for b in &bufs {
            // Decoding cannot fail on bytes prost just encoded.
            if let Ok(p) = proto::ListImagesResponse::decode(b.as_slice()) {
                sink += p.images.len();
            }
        }
        both.push(t.elapsed());
    }
    std::hint::black_box(sink);
    (Summary::of(&enc), Summary::of(&both))
}

/// Bare redb write transactions (one 1 KiB insert each, default durability = fsync) in a
/// fresh database in `dir`, `n` of them after a warm-up.
pub(crate) fn redb_commits(dir: &Path, n: usize) -> Result<Summary> {
    const TABLE: redb::TableDefinition<'_, u64, &[u8]> = redb::TableDefinition::new("floor");
    let path = dir.join("floor.redb");
    let db =
        redb::Database::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let value = vec![0x5au8; 1024];
    let mut samples = Vec::with_capacity(n);
    for i in 0..(n + 20) as u64 {
        let t = Instant::now();
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(TABLE)?;
            table.insert(i, value.as_slice())?;
        }
        tx.commit()?;
        if i >= 20 {
            samples.push(t.elapsed());
        }
    }
    drop(db);
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(Summary::of(&samples))
}

/// The commit floor of a removal (issue 16): one write transaction deleting one row of a
/// table of `rows` rows of `value_len` bytes (the store's image count and its mean record
/// size), default durability (fsync), `n` of them after a warm-up, in a database in `dir`
/// filled beforehand in one transaction.
pub(crate) fn redb_deletes(dir: &Path, rows: usize, value_len: usize, n: usize) -> Result<Summary> {
    const TABLE: redb::TableDefinition<'_, u64, &[u8]> = redb::TableDefinition::new("floor");
    let path = dir.join("floor-sized.redb");
    let db =
        redb::Database::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut value = vec![0u8; value_len.max(1)];
    let mut rng = fastrand::Rng::with_seed(16);
    rng.fill(&mut value);
    let rows = rows.max(n + 20) as u64;
    {
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(TABLE)?;
            for i in 0..rows {
                // Keys spread like digests, so deletes touch the whole tree.
                table.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), value.as_slice())?;
            }
        }
        tx.commit()?;
    }
    let mut keys: Vec<u64> = (0..rows).collect();
    rng.shuffle(&mut keys);
    let mut samples = Vec::with_capacity(n);
    for (k, key) in keys.iter().take(n + 20).enumerate() {
        let t = Instant::now();
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(TABLE)?;
            table.remove(key.wrapping_mul(0x9e37_79b9_7f4a_7c15))?;
        }
        tx.commit()?;
        if k >= 20 {
            samples.push(t.elapsed());
        }
    }
    drop(db);
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(Summary::of(&samples))
}

/// The LoadImages floor (issue 16): SHA-256 of `bytes`, written to a file in `dir` and
/// fsynced, as one pass; the median of `n`.
pub(crate) fn hash_write_fsync(dir: &Path, bytes: &[u8], n: usize) -> Result<Summary> {
    use sha2::Digest as _;
    use std::io::Write as _;
    let path = dir.join("floor-load.bin");
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let mut f =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut h = sha2::Sha256::new();
        for chunk in bytes.chunks(1 << 20) {
            h.update(chunk);
            f.write_all(chunk)?;
        }
        f.sync_all()?;
        std::hint::black_box(h.finalize());
        samples.push(t.elapsed());
        std::fs::remove_file(&path)?;
    }
    Ok(Summary::of(&samples))
}

/// Total encoded bytes of `pages`.
pub(crate) fn encoded_len(pages: &[proto::ListImagesResponse]) -> usize {
    pages.iter().map(Message::encoded_len).sum()
}
