//! registries.conf as podman 4.3 reads it: file precedence, drop-ins, aliases (and the
//! alias cache), short-name expansion, mirrors, wildcards, blocked registries, v1 files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use imaged_registry::conf::{ConfError, Endpoint, Env, Rationale, RegistriesConf, ShortNameMode};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Fs {
    _t: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl Fs {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let home = t.path().join("home");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&home).unwrap();
        Self { _t: t, root, home }
    }
    fn env(&self) -> Env {
        Env::new(&self.home, &self.root)
    }
    fn write(&self, path: &Path, text: &str) -> PathBuf {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        path.to_owned()
    }
    fn sys(&self, rel: &str, text: &str) -> PathBuf {
        self.write(&self.root.join(rel), text)
    }
    fn user(&self, rel: &str, text: &str) -> PathBuf {
        self.write(&self.home.join(rel), text)
    }
}

fn conf(text: &str) -> RegistriesConf {
    RegistriesConf::from_toml(Path::new("/test/registries.conf"), text).unwrap()
}

fn conf_err(text: &str) -> String {
    RegistriesConf::from_toml(Path::new("/test/registries.conf"), text)
        .unwrap_err()
        .to_string()
}

fn refs(c: &RegistriesConf, input: &str) -> Vec<String> {
    c.pull_candidates(input)
        .unwrap()
        .into_iter()
        .map(|c| c.reference)
        .collect()
}

/// `(endpoint reference, insecure, mirror)` of the only candidate.
fn eps(c: &RegistriesConf, input: &str) -> Vec<(String, bool, bool)> {
    let cands = c.pull_candidates(input).unwrap();
    assert_eq!(cands.len(), 1, "{cands:?}");
    cands[0]
        .endpoints
        .iter()
        .map(|e| (e.reference.clone(), e.insecure, e.mirror))
        .collect()
}

fn ep(r: &str, insecure: bool, mirror: bool) -> (String, bool, bool) {
    (r.to_owned(), insecure, mirror)
}

// ---- which files ----

#[test]
fn no_files_is_an_empty_config_and_short_names_fail() {
    let f = Fs::new();
    let c = RegistriesConf::load(&f.env()).unwrap();
    assert!(c.registries().is_empty());
    assert_eq!(c.credential_helpers(), ["containers-auth.json"]);
    assert_eq!(c.short_name_mode(), ShortNameMode::Permissive);
    let e = c.pull_candidates("busybox").unwrap_err();
    assert!(
        e.to_string()
            .contains("no containers-registries.conf(5) was found"),
        "{e}"
    );
    // Fully-qualified names need no configuration.
    assert_eq!(
        refs(&c, "quay.io/podman/hello"),
        ["quay.io/podman/hello:latest"]
    );
}

#[test]
fn system_file_then_its_drop_ins_then_user_drop_ins_in_name_order() {
    let f = Fs::new();
    f.sys(
        "etc/containers/registries.conf",
        "unqualified-search-registries = ['a.io']\nshort-name-mode = 'enforcing'\n",
    );
    f.sys(
        "etc/containers/registries.conf.d/20-b.conf",
        "unqualified-search-registries = ['b.io']\n",
    );
    f.sys(
        "etc/containers/registries.conf.d/10-c.conf",
        "unqualified-search-registries = ['c.io', 'd.io']\n",
    );
    // not *.conf, and a directory: ignored
    f.sys(
        "etc/containers/registries.conf.d/30-x.conf.bak",
        "unqualified-search-registries = ['x.io']\n",
    );
    fs::create_dir_all(f.root.join("etc/containers/registries.conf.d/40-dir.conf")).unwrap();
    let c = RegistriesConf::load(&f.env()).unwrap();
    assert_eq!(c.unqualified_search_registries(), ["b.io"]);
    assert_eq!(c.short_name_mode(), ShortNameMode::Enforcing);

    // A user drop-in comes after the system ones.
    f.user(
        ".config/containers/registries.conf.d/00-u.conf",
        "unqualified-search-registries = ['u.io']\nshort-name-mode = 'disabled'\n",
    );
    let c = RegistriesConf::load(&f.env()).unwrap();
    assert_eq!(c.unqualified_search_registries(), ["u.io"]);
    assert_eq!(c.short_name_mode(), ShortNameMode::Disabled);
    assert!(c.sources().contains("registries.conf.d"), "{}", c.sources());
}

