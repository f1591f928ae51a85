//! `voxgate`: the Voxgate media server's command line. The server itself
//! is the library ([`voxgate_media_server`]: its config, its wiring in
//! `start`, its HTTP listener).
//!
//! `voxgate serve` runs the server; `voxgate config` prints the effective
//! configuration; `voxgate admin create` makes an operator; `voxgate test`
//! runs an agent test file ([`agent_tests`]); `voxgate console` calls an
//! agent through this machine's microphone and speakers (`console.rs`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use voxgate_control::{DEFAULT_TENANT, agent, agent_tests, auth, store};
use voxgate_media_server::config::{self, Config};
use voxgate_media_server::start;

#[cfg(feature = "console")]
mod console;

/// An open-source media server for AI voice agents.
#[derive(Debug, Parser)]
#[command(name = "voxgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Configuration file; without it, built-in defaults (the same as the shipped config.toml).
        #[arg(long, short, env = "VOXGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (file plus environment) as TOML.
    Config {
        /// Configuration file.
        #[arg(long, short, env = "VOXGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run an agent test file (TOML): scripted calls through the real call
    /// path on a private server, judged on what the caller heard. Exits 1
    /// if a case fails.
    Test {
        /// The test file.
        file: PathBuf,
        /// Configuration file (models, providers, the configured agent).
        #[arg(long, short, env = "VOXGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Every case at this rate (8000 or 16000), whatever the file says.
        #[arg(long)]
        rate: Option<u32>,
        /// Only the cases whose name contains this (repeatable: any of them).
        #[arg(long)]
        case: Vec<String>,
    },
    /// Talk to an agent through this machine's microphone and speakers: the
    /// live transcript, turn latencies and a level meter in the terminal;
    /// digits typed (then Enter) are keys pressed; Ctrl-C hangs up. The call
    /// is logged and recorded like any (channel `console`).
    #[cfg(feature = "console")]
    Console {
        /// Configuration file.
        #[arg(long, short, env = "VOXGATE_CONFIG")]
        config: Option<PathBuf>,
        /// A stored agent's id; default: the configured agent.
        #[arg(long, default_value = "")]
        agent: String,
        /// The microphone, by name (see --list-devices); default: the system's.
        #[arg(long)]
        input: Option<String>,
        /// The speakers, by name; default: the system's.
        #[arg(long)]
        output: Option<String>,
        /// List the audio devices and exit.
        #[arg(long)]
        list_devices: bool,
    },
    /// Manage operators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Give phone numbers to tenants: a tenant's agents may route only its numbers.
    Numbers {
        /// Configuration file (for `storage.database_url` and `sip.numbers`).
        #[arg(long, short, env = "VOXGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: NumbersCommand,
    },
}

