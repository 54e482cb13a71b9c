use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use despina::cli::{CheckArgs, Cli, Command, ControlModeArg, ServeArgs};
use despina::repository::{ControlMode, ManagerConfig, ModelManager};
use despina::server::restrict::Restrictions;
use despina::server::settings::{LogSettings, Settings, TraceSettings};
use despina::server::tls::TlsFiles;
use despina::server::{self, Limits, Listeners, RunOptions, ServerState, metrics::MetricsOptions};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check(args),
        Command::Serve(args) => match serve(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let registry = despina::registry::full(None, None);
    let reports = despina::check::check(
        &args.repositories,
        &registry,
        args.gpus,
        args.model_config_name.as_deref(),
    );
    let mut invalid = 0;
    for r in &reports {
        if !r.problems.is_empty() {
            invalid += 1;
        }
        for p in &r.problems {
            println!("{p}");
        }
    }
    let models = reports.iter().filter(|r| !r.name.is_empty()).count();
    eprintln!(
        "checked {models} models: {} valid, {invalid} with problems",
        models.saturating_sub(invalid)
    );
    if invalid > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A listening socket; `reuse_port` sets SO_REUSEPORT so several servers can share the port.
fn listen(addr: SocketAddr, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    despina::request::install_panic_hook();
    let log = LogSettings {
        file: args
            .log_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        info: args.log_info,
        warning: args.log_warning,
        error: args.log_error,
        verbose_level: args.log_verbose,
        format: args.log_format.clone(),
    };
    let apply_log = despina::logging::init(&log)?;
    let triton = args.triton.resolve().map_err(anyhow::Error::msg)?;
    for note in &triton.notes {
        tracing::info!("{note}");
    }

    let registry = despina::registry::full(
        args.onnxruntime_lib.as_deref(),
        triton.default_max_batch_size,
    );
    for (backend, why) in registry.unavailable() {
        tracing::warn!("backend '{backend}' is unavailable: {why}");
    }
    let control_mode = match args.model_control_mode {
        ControlModeArg::None => ControlMode::None,
        ControlModeArg::Poll => ControlMode::Poll,
        ControlModeArg::Explicit => ControlMode::Explicit,
    };
    let mut metrics = MetricsOptions {
        interval: Duration::from_millis(args.metrics_interval_ms),
        cpu: args.allow_cpu_metrics,
        gpu: args.allow_gpu_metrics,
        ..Default::default()
    };
    for flag in &args.metrics_config {
        metrics.set(flag).map_err(anyhow::Error::msg)?;
    }
    let response_cache =
        despina::cache::parse_cache_config(&args.cache_config, args.response_cache_byte_size)
            .map_err(anyhow::Error::msg)?
            .map(|bytes| {
                Arc::new(despina::cache::ResponseCache::new(
                    usize::try_from(bytes).unwrap_or(usize::MAX),
                ))
            });
    let manager = ModelManager::new(
        ManagerConfig {
            repositories: args.model_repository.clone(),
            control_mode,
            startup_models: args.load_model.clone(),
            auto_complete: !(args.strict_model_config || args.disable_auto_complete_config),
            gpu_count: 0,
            drain_timeout: Duration::from_secs(args.exit_timeout_secs),
            latency_summaries: args.allow_metrics && metrics.summary_latencies,
            response_cache,
            load_retries: args.triton.model_load_retry_count.unwrap_or(0),
            config_name: args.triton.model_config_name.clone(),
            rate_limiter: match &triton.rate_limit_resources {
                Some(resources) => Some(
                    despina::scheduler::rate_limit::RateLimiter::new(resources)
                        .map_err(anyhow::Error::msg)?,
                ),
                None => None,
            },
        },
        registry,
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());

        let state_manager = manager.clone();
        let m = manager.clone();
        let failures = tokio::task::spawn_blocking(move || m.startup()).await?;
        if !failures.is_empty() && args.exit_on_error {
            anyhow::bail!("{} model(s) failed to load at start-up (use --exit-on-error=false to serve the others)", failures.len());
        }

        if control_mode == ControlMode::Poll {
            spawn_poller(state_manager.clone(), Duration::from_secs_f64(args.repository_poll_secs.max(0.05)), shutdown.clone());
        }
        let trace_flags = [triton.trace_config.clone(), args.trace_config.clone()].concat();
        let trace = TraceSettings::from_flags(&trace_flags).map_err(anyhow::Error::msg)?;
        let settings = Settings::new(log, trace, Some(apply_log));
        let limits = Limits { max_body_bytes: args.http_max_input_size, max_grpc_message_bytes: args.grpc_max_message_size };
        let mut state = ServerState::new(manager, settings, limits, args.strict_readiness, shutdown.clone());
        state.restricted_http = Arc::new(Restrictions::parse(&args.http_restricted_api).map_err(anyhow::Error::msg)?);
        state.restricted_grpc = Arc::new(Restrictions::parse(&args.grpc_restricted_protocol).map_err(anyhow::Error::msg)?);
        if let Some(id) = &args.triton.id {
            state.server_name = id.clone();
        }
        let state = Arc::new(state);
        let bind = |enabled: bool, addr: Option<std::net::IpAddr>, port: u16, reuse_port: bool| {
            let addr = SocketAddr::new(addr.unwrap_or(args.host), port);
            async move {
                if !enabled {
                    return Ok(None);
                }
                listen(addr, reuse_port).map(Some).with_context(|| format!("cannot listen on {addr}"))
            }
        };
        let listeners = Listeners {
            grpc: bind(args.allow_grpc, args.grpc_address, args.grpc_port, args.triton.reuse_grpc_port).await?,
            http: bind(args.allow_http, args.http_address, args.http_port, args.triton.reuse_http_port).await?,
            metrics: bind(args.allow_metrics, args.metrics_address, args.metrics_port, false).await?,
        };
        let opts = RunOptions {
            exit_timeout: Duration::from_secs(args.exit_timeout_secs),
            metrics,
            tls: match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => {
                    Some(TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: args.tls_client_ca.clone() })
                }
                _ => None,
            },
            grpc_tls: triton.grpc_tls.clone(),
            grpc: triton.grpc.clone(),
        };
        server::run(state, listeners, opts).await
    })
}

/// Poll mode: rescan the repositories every `interval` on a plain thread (loading is blocking).
fn spawn_poller(manager: Arc<ModelManager>, interval: Duration, stop: CancellationToken) {
    let spawned = std::thread::Builder::new()
        .name("repository-poll".into())
        .spawn(move || {
            while !stop.is_cancelled() {
                let deadline = std::time::Instant::now() + interval;
                while std::time::Instant::now() < deadline && !stop.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if !stop.is_cancelled() {
                    manager.poll();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the repository poller: {e}");
    }
}

fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot listen for SIGTERM: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
        token.cancel();
    });
}