#[test]
fn user_file_replaces_system_file_and_system_drop_ins() {
    let f = Fs::new();
    f.sys(
        "etc/containers/registries.conf",
        "unqualified-search-registries = ['sys.io']\n",
    );
    f.sys(
        "etc/containers/registries.conf.d/1.conf",
        "[aliases]\n'sysalias' = 'sys.io/x'\n",
    );
    f.user(
        ".config/containers/registries.conf",
        "unqualified-search-registries = ['user.io']\n",
    );
    let c = RegistriesConf::load(&f.env()).unwrap();
    assert_eq!(c.unqualified_search_registries(), ["user.io"]);
    assert!(c.alias("sysalias").is_none());
}

#[test]
fn env_override_file_must_exist_and_still_reads_drop_ins() {
    let f = Fs::new();
    f.user(
        ".config/containers/registries.conf",
        "unqualified-search-registries = ['user.io']\n",
    );
    let missing = f.root.join("nope.conf");
    let e = RegistriesConf::load(
        &f.env()
            .with_var("CONTAINERS_REGISTRIES_CONF", missing.to_str().unwrap()),
    )
    .unwrap_err();
    assert!(matches!(e, ConfError::Io { .. }), "{e}");

    let over = f.sys(
        "custom.conf",
        "unqualified-search-registries = ['env.io']\n[aliases]\n'x' = 'env.io/x'\n",
    );
    f.sys(
        "etc/containers/registries.conf.d/5.conf",
        "[aliases]\n'y' = 'dropin.io/y'\n",
    );
    let env = f
        .env()
        .with_var("CONTAINERS_REGISTRIES_CONF", over.to_str().unwrap());
    let c = RegistriesConf::load(&env).unwrap();
    assert_eq!(c.unqualified_search_registries(), ["env.io"]);
    assert_eq!(c.alias("y").unwrap().0, "dropin.io/y");
    // REGISTRIES_CONFIG_PATH is the older spelling; CONTAINERS_REGISTRIES_CONF wins.
    let env2 = f
        .env()
        .with_var("REGISTRIES_CONFIG_PATH", over.to_str().unwrap());
    assert_eq!(
        RegistriesConf::load(&env2)
            .unwrap()
            .unqualified_search_registries(),
        ["env.io"]
    );
}

#[test]
fn drop_ins_merge_registries_by_prefix_and_aliases_by_name() {
    let f = Fs::new();
    f.sys(
        "etc/containers/registries.conf",
        r#"
unqualified-search-registries = ['docker.io']
credential-helpers = ['containers-auth.json', 'pass']
[aliases]
'fedora' = 'registry.fedoraproject.org/fedora'
'bad' = 'wrong.io/bad'
[[registry]]
location = 'keep.io'
insecure = true
[[registry]]
location = 'replace.io'
[[registry.mirror]]
location = 'old-mirror.io'
"#,
    );
    f.sys(
        "etc/containers/registries.conf.d/1.conf",
        r#"
[aliases]
'bad' = ''
'alpine' = 'docker.io/alpine'
[[registry]]
location = 'replace.io'
[[registry.mirror]]
location = 'new-mirror.io'
"#,
    );
    let c = RegistriesConf::load(&f.env()).unwrap();
    assert_eq!(c.credential_helpers(), ["containers-auth.json", "pass"]);
    let prefixes: Vec<&str> = c.registries().iter().map(|r| r.prefix.as_str()).collect();
    assert_eq!(prefixes, ["keep.io", "replace.io"]);
    assert!(c.find_registry("keep.io/x").unwrap().insecure);
    assert_eq!(
        eps(&c, "replace.io/app:1"),
        [
            ep("new-mirror.io/app:1", false, true),
            ep("replace.io/app:1", false, false)
        ]
    );
    // The alias reset by "" falls back to the search registries.
    assert_eq!(refs(&c, "bad"), ["docker.io/library/bad:latest"]);
    // docker.io alias values are normalised.
    assert_eq!(refs(&c, "alpine:3"), ["docker.io/library/alpine:3"]);
    let r = c.resolve("fedora").unwrap();
    assert_eq!(
        r.candidates[0].reference,
        "registry.fedoraproject.org/fedora:latest"
    );
    assert!(matches!(r.rationale, Rationale::Alias(_)));
}

