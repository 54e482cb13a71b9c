//! Command-line flags, named like Triton's where Triton has one.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

mod triton;
pub use triton::{Resolved, TritonFlags};

#[derive(Parser, Debug)]
#[command(
    name = "despina",
    version,
    about = "A Triton-compatible, multi-model inference server",
    // As with tritonserver, a flag given twice takes its last value (charts append overrides).
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve models over HTTP (KServe v2), gRPC and Prometheus metrics.
    Serve(Box<ServeArgs>),
    /// Lint every model of one or more repositories; exit status 1 if any is invalid.
    Check(CheckArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ControlModeArg {
    None,
    Poll,
    Explicit,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Model repository folder; repeat for several.
    #[arg(
        long = "model-repository",
        alias = "model-store",
        required = true,
        value_name = "PATH"
    )]
    pub model_repository: Vec<PathBuf>,
    /// none: load everything at start; poll: also follow repository changes; explicit: load/unload by API.
    #[arg(long, value_enum, default_value = "none")]
    pub model_control_mode: ControlModeArg,
    /// Models to load at start in explicit mode; `*` loads all. Repeatable.
    #[arg(long = "load-model", value_name = "NAME")]
    pub load_model: Vec<String>,
    /// Seconds between repository polls in poll mode (fractions allowed).
    #[arg(long, default_value_t = 15.0)]
    pub repository_poll_secs: f64,
    /// Require a config.pbtxt for every model (no auto-complete).
    #[arg(long, default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub strict_model_config: bool,
    /// Same as --strict-model-config=true.
    #[arg(long, default_value_t = false)]
    pub disable_auto_complete_config: bool,
    /// Ready only when every model loaded.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub strict_readiness: bool,
    /// Exit at start-up when a model fails to load.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub exit_on_error: bool,
    /// Seconds that in-flight requests get to finish on shutdown.
    #[arg(long, default_value_t = 30)]
    pub exit_timeout_secs: u64,

    /// Address for every listener (overridden per service by --http-address etc.).
    #[arg(long, default_value = "0.0.0.0")]
    pub host: IpAddr,
    #[arg(long)]
    pub http_address: Option<IpAddr>,
    #[arg(long, default_value_t = 8000)]
    pub http_port: u16,
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_http: bool,
    #[arg(long)]
    pub grpc_address: Option<IpAddr>,
    #[arg(long, default_value_t = 8001)]
    pub grpc_port: u16,
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_grpc: bool,
    #[arg(long)]
    pub metrics_address: Option<IpAddr>,
    #[arg(long, default_value_t = 8002)]
    pub metrics_port: u16,
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_metrics: bool,
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_cpu_metrics: bool,
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_gpu_metrics: bool,
    #[arg(long, default_value_t = 2000)]
    pub metrics_interval_ms: u64,
    /// Metrics settings as Triton takes them: `<setting>=<value>` with counter_latencies,
    /// summary_latencies, summary_quantiles (`<q>:<error>,...`). Repeatable.
    #[arg(long = "metrics-config", value_name = "SETTING")]
    pub metrics_config: Vec<String>,
    /// Response cache as Triton takes it: `local,size=<bytes>` (the only cache here). Models
    /// opt in with `response_cache { enable: true }`. Repeatable.
    #[arg(long = "cache-config", value_name = "CACHE,SETTING")]
    pub cache_config: Vec<String>,
    /// Older Triton spelling of `--cache-config local,size=<bytes>`.
    #[arg(long, value_name = "BYTES")]
    pub response_cache_byte_size: Option<u64>,
    /// Largest HTTP request body in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub http_max_input_size: usize,
    /// Largest gRPC message in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024 * 1024 - 1)]
    pub grpc_max_message_size: usize,

    /// PEM certificate (chain) for TLS on the HTTP and gRPC ports.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): clients must present a certificate it signed (mutual TLS).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,
    /// Restrict HTTP endpoint groups to requests carrying a header key:
    /// `<category>[,<category>...]:<header>=<value>`. Categories: health, metadata, inference,
    /// shared-memory, model-config, model-repository, statistics, trace, logging. Repeatable.
    #[arg(long, value_name = "RULE")]
    pub http_restricted_api: Vec<String>,
    /// The same for gRPC methods (clients may also send the header as `triton-grpc-protocol-<header>`).
    #[arg(long, value_name = "RULE")]
    pub grpc_restricted_protocol: Vec<String>,

    /// libonnxruntime.so to load (default: ORT_DYLIB_PATH, then the project's .venv).
    #[arg(long, env = "ORT_DYLIB_PATH", value_name = "PATH")]
    pub onnxruntime_lib: Option<PathBuf>,

    /// Trace settings as Triton takes them: `[triton,]<setting>=<value>` with settings
    /// file, level (OFF, TIMESTAMPS, TENSORS), rate, count, log-frequency. Repeatable.
    #[arg(long = "trace-config", value_name = "SETTING")]
    pub trace_config: Vec<String>,

    #[arg(long, default_value_t = 0)]
    pub log_verbose: u32,
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub log_info: bool,
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub log_warning: bool,
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub log_error: bool,
    /// default or ISO8601.
    #[arg(long, default_value = "default")]
    pub log_format: String,
    /// Append logs to this file instead of stderr.
    #[arg(long)]
    pub log_file: Option<PathBuf>,

    #[command(flatten)]
    pub triton: TritonFlags,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Repositories to check.
    #[arg(required = true, value_name = "REPOSITORY")]
    pub repositories: Vec<PathBuf>,
    /// Check as if this many GPUs were present (KIND_GPU instance groups need one).
    #[arg(long, default_value_t = 0)]
    pub gpus: usize,
    /// Check `<model>/configs/<NAME>.pbtxt` where a model has one, as the server does.
    #[arg(long, value_name = "NAME", value_parser = triton::config_name)]
    pub model_config_name: Option<String>,
}
