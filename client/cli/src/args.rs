//! Command-line grammar (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// imagectl: list, remove, prune, load and tag the images of an imaged daemon, with
/// podman's output and exit codes.
#[derive(Debug, Parser)]
#[command(name = "imagectl", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Daemon URL: unix:///path, http://host:port or https://host:port [default: the root
    /// or per-user socket]
    #[arg(long, env = "IMAGED_HOST", global = true, value_name = "URL")]
    pub host: Option<String>,
    /// File holding a bearer token sent on every call
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate that signed the daemon's certificate (https:// only)
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --tls-key)
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The command to run
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List images (one row per name, like `podman images`)
    #[command(visible_alias = "images")]
    Ls(LsArgs),
    /// Remove images by name or ID, in the order given
    #[command(visible_alias = "rmi")]
    Rm(RmArgs),
    /// Remove dangling images (every unused image with -a)
    Prune(PruneArgs),
    /// Load images from a docker-archive or oci-archive tarball
    Load(LoadArgs),
    /// Pull an image from a registry (the daemon fetches it)
    Pull(PullArgs),
    /// Push an image to a registry (the daemon sends it)
    Push(PushArgs),
    /// Add names to an image
    Tag(TagArgs),
    /// Remove names from an image (every name when none is given)
    Untag(UntagArgs),
    /// Show everything known about images, as a JSON array
    Inspect(InspectArgs),
    /// Show disk usage, like `docker system df`
    Df(DfArgs),
    /// Print store events as they happen, until interrupted
    Events(EventsArgs),
    /// Manage container records (which images are in use)
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Run the daemon's GC policy now and show what it deleted (`gc policy`: show or
    /// change the policy)
    Gc(GcArgs),
}

/// Output formats of listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ListFormat {
    /// Aligned columns
    Table,
    /// JSON array with every field and exact sizes
    Json,
    /// Image IDs only, one per image (12 characters unless --no-trunc), like `podman images -q`
    Ids,
}

/// Sort keys of `ls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SortKey {
    /// Newest first (default)
    Created,
    /// Image ID ascending
    Id,
    /// Size ascending
    Size,
    /// Name ascending (same as repository)
    Name,
    /// Repository, then tag, ascending
    Repository,
    /// Tag ascending
    Tag,
}

/// `imagectl ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Also show intermediate images
    #[arg(short, long)]
    pub all: bool,
    /// Filter (key=value or key!=value), repeatable
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Sort order
    #[arg(long, value_enum, default_value_t = SortKey::Created)]
    pub sort: SortKey,
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Print IDs only (same as --format ids)
    #[arg(short, long)]
    pub quiet: bool,
    /// Show full image IDs (sha256:<64 hex>)
    #[arg(long)]
    pub no_trunc: bool,
    /// Add a DIGEST column
    #[arg(long)]
    pub digests: bool,
    /// Omit the table header
    #[arg(short, long)]
    pub noheading: bool,
    /// Only images matching this reference (same as --filter reference=REF)
    pub reference: Option<String>,
}

/// Removal policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Policy {
    /// libimage rules (default)
    Podman,
    /// moby rules
    Docker,
}

/// `imagectl rm`.
#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Remove images used by non-running containers (and those containers); implies -i
    #[arg(short, long)]
    pub force: bool,
    /// Ignore images that do not exist
    #[arg(short, long)]
    pub ignore: bool,
    /// Keep parent images that become dangling
    #[arg(long)]
    pub no_prune: bool,
    /// Removal rules
    #[arg(long, value_enum, default_value_t = Policy::Podman)]
    pub policy: Policy,
    /// Print what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Remove every image
    #[arg(short, long)]
    pub all: bool,
    /// Remove the images this filter selects (ListImages grammar), repeatable
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Image names or IDs
    #[arg(value_name = "REF")]
    pub refs: Vec<String>,
}

/// `imagectl prune`.
#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Remove every unused image, not only dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Filter (key=value or key!=value), repeatable
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Also remove images used only by external containers (and those containers)
    #[arg(long)]
    pub external: bool,
    /// Print what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Archive formats for `load`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ArchiveFormat {
    /// `docker save` layout
    Docker,
    /// OCI image layout
    Oci,
}

/// `imagectl load`.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Read the archive from FILE instead of standard input
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Archive format [default: detected]
    #[arg(long, value_enum)]
    pub format: Option<ArchiveFormat>,
    /// Do not show a progress bar
    #[arg(short, long)]
    pub quiet: bool,
}

/// When `imagectl pull` contacts the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PullPolicyArg {
    /// Always ask the registry (podman pull's default)
    Always,
    /// Only when no local image has the reference
    Missing,
    /// When the registry's image differs from the local one
    Newer,
}

