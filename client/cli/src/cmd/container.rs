//! `imagectl container register|ls|rm|state`.

use imaged_client::{Client, proto};

use crate::args::{
    ContainerCommand, ContainerLsArgs, ContainerRmArgs, ContainerStateArgs, Format, RegisterArgs,
    State,
};
use crate::exit::{self, Failure, Report};
use crate::output::human::{ago, now_seconds, short_id};
use crate::output::{json, state_name, table};

/// Runs one container subcommand.
pub(crate) async fn run(client: &Client, cmd: &ContainerCommand) -> Result<Report, Failure> {
    match cmd {
        ContainerCommand::Register(a) => register(client, a).await,
        ContainerCommand::Ls(a) => list(client, a).await,
        ContainerCommand::Rm(a) => remove(client, a).await,
        ContainerCommand::State(a) => set_state(client, a).await,
    }
}

fn proto_state(state: State) -> proto::ContainerState {
    match state {
        State::Created => proto::ContainerState::Created,
        State::Running => proto::ContainerState::Running,
        State::Stopped => proto::ContainerState::Stopped,
    }
}

async fn register(client: &Client, a: &RegisterArgs) -> Result<Report, Failure> {
    let req = proto::RegisterContainerRequest {
        id: a.id.clone().unwrap_or_default(),
        image: a.image.clone(),
        state: proto_state(a.state) as i32,
        external: a.external,
        name: a.name.clone().unwrap_or_default(),
    };
    let c = client
        .register_container(req)
        .await
        .map_err(|e| Failure::from_client(client.url(), &e))?;
    Ok(Report::ok(format!("{}\n", c.id)))
}

async fn list(client: &Client, a: &ContainerLsArgs) -> Result<Report, Failure> {
    let containers = client
        .list_containers(a.image.as_deref())
        .await
        .map_err(|e| Failure::from_client(client.url(), &e))?;
    Ok(Report::ok(render(&containers, a, now_seconds())))
}

/// The container listing: a podman-aligned table, IDs (`-q`) or JSON.
pub(crate) fn render(containers: &[proto::Container], a: &ContainerLsArgs, now: f64) -> String {
    let id = |s: &str| {
        if a.no_trunc {
            s.to_owned()
        } else {
            short_id(s).to_owned()
        }
    };
    if a.quiet {
        return containers.iter().map(|c| id(&c.id) + "\n").collect();
    }
    if a.format == Format::Json {
        let list = containers.iter().map(json::container).collect();
        return json::pretty(&serde_json::Value::Array(list));
    }
    let rows: Vec<Vec<String>> = containers
        .iter()
        .map(|c| {
            vec![
                id(&c.id),
                id(&c.image_id),
                state_name(c.state).to_owned(),
                ago(c.created.as_ref(), now),
                c.external.to_string(),
                c.name.clone(),
            ]
        })
        .collect();
    table::render(
        table::PODMAN,
        &[
            "CONTAINER ID",
            "IMAGE ID",
            "STATE",
            "CREATED",
            "EXTERNAL",
            "NAME",
        ],
        &rows,
    )
}

async fn remove(client: &Client, a: &ContainerRmArgs) -> Result<Report, Failure> {
    let mut report = Report::default();
    let mut kinds = Vec::new();
    for id in &a.ids {
        match client.unregister_container(id, a.ignore).await {
            Ok(()) => {
                report.stdout.push_str(id);
                report.stdout.push('\n');
            }
            Err(e) if e.is_connection_error() => {
                return Err(Failure::from_client(client.url(), &e));
            }
            Err(e) => {
                report.errors.push(e.message.clone());
                kinds.push(e.kind);
            }
        }
    }
    report.code = exit::container_removal_code(&kinds);
    Ok(report)
}

async fn set_state(client: &Client, a: &ContainerStateArgs) -> Result<Report, Failure> {
    let c = client
        .set_container_state(&a.id, proto_state(a.state))
        .await
        .map_err(|e| Failure::from_client(client.url(), &e))?;
    Ok(Report::ok(format!("{}\n", c.id)))
}

#[cfg(test)]
mod tests {
    use imaged_client::Timestamp;

    use super::*;

    fn args(quiet: bool, no_trunc: bool) -> ContainerLsArgs {
        ContainerLsArgs {
            image: None,
            format: Format::Table,
            quiet,
            no_trunc,
        }
    }

    #[test]
    fn table_and_ids() {
        let c = proto::Container {
            id: "1".repeat(64),
            image_id: format!("sha256:{}", "2".repeat(64)),
            state: proto::ContainerState::Running as i32,
            external: false,
            name: "web".into(),
            created: Some(Timestamp {
                seconds: 0,
                nanos: 0,
            }),
        };
        let out = render(std::slice::from_ref(&c), &args(false, false), 120.0);
        let want = "\
CONTAINER ID  IMAGE ID      STATE       CREATED        EXTERNAL    NAME
111111111111  222222222222  running     2 minutes ago  false       web
";
        assert_eq!(out, want);
        assert_eq!(
            render(std::slice::from_ref(&c), &args(true, false), 0.0),
            "111111111111\n"
        );
        assert_eq!(
            render(&[c], &args(true, true), 0.0),
            format!("{}\n", "1".repeat(64))
        );
    }
}
