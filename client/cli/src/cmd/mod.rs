//! One module per subcommand; each returns a [`Report`] or a [`Failure`].

pub(crate) mod container;
pub(crate) mod df;
pub(crate) mod events;
pub(crate) mod gc;
pub(crate) mod gc_policy;
pub(crate) mod images;
pub(crate) mod inspect;
pub(crate) mod load;
pub(crate) mod prune;
pub(crate) mod pull;
pub(crate) mod rm;
pub(crate) mod tag;

use imaged_client::Client;

use crate::args::Command;
use crate::exit::{Failure, Report};

/// Runs `command` against the daemon.
pub(crate) async fn dispatch(client: &Client, command: &Command) -> Result<Report, Failure> {
    match command {
        Command::Ls(a) => images::run(client, a).await,
        Command::Rm(a) => rm::run(client, a).await,
        Command::Prune(a) => prune::run(client, a).await,
        Command::Load(a) => load::run(client, a).await,
        Command::Pull(a) => pull::pull(client, a).await,
        Command::Push(a) => pull::push(client, a).await,
        Command::Tag(a) => tag::tag(client, a).await,
        Command::Untag(a) => tag::untag(client, a).await,
        Command::Inspect(a) => inspect::run(client, a).await,
        Command::Df(a) => df::run(client, a).await,
        Command::Events(a) => events::run(client, a).await,
        Command::Container(c) => container::run(client, c).await,
        Command::Gc(a) => gc::run(client, a).await,
    }
}