#[derive(Debug, Subcommand)]
enum NumbersCommand {
    /// Give NUMBER to a tenant (refused while another tenant has it).
    Assign {
        number: String,
        /// The organisation, by name; made if it does not exist.
        #[arg(long)]
        tenant: String,
    },
    /// Take NUMBER back (refused while an agent routes it).
    Release { number: String },
    /// Every assigned number, its tenant and the agent routing it.
    List,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Make an operator who can log in to the control API (the first admin).
    Create {
        /// Configuration file (for `storage.database_url`).
        #[arg(long, short, env = "VOXGATE_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        email: String,
        /// The password (at least 10 characters); prefer the environment
        /// variable to the command line, which other users can see.
        #[arg(long, env = "VOXGATE_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        /// The organisation; made if it does not exist. Default: the default
        /// tenant, which owns the configured agent's calls.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Config::load(path.map(PathBuf::as_path), std::env::vars()).context("loading configuration")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { config } => {
            let config = load(config.as_ref())?;
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Admin { command: AdminCommand::Create { config, email, password, tenant } } => {
            let config = load(config.as_ref())?;
            anyhow::ensure!(password.chars().count() >= 10, "the password must have at least 10 characters");
            anyhow::ensure!(
                email.contains('@') && email.len() <= 320 && !email.contains(char::is_whitespace),
                "{email:?} is not an email address"
            );
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let store =
                    store::Store::open(&config.storage.database_url).await.context("opening the database")?;
                let tenant_id = store.tenant_named(&tenant).await?;
                let hash = auth::hash_password(&password).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
                let user = store.create_user(&tenant_id, &email, &hash, "admin").await?;
                println!("created admin {user} ({email}) in tenant {tenant_id} ({tenant})");
                anyhow::Ok(())
            })
        }
        Command::Numbers { config, command } => {
            let config = load(config.as_ref())?;
            tokio::runtime::Runtime::new()?.block_on(numbers(&config, command))
        }
        Command::Serve { config } => {
            let config = load(config.as_ref())?;
            init_logs(&config, &config.log.filter)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve(config))
        }
        #[cfg(feature = "console")]
        Command::Console { config, agent, input, output, list_devices } => {
            if list_devices {
                for line in voxgate_media::console::list_devices()? {
                    println!("{line}");
                }
                return Ok(());
            }
            let config = load(config.as_ref())?;
            init_logs(&config, "warn")?;
            let devices = voxgate_media::console::Devices { input, output };
            tokio::runtime::Runtime::new()?.block_on(console::run(config, &agent, &devices))
        }
        Command::Test { file, config, json, rate, case } => {
            let mut plan = agent_tests::TestPlan::load(&file)?;
            if !case.is_empty() {
                plan.cases.retain(|c| case.iter().any(|name| c.name.contains(name.as_str())));
                anyhow::ensure!(
                    !plan.cases.is_empty(),
                    "no case of {} is named like {case:?}",
                    file.display()
                );
            }
            if let Some(rate) = rate {
                plan.cases.iter_mut().for_each(|c| c.rate = Some(rate));
                plan.check(true)?;
            }
            let mut config = load(config.as_ref())?;
            // Warnings only: the report is the output.
            init_logs(&config, "warn")?;
            let scratch = tempfile::tempdir().context("making a scratch folder")?;
            private(&mut config, scratch.path());
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime.block_on(test(config, &plan))?;
            print!("{}", report.table());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if report.failed > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// `voxgate numbers ...`, on the configured database.
async fn numbers(config: &Config, command: NumbersCommand) -> anyhow::Result<()> {
    let store = store::Store::open(&config.storage.database_url).await.context("opening the database")?;
    match command {
        NumbersCommand::Assign { number, tenant } => {
            agent::spec::check_number(&number).map_err(|e| anyhow::anyhow!("{number:?}: {e}"))?;
            anyhow::ensure!(
                tenant == DEFAULT_TENANT || !config.sip.numbers.contains(&number),
                "{number} is the configured agent's (sip.numbers), reserved for the {DEFAULT_TENANT} tenant"
            );
            let tenant_id = store.tenant_named(&tenant).await?;
            store.assign_number(&number, &tenant_id).await?;
            println!("{number} assigned to tenant {tenant_id} ({tenant})");
        }
        NumbersCommand::Release { number } => {
            anyhow::ensure!(store.release_number(&number).await?, "{number} is not assigned");
            println!("{number} released");
        }
        NumbersCommand::List => {
            for n in store.assigned_numbers(None).await? {
                println!("{}\t{}\t{}", n.number, n.tenant_id, n.agent_id.as_deref().unwrap_or("-"));
            }
        }
    }
    Ok(())
}

/// Logs go to stderr, in colour only on a terminal.
fn init_logs(config: &Config, filter: &str) -> anyhow::Result<()> {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter)?)
        .with_writer(std::io::stderr);
    match config.log.format {
        config::LogFormat::Text => {
            logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init()
        }
        config::LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    Ok(())
}

/// A test run's server: on loopback, an ephemeral port, no SIP, its
/// records and recordings in `scratch`, no post-call work (which would
/// compete with the next case for the CPU).
fn private(config: &mut Config, scratch: &std::path::Path) {
    config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.http.media_key = config::Secret::default();
    config.sip.enabled = false;
    config.storage.database_url = format!("sqlite://{}", scratch.join("tests.db").display());
    config.storage.recordings_dir = scratch.join("recordings");
    config.s3 = config::S3Settings::default();
    config.post_call.workers = 0;
}

/// `voxgate test`: starts a private server, makes the file's agents, runs the cases.
async fn test(config: Config, plan: &agent_tests::TestPlan) -> anyhow::Result<agent_tests::Report> {
    let server = start(config).await?;
    let store = server.state.control.store.clone();
    let tenant = server.state.control.default_tenant.clone();
    let mut agents = std::collections::BTreeMap::new();
    for (key, spec) in &plan.agents {
        for number in &spec.numbers {
            store.assign_number(number, &tenant).await?;
        }
        let json = serde_json::to_string(spec)?;
        let row = store.create_agent(&tenant, &spec.name, &json, &spec.numbers).await?;
        agents.insert(key.clone(), row.id);
    }
    let runner = agent_tests::Runner {
        line: agent_tests::caller::Line {
            base: format!("ws://{}", server.http),
            media_key: String::new(),
            tokens: Some(server.state.media_tokens.clone()),
        },
        store,
        models_dir: server.state.config.models.dir.clone(),
        tenant,
        agent: String::new(),
        agents,
    };
    let total = plan.cases.len();
    let mut done = 0;
    let report = runner
        .run(plan, |case| {
            done += 1;
            let verdict = if case.passed { "pass" } else { "FAIL" };
            eprintln!("[{done}/{total}] {verdict}  {}", case.name);
        })
        .await;
    server.stop().await.context("the HTTP server task")?;
    Ok(report)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = start(config).await?;
    shutdown_signal().await;
    server.stop().await.context("the HTTP server task")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
