//! The rest of `tritonserver`'s flags, so a Triton command line (a Helm chart's, a
//! KServe ServingRuntime's) starts despina unchanged. Each flag is mapped to what despina
//! does, accepted with a logged note when it has nothing to act on here (GPU memory pools,
//! backend folders), or refused with the reason when it asks for a service despina lacks.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::server::grpc::GrpcTransport;
use crate::server::tls::TlsFiles;

#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Triton flags (mapped, or accepted with a note)")]
pub struct TritonFlags {
    /// Server id, answered as the server metadata's name (default "despina").
    #[arg(long)]
    pub id: Option<String>,

    // gRPC TLS, Triton's spelling (gRPC only; --tls-cert covers both ports).
    /// TLS on the gRPC port alone (needs --grpc-server-cert and --grpc-server-key).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub grpc_use_ssl: bool,
    /// Mutual TLS on the gRPC port alone (also needs --grpc-root-cert).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub grpc_use_ssl_mutual: bool,
    /// PEM certificate (chain) for --grpc-use-ssl.
    #[arg(long, value_name = "PEM")]
    pub grpc_server_cert: Option<PathBuf>,
    /// PEM private key for --grpc-use-ssl.
    #[arg(long, value_name = "PEM")]
    pub grpc_server_key: Option<PathBuf>,
    /// PEM CA that client certificates must chain to (--grpc-use-ssl-mutual).
    #[arg(long, value_name = "PEM")]
    pub grpc_root_cert: Option<PathBuf>,

    /// Milliseconds between HTTP/2 keepalive pings on idle gRPC connections.
    #[arg(long, value_name = "MS")]
    pub grpc_keepalive_time: Option<u64>,
    /// Milliseconds to wait for a keepalive ping's answer before closing the connection.
    #[arg(long, value_name = "MS")]
    pub grpc_keepalive_timeout: Option<u64>,
    /// Milliseconds after which a gRPC connection is closed (gracefully).
    #[arg(long, value_name = "MS")]
    pub grpc_max_connection_age: Option<u64>,
    /// none, low, medium or high: any level but none gzips responses for clients that accept it.
    #[arg(long, value_name = "LEVEL")]
    pub grpc_infer_response_compression_level: Option<String>,
    /// Accepted; the HTTP/2 stack answers pings itself.
    #[arg(long, value_name = "BOOL")]
    pub grpc_keepalive_permit_without_calls: Option<String>,
    /// Accepted; the HTTP/2 stack answers pings itself.
    #[arg(long, value_name = "N")]
    pub grpc_http2_max_pings_without_data: Option<String>,
    /// Accepted; the HTTP/2 stack answers pings itself.
    #[arg(long, value_name = "MS")]
    pub grpc_http2_min_recv_ping_interval_without_data: Option<String>,
    /// Accepted; the HTTP/2 stack answers pings itself.
    #[arg(long, value_name = "N")]
    pub grpc_http2_max_ping_strikes: Option<String>,
    /// Accepted; an aged connection closes after its requests finish.
    #[arg(long, value_name = "MS")]
    pub grpc_max_connection_age_grace: Option<String>,
    /// Accepted; responses are not pooled.
    #[arg(long, value_name = "N")]
    pub grpc_infer_allocation_pool_size: Option<String>,

    /// SO_REUSEPORT on the HTTP port, so several servers can share it.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub reuse_http_port: bool,
    /// SO_REUSEPORT on the gRPC port.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub reuse_grpc_port: bool,

    /// Times a failed model load is retried before the model is marked unavailable.
    #[arg(long, value_name = "N")]
    pub model_load_retry_count: Option<u32>,

    // The trace flags Triton had before --trace-config.
    /// Old spelling of --trace-config file=PATH.
    #[arg(long, value_name = "PATH")]
    pub trace_file: Option<String>,
    /// Old spelling of --trace-config level=LEVEL (repeatable).
    #[arg(long, value_name = "LEVEL")]
    pub trace_level: Vec<String>,
    /// Old spelling of --trace-config rate=N.
    #[arg(long, value_name = "N")]
    pub trace_rate: Option<String>,
    /// Old spelling of --trace-config count=N.
    #[arg(long, value_name = "N")]
    pub trace_count: Option<String>,
    /// Old spelling of --trace-config log-frequency=N.
    #[arg(long, value_name = "N")]
    pub trace_log_frequency: Option<String>,

