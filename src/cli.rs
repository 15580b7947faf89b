//! Command-line structure (clap only; resolving flags and environment into settings
//! happens in `settings`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "securecart",
    version,
    about = "Provision the SecureCart architecture on AWS from YAML blueprints",
    long_about = "Provision the SecureCart architecture on AWS from YAML blueprints.\n\n\
        plan compares a blueprint with what exists in AWS (found by tags and names: there is no state file); \
        apply makes AWS match, in dependency order and in parallel; destroy removes everything of a stack.",
    after_help = "Exit codes: 0 success (plan: no changes), 1 error, 2 plan has changes, 64 usage error, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Stack name (default: the blueprint's name). One blueprint, many stacks: e.g. one per branch.
    #[arg(long, global = true, env = "SECURECART_STACK")]
    pub stack: Option<String>,
    /// AWS region (default: AWS_REGION or the profile's region).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS named profile (default: AWS_PROFILE).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint (default: AWS_ENDPOINT_URL).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Use the bundled LocalStack emulator on 127.0.0.1, starting it if needed.
    #[arg(long, global = true)]
    pub local: bool,
    /// Port of the bundled emulator (default: SECURECART_LOCAL_PORT or 4566).
    #[arg(long, global = true, value_name = "PORT")]
    pub local_port: Option<u16>,
    /// Set a blueprint parameter (repeatable).
    #[arg(long = "var", global = true, value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// How many AWS changes may run at once.
    #[arg(long, global = true, env = "SECURECART_PARALLELISM", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// No colours (also: NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print AWS API calls by service and operation, and the time of each phase.
    #[arg(long, global = true)]
    pub stats: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a blueprint without calling AWS.
    Validate(BlueprintArg),
    /// Show what apply would change (exit 2 when there are changes).
    Plan(PlanArgs),
    /// Make AWS match the blueprint, or apply a plan saved by `plan --out`.
    Apply(ApplyArgs),
    /// Delete every resource of the stack.
    Destroy(DestroyArgs),
    /// Print the dependency graph.
    Graph(GraphArgs),
    /// Print the blueprint's outputs, read from AWS.
    Outputs(BlueprintArg),
    /// Start the blueprint's workflow (a state machine) and watch the path it takes.
    Run(RunArgs),
    /// Manage the bundled LocalStack emulator.
    Local {
        #[command(subcommand)]
        action: LocalAction,
    },
    /// Print the JSON Schema of blueprints (for editor completion and checks).
    Schema,
}

#[derive(Debug, Args)]
pub struct BlueprintArg {
    /// A blueprint file, or a folder holding blueprint.yaml.
    pub blueprint: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A blueprint file, a folder holding blueprint.yaml, or a plan saved by `plan --out`.
    pub blueprint: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A blueprint file, or a folder holding blueprint.yaml.
    pub blueprint: PathBuf,
    /// Also list the resources that do not change.
    #[arg(long)]
    pub all: bool,
    /// Save the plan to FILE; `securecart apply FILE` then applies exactly it, refusing
    /// if the blueprint or the live resources changed meanwhile. Holds no secrets.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A blueprint file, or a folder holding blueprint.yaml.
    pub blueprint: PathBuf,
    /// JSON input of the execution (default: `{}`).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Which state machine, when the blueprint has several (its resource id).
    #[arg(long, value_name = "ID")]
    pub machine: Option<String>,
    /// Give up watching after this many seconds (the execution goes on).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// The blueprint whose stack to destroy (optional with --stack).
    pub blueprint: Option<PathBuf>,
    /// Succeed when nothing of the stack exists (a cleanup job that may run twice).
    /// Without it, finding nothing is an error: a mistyped --stack or --region must not
    /// look like a successful destroy.
    #[arg(long)]
    pub allow_empty: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// A blueprint file, or a folder holding blueprint.yaml.
    pub blueprint: PathBuf,
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum LocalAction {
    /// Install (first time) and start the emulator.
    Start,
    /// Stop the emulator.
    Stop,
    /// Say whether it runs, where, and what it serves.
    Status,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((k.to_string(), v.to_string()))
}