#[test]
fn drop_ins_must_be_v2() {
    let f = Fs::new();
    f.sys(
        "etc/containers/registries.conf.d/1.conf",
        "[registries.search]\nregistries = ['a.io']\n",
    );
    let e = RegistriesConf::load(&f.env()).unwrap_err();
    assert!(e.to_string().contains("must be in v2 format"), "{e}");
}

#[test]
fn alias_cache_wins_over_configuration_root_and_rootless() {
    let f = Fs::new();
    f.sys(
        "etc/containers/registries.conf",
        "[aliases]\n'app' = 'conf.io/app'\n",
    );
    f.sys(
        "var/cache/containers/short-name-aliases.conf",
        "[aliases]\n'app' = 'rootcache.io/app'\n",
    );
    f.user(
        ".cache/containers/short-name-aliases.conf",
        "[aliases]\n'app' = 'usercache.io/app'\n",
    );
    let root = RegistriesConf::load(&f.env()).unwrap();
    assert_eq!(refs(&root, "app"), ["rootcache.io/app:latest"]);
    let user = RegistriesConf::load(&f.env().rootless_as(1000)).unwrap();
    assert_eq!(refs(&user, "app"), ["usercache.io/app:latest"]);
    let xdg = f.root.join("xdgcache");
    f.write(
        &xdg.join("containers/short-name-aliases.conf"),
        "[aliases]\n'app' = 'xdg.io/app'\n",
    );
    let user = RegistriesConf::load(
        &f.env()
            .rootless_as(1000)
            .with_var("XDG_CACHE_HOME", xdg.to_str().unwrap()),
    )
    .unwrap();
    assert_eq!(refs(&user, "app"), ["xdg.io/app:latest"]);
}

// ---- short names ----

#[test]
fn short_names_expand_through_each_search_registry_in_order() {
    let c = conf(
        "unqualified-search-registries = ['registry.fedoraproject.org', 'quay.io', 'docker.io']\n",
    );
    assert_eq!(
        refs(&c, "busybox"),
        [
            "registry.fedoraproject.org/busybox:latest",
            "quay.io/busybox:latest",
            "docker.io/library/busybox:latest"
        ]
    );
    assert_eq!(
        refs(&c, "foo/bar:1.0"),
        [
            "registry.fedoraproject.org/foo/bar:1.0",
            "quay.io/foo/bar:1.0",
            "docker.io/foo/bar:1.0"
        ]
    );
    // A tag together with a digest: the tag is dropped (Docker compatibility).
    assert_eq!(
        refs(&c, &format!("busybox:1@{DIGEST}"))[2],
        format!("docker.io/library/busybox@{DIGEST}")
    );
    let r = c.resolve("busybox").unwrap();
    assert!(matches!(r.rationale, Rationale::SearchRegistries(_)));
}

#[test]
fn qualified_names_are_normalised_and_skip_search() {
    let c = conf("unqualified-search-registries = ['quay.io']\n");
    assert_eq!(
        refs(&c, "docker.io/busybox"),
        ["docker.io/library/busybox:latest"]
    );
    assert_eq!(
        refs(&c, "index.docker.io/library/busybox:1"),
        ["docker.io/library/busybox:1"]
    );
    assert_eq!(refs(&c, "localhost/app"), ["localhost/app:latest"]);
    assert_eq!(refs(&c, "localhost:5000/app:2"), ["localhost:5000/app:2"]);
    let e = c.pull_candidates("BusyBox").unwrap_err();
    assert!(matches!(e, ConfError::Reference { .. }), "{e}");
}

#[test]
fn alias_keeps_the_users_tag_or_digest() {
    let c = conf(
        "unqualified-search-registries = ['quay.io']\n[aliases]\n'ubi' = 'registry.access.redhat.com/ubi9'\n'ns/tool' = 'ghcr.io/ns/tool'\n",
    );
    assert_eq!(refs(&c, "ubi:9.1"), ["registry.access.redhat.com/ubi9:9.1"]);
    assert_eq!(
        refs(&c, &format!("ubi@{DIGEST}")),
        [format!("registry.access.redhat.com/ubi9@{DIGEST}")]
    );
    assert_eq!(refs(&c, "ns/tool"), ["ghcr.io/ns/tool:latest"]);
}

