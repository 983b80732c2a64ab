//! One module per subcommand; each returns a [`Report`] or a [`Failure`].

pub mod container;
pub mod df;
pub mod events;
pub mod images;
pub mod inspect;
pub mod load;
pub mod prune;
pub mod rm;
pub mod tag;

use imaged_client::Client;

use crate::args::Command;
use crate::exit::{Failure, Report};

/// Runs `command` against the daemon.
pub async fn dispatch(client: &Client, command: &Command) -> Result<Report, Failure> {
    match command {
        Command::Ls(a) => images::run(client, a).await,
        Command::Rm(a) => rm::run(client, a).await,
        Command::Prune(a) => prune::run(client, a).await,
        Command::Load(a) => load::run(client, a).await,
        Command::Tag(a) => tag::tag(client, a).await,
        Command::Untag(a) => tag::untag(client, a).await,
        Command::Inspect(a) => inspect::run(client, a).await,
        Command::Df(a) => df::run(client, a).await,
        Command::Events(a) => events::run(client, a).await,
        Command::Container(c) => container::run(client, c).await,
    }
}