/// Registry credentials and TLS of `pull` and `push`.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Credentials for the registry, USERNAME:PASSWORD (sent to the daemon for this call
    /// only)
    #[arg(long, value_name = "USERNAME:PASSWORD", conflicts_with = "authfile")]
    pub creds: Option<String>,
    /// auth.json to take the registry's credentials from (podman's / Docker's format);
    /// the matching entry is sent to the daemon for this call only
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Require HTTPS and verify certificates (false: allow plain HTTP and skip
    /// verification) [default: as the daemon's registries.conf says]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Print only the result, no progress
    #[arg(short, long)]
    pub quiet: bool,
}

/// `imagectl pull`.
#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// The image: a fully-qualified reference or a short name the daemon resolves
    pub reference: String,
    /// The platform of a multi-platform image, OS/ARCH[/VARIANT] [default: the daemon's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// When to contact the registry
    #[arg(long, value_enum, default_value_t = PullPolicyArg::Always)]
    pub policy: PullPolicyArg,
    /// Credentials and TLS
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `imagectl push`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The local image: name, ID or ID prefix
    pub source: String,
    /// Where to push, a fully-qualified reference [default: SOURCE]
    pub destination: Option<String>,
    /// Credentials and TLS
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `imagectl tag`.
#[derive(Debug, Args)]
pub(crate) struct TagArgs {
    /// The image to tag
    pub source: String,
    /// New names
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

/// `imagectl untag`.
#[derive(Debug, Args)]
pub(crate) struct UntagArgs {
    /// The image
    pub reference: String,
    /// Names to remove (all when none)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// `imagectl inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Image names or IDs
    #[arg(required = true, value_name = "REF")]
    pub refs: Vec<String>,
}

/// Output formats of `df`, `events` and `container ls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable text
    Table,
    /// JSON
    Json,
}

/// `imagectl df`.
#[derive(Debug, Args)]
pub(crate) struct DfArgs {
    /// Also list every image
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Event types for `events --type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum EventKind {
    /// Images loaded
    Load,
    /// Names added
    Tag,
    /// Names removed
    Untag,
    /// Images deleted
    Delete,
    /// Prune summaries
    Prune,
    /// GC run summaries (what started the run, bytes reclaimed)
    Gc,
}

/// `imagectl events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Only these event types (repeatable; all when absent)
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub types: Vec<EventKind>,
    /// Output format (json: one object per line)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Container states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum State {
    /// Created, not started
    Created,
    /// Running (blocks removal even with force)
    Running,
    /// Exited
    Stopped,
}

/// `imagectl container …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ContainerCommand {
    /// Record a container on an image; prints its ID
    Register(RegisterArgs),
    /// List container records
    Ls(ContainerLsArgs),
    /// Remove container records
    Rm(ContainerRmArgs),
    /// Change the state of a container record
    State(ContainerStateArgs),
}

/// `imagectl container register`.
#[derive(Debug, Args)]
pub(crate) struct RegisterArgs {
    /// Container ID (64 hex) [default: generated]
    #[arg(long)]
    pub id: Option<String>,
    /// Initial state
    #[arg(long, value_enum, default_value_t = State::Created)]
    pub state: State,
    /// An external container (build container or another engine's)
    #[arg(long)]
    pub external: bool,
    /// Human name
    #[arg(long)]
    pub name: Option<String>,
    /// The image (any reference form)
    pub image: String,
}

/// `imagectl container ls`.
#[derive(Debug, Args)]
pub(crate) struct ContainerLsArgs {
    /// Only containers of this image
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print IDs only
    #[arg(short, long)]
    pub quiet: bool,
    /// Show full IDs
    #[arg(long)]
    pub no_trunc: bool,
}

/// `imagectl container rm`.
#[derive(Debug, Args)]
pub(crate) struct ContainerRmArgs {
    /// Ignore IDs that are not registered
    #[arg(short, long)]
    pub ignore: bool,
    /// Container IDs
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// `imagectl container state`.
#[derive(Debug, Args)]
pub(crate) struct ContainerStateArgs {
    /// Container ID
    pub id: String,
    /// New state
    #[arg(value_enum)]
    pub state: State,
}

/// `imagectl gc`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct GcArgs {
    /// Print what a run would delete, delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format (json: the whole RunGc response, exact bytes)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// `gc policy`
    #[command(subcommand)]
    pub command: Option<GcCommand>,
}

/// `imagectl gc …`.
#[derive(Debug, Subcommand)]
pub(crate) enum GcCommand {
    /// Show the GC policy in force, one `key: value` line per setting in the config
    /// file's `[gc]` syntax (`off`: unset); with --set, change it first
    Policy(GcPolicyArgs),
}