#[test]
fn invalid_aliases_are_refused() {
    for (text, want) in [
        ("[aliases]\n'a:1' = 'q.io/a'\n", "must not contain tag"),
        (
            "[aliases]\n'q.io/a' = 'q.io/a'\n",
            "must not contain registry",
        ),
        ("[aliases]\n'a' = 'q.io/a:1'\n", "must not contain tag"),
        ("[aliases]\n'a' = 'a/b'\n", "must contain registry"),
        (
            &format!("[aliases]\n'a' = 'q.io/a@{DIGEST}'\n"),
            "must not contain digest",
        ),
    ] {
        let e = conf_err(text);
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn short_name_modes() {
    let c =
        conf("unqualified-search-registries = ['a.io', 'b.io']\nshort-name-mode = 'enforcing'\n");
    let e = c.pull_candidates("app").unwrap_err();
    assert!(e.to_string().contains("cannot prompt without a TTY"), "{e}");
    // One candidate is fine in enforcing mode; so is an alias.
    let c = conf("unqualified-search-registries = ['a.io']\nshort-name-mode = 'enforcing'\n");
    assert_eq!(refs(&c, "app"), ["a.io/app:latest"]);
    let c =
        conf("unqualified-search-registries = ['a.io', 'b.io']\nshort-name-mode = 'disabled'\n");
    assert_eq!(refs(&c, "app").len(), 2);
    assert!(conf_err("short-name-mode = 'sometimes'\n").contains("invalid short-name mode"));
    let e = conf("unqualified-search-registries = []\n")
        .pull_candidates("app")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no unqualified-search registries are defined"),
        "{e}"
    );
}

#[test]
fn search_registry_entries_are_validated() {
    assert!(conf_err("unqualified-search-registries = ['https://a.io']\n").contains("URI schemes"));
    assert!(
        conf_err("unqualified-search-registries = ['a.io/ns']\n")
            .contains("Invalid unqualified-search-registries entry")
    );
    // Trailing slashes are trimmed.
    let c = conf("unqualified-search-registries = ['a.io/']\n");
    assert_eq!(c.unqualified_search_registries(), ["a.io"]);
}

// ---- [[registry]] ----

#[test]
fn longest_prefix_wins_and_rewrites_the_location() {
    let c = conf(
        r#"
[[registry]]
prefix = 'example.com'
location = 'plain.example.com'
[[registry]]
prefix = 'example.com/foo'
location = 'internal.example.com/mirror/foo'
insecure = true
"#,
    );
    assert_eq!(
        eps(&c, "example.com/foo/bar:1"),
        [ep("internal.example.com/mirror/foo/bar:1", true, false)]
    );
    assert_eq!(
        eps(&c, "example.com/other"),
        [ep("plain.example.com/other:latest", false, false)]
    );
    // Prefixes match whole components only.
    assert_eq!(
        eps(&c, "example.com/foobar"),
        [ep("plain.example.com/foobar:latest", false, false)]
    );
    assert_eq!(
        eps(&c, "example.community/x"),
        [ep("example.community/x:latest", false, false)]
    );
    // The endpoint's host and repository are the rewritten ones.
    let cand = &c.pull_candidates("example.com/foo/bar").unwrap()[0];
    assert_eq!(cand.reference, "example.com/foo/bar:latest");
    assert_eq!(cand.endpoints[0].host, "internal.example.com");
    assert_eq!(cand.endpoints[0].repository, "mirror/foo/bar");
}

#[test]
fn mirrors_come_first_and_follow_pull_from_mirror() {
    let c = conf(
        r#"
[[registry]]
location = 'docker.io'
[[registry.mirror]]
location = 'mirror-all.local:5000'
insecure = true
[[registry.mirror]]
location = 'mirror-digest.local'
pull-from-mirror = 'digest-only'
[[registry.mirror]]
location = 'mirror-tag.local/hub'
pull-from-mirror = 'tag-only'
"#,
    );
    assert_eq!(
        eps(&c, "docker.io/library/busybox:1"),
        [
            ep("mirror-all.local:5000/library/busybox:1", true, true),
            ep("mirror-tag.local/hub/library/busybox:1", false, true),
            ep("docker.io/library/busybox:1", false, false),
        ]
    );
    assert_eq!(
        eps(
            &c,
            &format!("busybox@{DIGEST}").replace("busybox", "docker.io/busybox")
        ),
        [
            ep(
                &format!("mirror-all.local:5000/library/busybox@{DIGEST}"),
                true,
                true
            ),
            ep(
                &format!("mirror-digest.local/library/busybox@{DIGEST}"),
                false,
                true
            ),
            ep(&format!("docker.io/library/busybox@{DIGEST}"), false, false),
        ]
    );
    let cand = &c.pull_candidates("docker.io/busybox").unwrap()[0];
    let primary: &Endpoint = cand.endpoints.last().unwrap();
    assert_eq!(primary.api_host(), "registry-1.docker.io");
    assert_eq!(cand.endpoints[0].api_host(), "mirror-all.local:5000");
}

#[test]
fn mirror_by_digest_only() {
    let c = conf(
        r#"
[[registry]]
location = 'q.io'
mirror-by-digest-only = true
[[registry.mirror]]
location = 'm.io'
"#,
    );
    assert_eq!(eps(&c, "q.io/a:1"), [ep("q.io/a:1", false, false)]);
    assert_eq!(
        eps(&c, &format!("q.io/a@{DIGEST}")),
        [
            ep(&format!("m.io/a@{DIGEST}"), false, true),
            ep(&format!("q.io/a@{DIGEST}"), false, false)
        ]
    );
    assert!(conf_err(
        "[[registry]]\nlocation = 'q.io'\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = 'm.io'\npull-from-mirror = 'all'\n"
    )
    .contains("at the same time"));
}

#[test]
fn wildcard_prefixes_match_subdomains() {
    let c = conf(
        r#"
[[registry]]
prefix = '*.example.com'
insecure = true
[[registry]]
prefix = '*.corp.example.com'
location = 'proxy.local/corp'
[[registry]]
prefix = 'exact.example.com'
location = 'exact.example.com'
"#,
    );
    // No location: the reference itself, with the wildcard entry's settings.
    assert_eq!(
        eps(&c, "a.example.com/x:1"),
        [ep("a.example.com/x:1", true, false)]
    );
    assert_eq!(
        eps(&c, "b.a.example.com:5000/x"),
        [ep("b.a.example.com:5000/x:latest", true, false)]
    );
    // Longer wildcard prefix wins, and rewrites.
    assert_eq!(
        eps(&c, "r.corp.example.com/team/app"),
        [ep("proxy.local/corp/team/app:latest", false, false)]
    );
    // An exact prefix longer than the wildcard wins.
    assert_eq!(
        eps(&c, "exact.example.com/x"),
        [ep("exact.example.com/x:latest", false, false)]
    );
    // The bare domain and look-alikes do not match.
    assert_eq!(
        eps(&c, "example.com/x"),
        [ep("example.com/x:latest", false, false)]
    );
    assert_eq!(
        eps(&c, "a.example.comx/x"),
        [ep("a.example.comx/x:latest", false, false)]
    );
    assert_eq!(
        eps(&c, "other.io/a.example.com/x"),
        [ep("other.io/a.example.com/x:latest", false, false)]
    );
    for bad in ["*.example.com/ns", "*.example.com:5000"] {
        let e = conf_err(&format!("[[registry]]\nprefix = '{bad}'\n"));
        assert!(e.contains("Wildcarded prefix"), "{bad}: {e}");
    }
    assert!(conf_err("[[registry]]\nprefix = 'a.io'\n").contains("location is unset"));
}

#[test]
fn blocked_registries_are_refused_unless_a_mirror_serves() {
    let c = conf(
        r#"
unqualified-search-registries = ['blocked.io', 'ok.io']
[[registry]]
location = 'blocked.io'
blocked = true
[[registry]]
location = 'mirrored.io'
blocked = true
[[registry.mirror]]
location = 'mirror.local'
[[registry]]
prefix = 'ok.io/bad'
location = 'ok.io/bad'
blocked = true
"#,
    );
    let e = c.pull_candidates("blocked.io/app").unwrap_err();
    match &e {
        ConfError::Blocked { prefix, .. } => assert_eq!(prefix, "blocked.io"),
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("registry blocked.io is blocked in"),
        "{e}"
    );
    // A blocked namespace, not the whole registry.
    assert!(matches!(
        c.pull_candidates("ok.io/bad/app"),
        Err(ConfError::Blocked { .. })
    ));
    assert_eq!(refs(&c, "ok.io/good/app"), ["ok.io/good/app:latest"]);
    // Short names: the blocked candidate is left out.
    assert_eq!(refs(&c, "app"), ["ok.io/app:latest"]);
    // The primary is blocked, its mirror is not.
    assert_eq!(
        eps(&c, "mirrored.io/app"),
        [ep("mirror.local/app:latest", false, true)]
    );
    // Push never uses mirrors.
    assert!(matches!(
        c.push_endpoint("mirrored.io/app"),
        Err(ConfError::Blocked { .. })
    ));
}

#[test]
fn conflicting_duplicates_are_refused_and_first_prefix_wins() {
    assert!(conf_err(
        "[[registry]]\nlocation = 'a.io'\n[[registry]]\nprefix = 'a.io/x'\nlocation = 'a.io'\ninsecure = true\n"
    )
    .contains("conflicting 'insecure'"));
    assert!(conf_err(
        "[[registry]]\nlocation = 'a.io'\nblocked = true\n[[registry]]\nprefix = 'b.io'\nlocation = 'a.io'\n"
    )
    .contains("conflicting 'blocked'"));
    let c = conf(
        "[[registry]]\nprefix = 'p.io'\nlocation = 'first.io'\n[[registry]]\nprefix = 'p.io'\nlocation = 'second.io'\n",
    );
    assert_eq!(c.registries().len(), 1);
    assert_eq!(eps(&c, "p.io/x"), [ep("first.io/x:latest", false, false)]);
    assert!(conf_err("[[registry]]\nlocation = 'http://a.io'\n").contains("URI schemes"));
    assert!(
        conf_err("[[registry]]\nlocation = 'a.io'\npull-from-mirror = 'all'\n")
            .contains("non-mirror registry")
    );
    assert!(conf_err(
        "[[registry]]\nlocation = 'a.io'\n[[registry.mirror]]\nlocation = 'm.io'\npull-from-mirror = 'never'\n"
    )
    .contains("unsupported pull-from-mirror value"));
    assert!(conf_err("[[registry]]\n").contains("both location and prefix are unset"));
    assert!(conf_err("this is not toml").contains("/test/registries.conf"));
}

#[test]
fn push_goes_to_the_named_registry_with_its_insecure_flag() {
    let c = conf(
        r#"
[[registry]]
location = 'localhost:5000'
insecure = true
[[registry.mirror]]
location = 'mirror.local'
[[registry]]
prefix = 'rewrite.io'
location = 'elsewhere.io'
"#,
    );
    let e = c.push_endpoint("localhost:5000/app:1").unwrap();
    assert_eq!(e.reference, "localhost:5000/app:1");
    assert_eq!(e.host, "localhost:5000");
    assert_eq!(e.repository, "app");
    assert!(e.insecure && !e.mirror);
    let e = c.push_endpoint("busybox").unwrap();
    assert_eq!(e.reference, "docker.io/library/busybox:latest");
    assert_eq!(e.api_host(), "registry-1.docker.io");
    assert!(!e.insecure);
    // No prefix rewriting on push.
    assert_eq!(
        c.push_endpoint("rewrite.io/a").unwrap().reference,
        "rewrite.io/a:latest"
    );
}

#[test]
fn v1_files_are_converted() {
    let c = conf(
        r#"
[registries.search]
registries = ['a.io', 'docker.io']
[registries.insecure]
registries = ['insecure.local:5000']
[registries.block]
registries = ['bad.io']
"#,
    );
    assert_eq!(c.unqualified_search_registries(), ["a.io", "docker.io"]);
    assert!(c.find_registry("insecure.local:5000/x").unwrap().insecure);
    assert!(matches!(
        c.pull_candidates("bad.io/x"),
        Err(ConfError::Blocked { .. })
    ));
    assert!(
        conf_err(
            "unqualified-search-registries = ['a.io']\n[registries.search]\nregistries = ['b.io']\n"
        )
        .contains("mixing sysregistry v1/v2")
    );
}
