//! 32 clients against one real daemon on a `local` store (issue 4, SPEC §9): concurrent
//! removals of the same image, tags / untags / removals / listings interleaved on a shared
//! set of images, then an exact check of the final state, the store's invariants and
//! `imaged fsck`.
//!
//! * Race: all 32 clients remove the same image at once (a barrier releases them), by ID
//!   or by name, some with `ignore_missing`: exactly one response deletes it, the others
//!   get NOT_FOUND, or OK with no record under `ignore_missing`.
//! * Interleaving: `STABLE` images are never removed (each keeps a base name nobody
//!   touches); `DOOMED` images are removed during the run by whichever client gets there
//!   first. Each client owns its names and moves them between images (tag, untag, remove
//!   by name) in its own order, so the final place of an own name is what that client's
//!   last acknowledged operation says: no lost update. `CONTESTED` names are tagged by
//!   everyone; their final holder must be the target of a tag that no later-issued tag
//!   could have overwritten (linearisability of a register).
//! * Listing with small pages while all this happens: no image twice, every stable image
//!   exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imaged_client::{Client, ErrorReason, proto};
use imaged_store_local::test_support::invariants;
use proto::removal_record::Record;
use tokio::sync::Barrier;

use crate::support::{Daemon, ImageSpec, archive};

const CLIENTS: usize = 32;
const STABLE: usize = 6;
const DOOMED: usize = 4;
const RACED: usize = 4;
const CONTESTED: usize = 4;
/// Operations per client in the interleaved phase.
const OPS: usize = 14;
const OWN_NAMES: usize = 3;
const CALL_LIMIT: Duration = Duration::from_secs(60);

fn stable(j: usize) -> ImageSpec {
    ImageSpec::new(&format!("conc-stable-{j}")).named(&format!("localhost/conc/base:s{j}"))
}

fn doomed(i: usize) -> ImageSpec {
    ImageSpec::new(&format!("conc-doomed-{i}")).named(&format!("localhost/conc/doomed:v{i}"))
}

fn raced(i: usize) -> ImageSpec {
    ImageSpec::new(&format!("conc-raced-{i}")).named(&format!("localhost/conc/raced:r{i}"))
}

fn own_name(c: usize, k: usize) -> String {
    format!("localhost/conc/c{c}:{k}")
}

fn contested(m: usize) -> String {
    format!("localhost/conc/shared:{m}")
}

/// `Some(T)` within [`CALL_LIMIT`], else the test fails.
async fn timed<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {CALL_LIMIT:?}"))
}