/// `imagectl gc policy`.
#[derive(Debug, Args)]
pub(crate) struct GcPolicyArgs {
    /// Change one setting of the policy in force, repeatable: high, low (`85%` or bytes
    /// such as `8GiB`), budget (bytes), max_unused, min_age, interval (Go durations such
    /// as `720h`, `2m`), keep_tags (a count); an empty VALUE (or `off`) unsets the key.
    /// The daemon keeps the new policy until it stops (its config file is the lasting
    /// source)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("imagectl").chain(args.iter().copied()))
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn images_alias_and_flags() {
        let cli = parse(&[
            "images",
            "-a",
            "--filter",
            "dangling=true",
            "-f",
            "label=x",
            "--sort",
            "size",
            "--format",
            "json",
            "--no-trunc",
        ])
        .unwrap();
        let Command::Ls(ls) = cli.command else {
            panic!("not ls")
        };
        assert!(ls.all && ls.no_trunc);
        assert_eq!(ls.filters, vec!["dangling=true", "label=x"]);
        assert_eq!(ls.sort, SortKey::Size);
        assert_eq!(ls.format, ListFormat::Json);
        assert!(parse(&["ls", "--sort", "bogus"]).is_err());
    }

    #[test]
    fn rmi_alias_keeps_order_and_flags() {
        let cli = parse(&["rmi", "-f", "--policy", "docker", "b", "a", "c"]).unwrap();
        let Command::Rm(rm) = cli.command else {
            panic!("not rm")
        };
        assert!(rm.force && !rm.ignore && !rm.dry_run);
        assert_eq!(rm.policy, Policy::Docker);
        assert_eq!(rm.refs, vec!["b", "a", "c"]);
        // No refs parses; the command itself reports podman's error.
        let cli = parse(&["rm"]).unwrap();
        let Command::Rm(rm) = cli.command else {
            panic!("not rm")
        };
        assert!(rm.refs.is_empty());
    }

    #[test]
    fn global_flags_anywhere() {
        let cli = parse(&["ls", "--host", "unix:///tmp/s.sock", "--token-file", "/t"]).unwrap();
        assert_eq!(cli.host.as_deref(), Some("unix:///tmp/s.sock"));
        assert_eq!(cli.token_file, Some(PathBuf::from("/t")));
        assert!(
            parse(&["--tls-cert", "/c", "ls"]).is_err(),
            "cert needs key"
        );
    }

    #[test]
    fn container_subcommands() {
        let cli = parse(&[
            "container",
            "register",
            "--state",
            "running",
            "--external",
            "alpine",
        ])
        .unwrap();
        let Command::Container(ContainerCommand::Register(r)) = cli.command else {
            panic!()
        };
        assert_eq!(r.state, State::Running);
        assert!(r.external);
        assert_eq!(r.image, "alpine");
        let cli = parse(&["container", "state", "abc", "stopped"]).unwrap();
        let Command::Container(ContainerCommand::State(s)) = cli.command else {
            panic!()
        };
        assert_eq!(s.state, State::Stopped);
        assert!(parse(&["container", "rm"]).is_err());
        assert!(parse(&["tag", "src"]).is_err());
    }

    #[test]
    fn gc_and_gc_policy() {
        let cli = parse(&["gc", "--dry-run", "--format", "json"]).unwrap();
        let Command::Gc(g) = cli.command else {
            panic!()
        };
        assert!(g.dry_run && g.command.is_none());
        assert_eq!(g.format, Format::Json);
        let cli = parse(&["gc", "policy", "--set", "high=85%", "--set", "low="]).unwrap();
        let Command::Gc(GcArgs {
            command: Some(GcCommand::Policy(p)),
            ..
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!(p.set, ["high=85%", "low="]);
        let cli = parse(&["gc", "policy"]).unwrap();
        let Command::Gc(GcArgs {
            command: Some(GcCommand::Policy(p)),
            ..
        }) = cli.command
        else {
            panic!()
        };
        assert!(p.set.is_empty());
        assert!(parse(&["gc", "--dry-run", "policy"]).is_err());
        assert!(parse(&["gc", "bogus"]).is_err());
    }

    #[test]
    fn events_types_and_load_input() {
        let cli = parse(&["events", "--type", "tag", "--type", "delete"]).unwrap();
        let Command::Events(e) = cli.command else {
            panic!()
        };
        assert_eq!(e.types, vec![EventKind::Tag, EventKind::Delete]);
        let cli = parse(&["load", "-i", "/tmp/a.tar", "--format", "oci"]).unwrap();
        let Command::Load(l) = cli.command else {
            panic!()
        };
        assert_eq!(l.input, Some(PathBuf::from("/tmp/a.tar")));
        assert_eq!(l.format, Some(ArchiveFormat::Oci));
    }
}