    // Nothing to act on here: accepted, each with a note in the log.
    /// Accepted; despina's backends are built in.
    #[arg(long, value_name = "PATH")]
    pub backend_directory: Option<String>,
    /// Accepted; there are no repository agents.
    #[arg(long, value_name = "PATH")]
    pub repoagent_directory: Option<String>,
    /// Accepted; the local response cache is built in.
    #[arg(long, value_name = "PATH")]
    pub cache_directory: Option<String>,
    /// `[backend,]setting=value`: default-max-batch-size is used, other settings are noted.
    #[arg(long, value_name = "BACKEND,SETTING=VALUE")]
    pub backend_config: Vec<String>,
    /// Accepted; memory is managed by each backend's runtime.
    #[arg(long, value_name = "BYTES")]
    pub pinned_memory_pool_byte_size: Option<String>,
    /// Accepted; memory is managed by each backend's runtime.
    #[arg(long, value_name = "GPU:BYTES")]
    pub cuda_memory_pool_byte_size: Vec<String>,
    /// Accepted; memory is managed by each backend's runtime.
    #[arg(long, value_name = "GPU:BYTES")]
    pub cuda_virtual_address_size: Vec<String>,
    /// Accepted; GPUs are used as their runtime finds them.
    #[arg(long, value_name = "CAPABILITY")]
    pub min_supported_compute_capability: Option<String>,
    /// Accepted; memory is managed by each backend's runtime.
    #[arg(long, value_name = "BOOL")]
    pub enable_peer_access: Option<String>,
    /// Accepted; instances are not pinned to NUMA nodes.
    #[arg(long, value_name = "POLICY")]
    pub host_policy: Vec<String>,
    /// Accepted; memory is managed by each backend's runtime.
    #[arg(long, value_name = "GPU:FRACTION")]
    pub model_load_gpu_limit: Vec<String>,
    /// Accepted; one async runtime serves every connection.
    #[arg(long, value_name = "N")]
    pub http_thread_count: Option<String>,
    /// Accepted; each version loads on its own thread.
    #[arg(long, value_name = "N")]
    pub model_load_thread_count: Option<String>,
    /// Accepted; there is no buffer manager.
    #[arg(long, value_name = "N")]
    pub buffer_manager_thread_count: Option<String>,

    // Services and features despina does not have: refused when switched on.
    /// Refused when true: there is no SageMaker endpoint.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub allow_sagemaker: bool,
    /// Accepted while the SageMaker endpoint is off.
    #[arg(long, value_name = "PORT")]
    pub sagemaker_port: Option<String>,
    /// Accepted while the SageMaker endpoint is off.
    #[arg(long, value_name = "RANGE")]
    pub sagemaker_safe_port_range: Option<String>,
    /// Accepted while the SageMaker endpoint is off.
    #[arg(long, value_name = "N")]
    pub sagemaker_thread_count: Option<String>,
    /// Refused when true: there is no Vertex AI endpoint.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub allow_vertex_ai: bool,
    /// Accepted while the Vertex AI endpoint is off.
    #[arg(long, value_name = "PORT")]
    pub vertex_ai_port: Option<String>,
    /// Accepted while the Vertex AI endpoint is off.
    #[arg(long, value_name = "N")]
    pub vertex_ai_thread_count: Option<String>,
    /// Accepted while the Vertex AI endpoint is off.
    #[arg(long, value_name = "MODEL")]
    pub vertex_ai_default_model: Option<String>,
    /// off, or execution_count: instances execute only while holding the resources their
    /// instance group's `rate_limiter` names.
    #[arg(long, value_name = "MODE")]
    pub rate_limit: Option<String>,
    /// A resource's count, `<name>:<count>[:<device>]` (default: the most any instance needs).
    #[arg(long, value_name = "NAME:COUNT[:DEVICE]")]
    pub rate_limit_resource: Vec<String>,
    /// Refused when true: model names are unique across repositories.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub model_namespacing: bool,
    /// Refused: headers are not forwarded as request parameters.
    #[arg(long, value_name = "REGEX")]
    pub http_header_forward_pattern: Option<String>,
    /// Refused: headers are not forwarded as request parameters.
    #[arg(long, value_name = "REGEX")]
    pub grpc_header_forward_pattern: Option<String>,
    /// Use `<model>/configs/<NAME>.pbtxt` instead of `config.pbtxt` where a model has one.
    #[arg(long, value_name = "NAME", value_parser = config_name)]
    pub model_config_name: Option<String>,
}