fn deleted(records: &[proto::RemovalRecord]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.record {
            Some(Record::Deleted(id)) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// Where a client's own name is after its last acknowledged operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Nowhere,
    Stable(usize),
    Doomed(usize),
}

/// One acknowledged tag of a contested name: issued and answered at these ticks.
#[derive(Debug, Clone, Copy)]
struct ContestedTag {
    name: usize,
    target: usize,
    issued: u64,
    answered: u64,
}

/// What one client of the interleaved phase did.
#[derive(Debug, Default)]
struct ClientLog {
    places: Vec<Option<Place>>,
    contested: Vec<ContestedTag>,
    /// Images this client's removals deleted.
    deleted: Vec<String>,
    listings: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_clients_race_removals_and_interleave_tags_without_lost_updates() {
    let mut d = Daemon::start("local");
    let mut specs: Vec<ImageSpec> = (0..STABLE).map(stable).collect();
    specs.extend((0..DOOMED).map(doomed));
    specs.extend((0..RACED).map(raced));
    let setup = Client::connect(d.url()).await.unwrap();
    let loaded = setup
        .load(
            Cursor::new(archive::docker_archive(&specs)),
            proto::ArchiveFormat::Docker,
            Vec::new(),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(loaded.images.len(), specs.len());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Client::connect(d.url()).await.unwrap());
    }

    for i in 0..RACED {
        race_one_removal(&clients, &raced(i)).await;
    }

    let seed = fastrand::u64(..);
    eprintln!("concurrency test seed {seed}");
    let tick = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let (client, tick) = (client.clone(), Arc::clone(&tick));
        let rng = fastrand::Rng::with_seed(seed ^ c as u64);
        tasks.push(tokio::spawn(interleave(c, client, rng, tick)));
    }
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.unwrap());
    }
    // Whatever the clients left of the doomed images goes now.
    let mut deletions: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..DOOMED {
        let resp = setup
            .remove_image(proto::RemoveImageRequest {
                reference: doomed(i).id(),
                force: true,
                ignore_missing: true,
                ..Default::default()
            })
            .await
            .unwrap();
        for id in deleted(&resp.records) {
            *deletions.entry(id).or_default() += 1;
        }
    }
    for id in logs.iter().flat_map(|l| &l.deleted) {
        *deletions.entry(id.clone()).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = (0..DOOMED).map(|i| (doomed(i).id(), 1)).collect();
    assert_eq!(deletions, want, "each doomed image deleted exactly once");
    let listings: usize = logs.iter().map(|l| l.listings).sum();
    let contested: usize = logs.iter().map(|l| l.contested.len()).sum();
    let by_clients: usize = logs.iter().map(|l| l.deleted.len()).sum();
    eprintln!(
        "{CLIENTS} clients x {OPS} operations: {listings} paged listings, {contested} \
         contested tags, {by_clients}/{DOOMED} doomed images deleted by the clients"
    );
    assert!(
        listings > 0 && contested > 0,
        "the mix ran no listing or no contested tag"
    );

    check_final_state(&setup, &logs).await;
    drop((setup, clients));

    let status = d.stop().expect("imaged stops after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.log());
    let problems = invariants::committed_state(&d.root());
    assert!(problems.is_empty(), "{problems:?}");
    let mut cmd = std::process::Command::new(imaged_tests::tools::target_binary("imaged"));
    cmd.args(["--store", "local", "--root"])
        .arg(d.root())
        .arg("fsck");
    imaged_tests::tools::scrub_imaged_env(&mut cmd);
    imaged_tests::process::run(&mut cmd, Duration::from_secs(60))
        .ok()
        .stdout_has("clean");
    let problems = invariants::all(&d.root());
    assert!(problems.is_empty(), "{problems:?}");
}

/// All clients remove `img` at once: exactly one deletes it.
async fn race_one_removal(clients: &[Client], img: &ImageSpec) {
    let barrier = Arc::new(Barrier::new(clients.len()));
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let (client, barrier) = (client.clone(), Arc::clone(&barrier));
        let reference = if c % 2 == 0 {
            img.id()
        } else {
            img.names[0].clone()
        };
        let ignore_missing = c % 4 >= 2;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let req = proto::RemoveImageRequest {
                reference,
                ignore_missing,
                ..Default::default()
            };
            (ignore_missing, timed("rm", client.remove_image(req)).await)
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            (_, Ok(resp)) if !resp.records.is_empty() => {
                assert_eq!(deleted(&resp.records), [img.id()], "{resp:?}");
                winners += 1;
            }
            (true, Ok(resp)) => assert_eq!(resp.reclaimed_bytes, 0),
            (false, Ok(resp)) => panic!("OK without records and without ignore_missing: {resp:?}"),
            (_, Err(e)) => assert_eq!(e.kind, ErrorReason::ImageNotKnown, "{e}"),
        }
    }
    assert_eq!(winners, 1, "{} deleted by {winners} clients", img.id());
}

/// One client's interleaved phase.
async fn interleave(
    c: usize,
    client: Client,
    mut rng: fastrand::Rng,
    tick: Arc<AtomicU64>,
) -> ClientLog {
    let mut log = ClientLog {
        places: vec![Some(Place::Nowhere); OWN_NAMES],
        ..ClientLog::default()
    };
    let target = |rng: &mut fastrand::Rng| {
        if rng.u8(..3) == 0 {
            Place::Doomed(rng.usize(..DOOMED))
        } else {
            Place::Stable(rng.usize(..STABLE))
        }
    };
    let image_of = |p: Place| match p {
        Place::Stable(j) => stable(j).id(),
        Place::Doomed(i) => doomed(i).id(),
        Place::Nowhere => unreachable!(),
    };
    for step in 0..OPS {
        let what = format!("client {c} step {step}");
        let k = rng.usize(..OWN_NAMES);
        let name = own_name(c, k);
        let place = log.places[k].unwrap_or(Place::Nowhere);
        match rng.u8(..10) {
            0..=3 => {
                let to = target(&mut rng);
                match timed(&what, client.tag_image(&image_of(to), vec![name.clone()])).await {
                    Ok(_) => log.places[k] = Some(to),
                    // Its doomed target is already gone: nothing changed.
                    Err(e)
                        if e.kind == ErrorReason::ImageNotKnown
                            && matches!(to, Place::Doomed(_)) => {}
                    Err(e) => panic!("{what}: tag {name}: {e}"),
                }
            }
            4 | 5 if place != Place::Nowhere => {
                let res = if rng.bool() {
                    client
                        .untag_image(&image_of(place), vec![name.clone()])
                        .await
                        .map(|_| ())
                } else {
                    let req = proto::RemoveImageRequest {
                        reference: name.clone(),
                        ..Default::default()
                    };
                    client.remove_image(req).await.map(|r| {
                        assert!(
                            deleted(&r.records).is_empty(),
                            "{what}: rm {name} deleted: {r:?}"
                        );
                    })
                };
                match res {
                    Ok(()) => {}
                    // The doomed image holding it went, and the name with it.
                    Err(e) if e.kind.is_not_found() && matches!(place, Place::Doomed(_)) => {}
                    Err(e) => panic!("{what}: untag {name}: {e}"),
                }
                log.places[k] = Some(Place::Nowhere);
            }
            6 | 7 => {
                let (m, j) = (rng.usize(..CONTESTED), rng.usize(..STABLE));
                let issued = tick.fetch_add(1, Ordering::SeqCst);
                timed(&what, client.tag_image(&stable(j).id(), vec![contested(m)]))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: tag {}: {e}", contested(m)));
                let answered = tick.fetch_add(1, Ordering::SeqCst);
                log.contested.push(ContestedTag {
                    name: m,
                    target: j,
                    issued,
                    answered,
                });
            }
            8 => {
                let i = rng.usize(..DOOMED);
                let req = proto::RemoveImageRequest {
                    reference: doomed(i).id(),
                    force: true,
                    ignore_missing: rng.bool(),
                    ..Default::default()
                };
                let ignore = req.ignore_missing;
                match timed(&what, client.remove_image(req)).await {
                    Ok(r) => log.deleted.extend(deleted(&r.records)),
                    Err(e) if !ignore && e.kind == ErrorReason::ImageNotKnown => {}
                    Err(e) => panic!("{what}: rm doomed {i}: {e}"),
                }
            }
            _ => {
                list_in_pages(&client, &what).await;
                log.listings += 1;
            }
        }
    }
    log
}

