//! Tests of `auth`.

use super::*;

fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
    Peer {
        uid,
        gid,
        groups: groups.to_vec(),
        pid: Some(7),
    }
}

#[test]
fn read_only_table() {
    for m in [
        "/imaged.v1.ImageService/ListImages",
        "/imaged.v1.ImageService/InspectImage",
        "/imaged.v1.ImageService/ImageDiskUsage",
        "/imaged.v1.ImageService/WatchEvents",
        "/imaged.v1.ContainerService/ListContainers",
        "/imaged.v1.GcService/GetGcPolicy",
        "/runtime.v1.ImageService/ImageStatus",
    ] {
        assert_eq!(access(m), Access::Read, "{m}");
    }
    for m in [
        "/imaged.v1.ImageService/RemoveImage",
        "/imaged.v1.ImageService/PruneImages",
        "/imaged.v1.ImageService/LoadImages",
        "/imaged.v1.ImageService/TagImage",
        "/imaged.v1.ImageService/UntagImage",
        "/imaged.v1.ContainerService/RegisterContainer",
        "/imaged.v1.ContainerService/UnregisterContainer",
        "/imaged.v1.GcService/SetGcPolicy",
        "/imaged.v1.GcService/RunGc",
        "/runtime.v1.ImageService/RemoveImage",
        "/runtime.v1.ImageService/PullImage",
        "/something.Else/ListImages",
    ] {
        assert_eq!(access(m), Access::Admin, "{m}");
    }
}

#[test]
fn read_only_methods_are_methods_of_the_served_services() {
    let all: Vec<&str> = [images::ALL, containers::ALL, gc::ALL, cri::ALL].concat();
    for m in READ_ONLY_METHODS {
        assert!(all.contains(m), "{m} is no method of a served service");
    }
    let admin = all.iter().filter(|m| access(m) == Access::Admin).count();
    assert_eq!(admin + READ_ONLY_METHODS.len(), all.len());
}

#[test]
fn no_lists_means_every_local_peer_is_admin() {
    let a = Authorizer::default();
    let c = a.identify_peer(&peer(1234, 1234, &[])).expect("admin");
    assert_eq!(c.role, Role::Admin);
    assert_eq!(c.identity, "uid=1234 pid=7");
}

#[test]
fn lists_decide_roles() {
    let a = Authorizer::new(AuthConfig {
        admin_uids: vec![0],
        admin_gids: vec![50],
        reader_uids: vec![1000],
        reader_gids: vec![60],
        ..AuthConfig::default()
    });
    let role = |p: Peer| a.identify_peer(&p).map(|c| c.role);
    assert_eq!(role(peer(0, 0, &[])), Ok(Role::Admin));
    assert_eq!(role(peer(5, 50, &[])), Ok(Role::Admin));
    assert_eq!(
        role(peer(5, 5, &[60, 50])),
        Ok(Role::Admin),
        "supplementary admin group"
    );
    assert_eq!(role(peer(1000, 1000, &[])), Ok(Role::Reader));
    assert_eq!(role(peer(6, 6, &[60])), Ok(Role::Reader));
    let err = role(peer(6, 6, &[7])).expect_err("not listed");
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    assert_eq!(
        err.metadata.get("caller").map(String::as_str),
        Some("uid=6 pid=7")
    );
}

#[test]
fn tokens_decide_roles() {
    let a = Authorizer::new(AuthConfig {
        admin_tokens: vec![Token::new("admin.token:1", "s3cret-admin")],
        reader_tokens: vec![Token::new("reader.token:2", "s3cret-reader")],
        ..AuthConfig::default()
    });
    let c = a.identify_token("s3cret-admin").expect("admin");
    assert_eq!(
        (c.role, c.identity.as_str()),
        (Role::Admin, "token admin.token:1")
    );
    let c = a.identify_token("s3cret-reader").expect("reader");
    assert_eq!(c.role, Role::Reader);
    assert_eq!(
        a.identify_token("s3cret-admin2").map_err(|e| e.kind),
        Err(ErrorKind::Unauthenticated)
    );
    assert!(
        !format!("{:?}", a.config()).contains("s3cret"),
        "secrets never printed"
    );
}

#[test]
fn tcp_metadata_and_client_certs() {
    let a = Authorizer::new(AuthConfig {
        reader_tokens: vec![Token::new("r", "tok")],
        ..AuthConfig::default()
    });
    let ext = http::Extensions::new();
    let mut md = MetadataMap::new();
    let err = a.identify(&ext, &md).expect_err("no credentials");
    assert_eq!(err.kind, ErrorKind::Unauthenticated);

    md.insert("authorization", "Bearer tok".parse().expect("ascii"));
    assert_eq!(a.identify(&ext, &md).map(|c| c.role), Ok(Role::Reader));
    md.insert("authorization", "Basic dG9r".parse().expect("ascii"));
    assert_eq!(
        a.identify(&ext, &md).map_err(|e| e.kind),
        Err(ErrorKind::Unauthenticated)
    );

    let mut ext = http::Extensions::new();
    ext.insert(ListenerInfo {
        client_cert_verified: true,
    });
    let c = a.identify(&ext, &MetadataMap::new()).expect("mTLS");
    assert_eq!(
        (c.role, c.identity.as_str()),
        (Role::Admin, "tls-client-cert")
    );
}

#[test]
fn authorize_checks_access() {
    let a = Authorizer::new(AuthConfig {
        admin_tokens: vec![Token::new("a", "admin")],
        reader_tokens: vec![Token::new("r", "reader")],
        ..AuthConfig::default()
    });
    let req = |tok: &str| {
        let mut r = tonic::Request::new(());
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {tok}").parse().expect("ascii"),
        );
        r
    };
    let rm = "/imaged.v1.ImageService/RemoveImage";
    let ls = "/imaged.v1.ImageService/ListImages";
    assert!(a.authorize(ls, &req("reader")).is_ok());
    let err = a
        .authorize(rm, &req("reader"))
        .expect_err("reader cannot remove");
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    assert_eq!(err.metadata.get("method").map(String::as_str), Some(rm));
    assert_eq!(
        a.authorize(rm, &req("admin")).map(|c| c.role),
        Ok(Role::Admin)
    );
}