/// A `--model-config-name`: one file name, without spaces or folders.
pub fn config_name(v: &str) -> Result<String, String> {
    if v.is_empty()
        || v.contains(char::is_whitespace)
        || v.contains(['/', '\\'])
        || v.starts_with('.')
    {
        return Err(format!(
            "'{v}' is not a config name (a file name under <model>/configs/, without spaces)"
        ));
    }
    Ok(v.to_string())
}

/// What the Triton flags come to.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The old trace flags as `--trace-config` settings (placed before the explicit ones).
    pub trace_config: Vec<String>,
    pub grpc: GrpcTransport,
    /// TLS for the gRPC port alone (`--grpc-use-ssl`).
    pub grpc_tls: Option<TlsFiles>,
    /// `--backend-config [onnxruntime,]default-max-batch-size=N`.
    pub default_max_batch_size: Option<i32>,
    /// `--rate-limit=execution_count`: the `--rate-limit-resource` values.
    pub rate_limit_resources: Option<Vec<String>>,
    /// One line per accepted flag that changes nothing here, for the log.
    pub notes: Vec<String>,
}

impl TritonFlags {
    pub fn resolve(&self) -> Result<Resolved, String> {
        self.refuse_missing_features()?;
        let mut out = Resolved::default();
        let mut trace = |key: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.trace_config.push(format!("{key}={v}"));
            }
        };
        trace("file", &self.trace_file);
        trace("rate", &self.trace_rate);
        trace("count", &self.trace_count);
        trace("log-frequency", &self.trace_log_frequency);
        if !self.trace_level.is_empty() {
            out.trace_config
                .push(format!("level={}", self.trace_level.join(",")));
        }

        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        out.grpc.keepalive_time = ms(self.grpc_keepalive_time);
        out.grpc.keepalive_timeout = ms(self.grpc_keepalive_timeout);
        out.grpc.max_connection_age = ms(self.grpc_max_connection_age);
        out.grpc.compress_responses = match self.grpc_infer_response_compression_level.as_deref() {
            None | Some("none") => false,
            Some("low" | "medium" | "high") => true,
            Some(other) => {
                return Err(format!(
                    "--grpc-infer-response-compression-level '{other}': expected none, low, medium or high"
                ));
            }
        };

        if self.grpc_use_ssl || self.grpc_use_ssl_mutual {
            let (Some(cert), Some(key)) = (&self.grpc_server_cert, &self.grpc_server_key) else {
                return Err("--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key".into());
            };
            if self.grpc_use_ssl_mutual && self.grpc_root_cert.is_none() {
                return Err("--grpc-use-ssl-mutual needs --grpc-root-cert".into());
            }
            out.grpc_tls = Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self
                    .grpc_root_cert
                    .clone()
                    .filter(|_| self.grpc_use_ssl_mutual),
            });
        }
        out.notes = self.notes();
        match self.rate_limit.as_deref() {
            None | Some("off") => {
                if !self.rate_limit_resource.is_empty() {
                    out.notes.push(
                        "--rate-limit-resource: accepted, nothing to do here: the rate limiter is off (--rate-limit=execution_count turns it on)".into(),
                    );
                }
            }
            Some("execution_count") => {
                out.rate_limit_resources = Some(self.rate_limit_resource.clone());
            }
            Some(other) => {
                return Err(format!(
                    "--rate-limit '{other}': expected off or execution_count"
                ));
            }
        }
        for flag in &self.backend_config {
            let (backend, setting) = match flag.split_once(',') {
                Some((b, s)) if !b.contains('=') => (Some(b), s),
                _ => (None, flag.as_str()),
            };
            let (key, value) = setting.split_once('=').ok_or_else(|| {
                format!("--backend-config '{flag}': expected [<backend>,]<setting>=<value>")
            })?;
            if key == "default-max-batch-size" && matches!(backend, None | Some("onnxruntime")) {
                let n = value
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| {
                        format!("--backend-config '{flag}': default-max-batch-size must be a count")
                    })?;
                out.default_max_batch_size = Some(n);
            } else {
                out.notes.push(format!(
                    "--backend-config {flag}: accepted, nothing to do here: despina reads backend settings from each model's config `parameters`"
                ));
            }
        }
        Ok(out)
    }

    fn refuse_missing_features(&self) -> Result<(), String> {
        let refuse = |what: &str| Err(format!("{what} is not available in despina"));
        if self.allow_sagemaker {
            return refuse("--allow-sagemaker (the SageMaker endpoint)");
        }
        if self.allow_vertex_ai {
            return refuse("--allow-vertex-ai (the Vertex AI endpoint)");
        }
        if self.model_namespacing {
            return refuse("--model-namespacing (models of the same name in several repositories)");
        }
        if self.http_header_forward_pattern.is_some() || self.grpc_header_forward_pattern.is_some()
        {
            return refuse("--http/grpc-header-forward-pattern (headers as request parameters)");
        }
        Ok(())
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let mut note = |flag: &str, given: bool, why: &str| {
            if given {
                notes.push(format!("--{flag}: accepted, nothing to do here: {why}"));
            }
        };
        let builtin = "despina's backends are built in";
        note(
            "backend-directory",
            self.backend_directory.is_some(),
            builtin,
        );
        note(
            "repoagent-directory",
            self.repoagent_directory.is_some(),
            "despina has no repository agents",
        );
        note(
            "cache-directory",
            self.cache_directory.is_some(),
            "the local response cache is built in",
        );
        let gpu_memory = "GPU and pinned memory are managed by each backend's runtime";
        note(
            "pinned-memory-pool-byte-size",
            self.pinned_memory_pool_byte_size.is_some(),
            gpu_memory,
        );
        note(
            "cuda-memory-pool-byte-size",
            !self.cuda_memory_pool_byte_size.is_empty(),
            gpu_memory,
        );
        note(
            "cuda-virtual-address-size",
            !self.cuda_virtual_address_size.is_empty(),
            gpu_memory,
        );
        note(
            "enable-peer-access",
            self.enable_peer_access.is_some(),
            gpu_memory,
        );
        note(
            "model-load-gpu-limit",
            !self.model_load_gpu_limit.is_empty(),
            gpu_memory,
        );
        note(
            "min-supported-compute-capability",
            self.min_supported_compute_capability.is_some(),
            "GPUs are used as their runtime finds them",
        );
        note(
            "host-policy",
            !self.host_policy.is_empty(),
            "instances are not pinned to NUMA nodes",
        );
        let threads = "despina's async runtime serves every connection and loads each version on its own thread";
        note(
            "http-thread-count",
            self.http_thread_count.is_some(),
            threads,
        );
        note(
            "model-load-thread-count",
            self.model_load_thread_count.is_some(),
            threads,
        );
        note(
            "buffer-manager-thread-count",
            self.buffer_manager_thread_count.is_some(),
            threads,
        );
        note(
            "grpc-infer-allocation-pool-size",
            self.grpc_infer_allocation_pool_size.is_some(),
            "gRPC responses are not pooled",
        );
        let pings = "the HTTP/2 stack answers pings itself and does not police them";
        note(
            "grpc-keepalive-permit-without-calls",
            self.grpc_keepalive_permit_without_calls.is_some(),
            pings,
        );
        note(
            "grpc-http2-max-pings-without-data",
            self.grpc_http2_max_pings_without_data.is_some(),
            pings,
        );
        note(
            "grpc-http2-min-recv-ping-interval-without-data",
            self.grpc_http2_min_recv_ping_interval_without_data
                .is_some(),
            pings,
        );
        note(
            "grpc-http2-max-ping-strikes",
            self.grpc_http2_max_ping_strikes.is_some(),
            pings,
        );
        note(
            "grpc-max-connection-age-grace",
            self.grpc_max_connection_age_grace.is_some(),
            "an aged connection closes gracefully, after its requests finish",
        );
        let off = "its service is off";
        for (flag, v) in [
            ("sagemaker-port", &self.sagemaker_port),
            ("sagemaker-safe-port-range", &self.sagemaker_safe_port_range),
            ("sagemaker-thread-count", &self.sagemaker_thread_count),
            ("vertex-ai-port", &self.vertex_ai_port),
            ("vertex-ai-thread-count", &self.vertex_ai_thread_count),
            ("vertex-ai-default-model", &self.vertex_ai_default_model),
        ] {
            note(flag, v.is_some(), off);
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use clap::Parser;

    fn serve(args: &[&str]) -> Result<super::Resolved, String> {
        let mut argv = vec!["despina", "serve", "--model-repository", "/models"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Serve(s) = cli.command else {
            unreachable!()
        };
        s.triton.resolve()
    }

    #[test]
    fn a_triton_command_line_is_accepted() {
        let r = serve(&[
            "--id=prod-1",
            "--backend-directory=/opt/tritonserver/backends",
            "--pinned-memory-pool-byte-size=268435456",
            "--cuda-memory-pool-byte-size=0:67108864",
            "--backend-config=onnxruntime,enable-global-threadpool=1",
            "--backend-config=default-max-batch-size=16",
            "--grpc-keepalive-time=10000",
            "--grpc-keepalive-timeout=2000",
            "--grpc-http2-max-pings-without-data=0",
            "--grpc-infer-response-compression-level=high",
            "--rate-limit=off",
            "--allow-sagemaker=false",
            "--trace-file=/tmp/t.json",
            "--trace-level=TIMESTAMPS",
            "--trace-level=TENSORS",
            "--trace-rate=100",
        ])
        .unwrap();
        assert_eq!(
            r.trace_config,
            ["file=/tmp/t.json", "rate=100", "level=TIMESTAMPS,TENSORS"]
        );
        assert_eq!(
            r.grpc.keepalive_time,
            Some(std::time::Duration::from_secs(10))
        );
        assert_eq!(
            r.grpc.keepalive_timeout,
            Some(std::time::Duration::from_secs(2))
        );
        assert!(r.grpc.compress_responses);
        assert!(r.grpc_tls.is_none());
        assert_eq!(r.default_max_batch_size, Some(16));
        let flags: Vec<&str> = r
            .notes
            .iter()
            .map(|n| n.split(':').next().unwrap())
            .collect();
        assert_eq!(
            flags,
            [
                "--backend-directory",
                "--pinned-memory-pool-byte-size",
                "--cuda-memory-pool-byte-size",
                "--grpc-http2-max-pings-without-data",
                "--backend-config onnxruntime,enable-global-threadpool=1"
            ]
        );
    }

    #[test]
    fn grpc_tls_in_tritons_spelling() {
        let r = serve(&[
            "--grpc-use-ssl-mutual=true",
            "--grpc-server-cert=c.pem",
            "--grpc-server-key=k.pem",
            "--grpc-root-cert=ca.pem",
        ])
        .unwrap();
        let tls = r.grpc_tls.unwrap();
        assert_eq!(tls.client_ca.unwrap().to_str(), Some("ca.pem"));
        let plain = serve(&[
            "--grpc-use-ssl",
            "--grpc-server-cert=c.pem",
            "--grpc-server-key=k.pem",
            "--grpc-root-cert=ca.pem",
        ])
        .unwrap()
        .grpc_tls
        .unwrap();
        assert!(plain.client_ca.is_none());
        assert!(
            serve(&["--grpc-use-ssl=true"])
                .unwrap_err()
                .contains("--grpc-server-cert")
        );
        assert!(
            serve(&[
                "--grpc-use-ssl-mutual",
                "--grpc-server-cert=c",
                "--grpc-server-key=k"
            ])
            .unwrap_err()
            .contains("--grpc-root-cert")
        );
    }

    #[test]
    fn missing_services_are_refused_with_the_reason() {
        for (args, says) in [
            (&["--allow-sagemaker=true"][..], "SageMaker"),
            (&["--allow-vertex-ai"][..], "Vertex AI"),
            (
                &["--rate-limit=fastest"][..],
                "expected off or execution_count",
            ),
            (&["--model-namespacing=true"][..], "namespacing"),
            (&["--http-header-forward-pattern=x-.*"][..], "header"),
            (&["--model-config-name=../x"][..], "is not a config name"),
            (
                &["--backend-config=default-max-batch-size=-2"][..],
                "must be a count",
            ),
            (
                &["--grpc-infer-response-compression-level=max"][..],
                "none, low, medium or high",
            ),
        ] {
            let e = serve(args).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }
}