/// A full listing in small pages: no image twice, every stable image once.
async fn list_in_pages(client: &Client, what: &str) {
    let mut seen = BTreeSet::new();
    let mut req = proto::ListImagesRequest {
        all: true,
        page_size: 3,
        ..Default::default()
    };
    loop {
        let page = timed(what, client.list_images(req.clone()))
            .await
            .unwrap_or_else(|e| panic!("{what}: list: {e}"));
        for img in page.images {
            assert!(
                seen.insert(img.id.clone()),
                "{what}: {} listed twice",
                img.id
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    for j in 0..STABLE {
        assert!(
            seen.contains(&stable(j).id()),
            "{what}: stable image {j} not listed"
        );
    }
}

/// The final images and names are exactly what the acknowledged operations imply.
async fn check_final_state(client: &Client, logs: &[ClientLog]) {
    let images = client
        .list_all(proto::ListImagesRequest {
            all: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let got: BTreeMap<String, BTreeSet<String>> = images
        .into_iter()
        .map(|i| (i.id, i.names.into_iter().collect()))
        .collect();
    let mut want: BTreeMap<String, BTreeSet<String>> = (0..STABLE)
        .map(|j| (stable(j).id(), stable(j).names.into_iter().collect()))
        .collect();
    for (c, log) in logs.iter().enumerate() {
        for (k, place) in log.places.iter().enumerate() {
            if let Some(Place::Stable(j)) = place {
                want.get_mut(&stable(*j).id())
                    .unwrap()
                    .insert(own_name(c, k));
            }
        }
    }
    // Contested names: the holder must be the target of a tag no other tag was issued
    // after the answer of.
    let tags: Vec<ContestedTag> = logs.iter().flat_map(|l| l.contested.clone()).collect();
    for m in 0..CONTESTED {
        let on_m: Vec<&ContestedTag> = tags.iter().filter(|t| t.name == m).collect();
        let holders: Vec<&String> = got
            .iter()
            .filter(|(_, names)| names.contains(&contested(m)))
            .map(|(id, _)| id)
            .collect();
        if on_m.is_empty() {
            assert!(
                holders.is_empty(),
                "{} never tagged: {holders:?}",
                contested(m)
            );
            continue;
        }
        let possible: BTreeSet<String> = on_m
            .iter()
            .enumerate()
            .filter(|(x, t)| {
                let later = on_m.iter().enumerate().filter(|(y, _)| y != x);
                later
                    .map(|(_, o)| o.issued)
                    .max()
                    .is_none_or(|i| t.answered > i)
            })
            .map(|(_, t)| t)
            .map(|t| stable(t.target).id())
            .collect();
        let [holder] = holders[..] else {
            panic!("{} on {holders:?}", contested(m));
        };
        assert!(
            possible.contains(holder),
            "{} ended on {holder}, which no possibly-last tag targeted ({possible:?})",
            contested(m)
        );
        want.get_mut(holder).unwrap().insert(contested(m));
    }
    assert_eq!(got, want, "final images and names");
}
