//! Request paths, parsed the way Triton's HTTP server matches them (its regular expressions
//! `/v2/models/([^/]+)(?:/versions/([0-9]+))?(?:/(infer|...))?` and friends, matched whole).

/// What a path names. Model and region names are percent-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    ServerMetadata,
    Live,
    Ready,
    AllStats,
    Logging,
    Trace,
    Model {
        name: String,
        version: Option<String>,
        kind: ModelKind,
    },
    SystemShm {
        region: Option<String>,
        action: ShmAction,
    },
    CudaShm {
        region: Option<String>,
        action: ShmAction,
    },
    RepositoryIndex,
    RepositoryControl {
        repository: Option<String>,
        model: String,
        action: ControlAction,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Metadata,
    Ready,
    Infer,
    Generate,
    GenerateStream,
    Config,
    Stats,
    Trace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShmAction {
    Status,
    Register,
    Unregister,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlAction {
    Load,
    Unload,
}

/// Parses a request path; `None` is Triton's 404 "Not Found".
pub fn parse(path: &str) -> Option<Route> {
    match path {
        "/v2" => return Some(Route::ServerMetadata),
        "/v2/health/live" => return Some(Route::Live),
        "/v2/health/ready" => return Some(Route::Ready),
        "/v2/models/stats" => return Some(Route::AllStats),
        "/v2/logging" => return Some(Route::Logging),
        "/v2/trace/setting" => return Some(Route::Trace),
        _ => {}
    }
    let rest = path.strip_prefix("/v2/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    match segs[0] {
        "models" => model_route(&segs[1..]),
        "systemsharedmemory" => {
            shm_route(&segs[1..]).map(|(region, action)| Route::SystemShm { region, action })
        }
        "cudasharedmemory" => {
            shm_route(&segs[1..]).map(|(region, action)| Route::CudaShm { region, action })
        }
        "repository" => repository_route(&segs[1..]),
        _ => None,
    }
}

fn model_route(segs: &[&str]) -> Option<Route> {
    let (&name, rest) = segs.split_first()?;
    let (version, rest) = match rest {
        ["versions", v, tail @ ..] if v.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(v.to_string()), tail)
        }
        _ => (None, rest),
    };
    let kind = match rest {
        [] => ModelKind::Metadata,
        ["ready"] => ModelKind::Ready,
        ["infer"] => ModelKind::Infer,
        ["generate"] => ModelKind::Generate,
        ["generate_stream"] => ModelKind::GenerateStream,
        ["config"] => ModelKind::Config,
        ["stats"] => ModelKind::Stats,
        // Trace settings are per model, never per version.
        ["trace", "setting"] if version.is_none() => ModelKind::Trace,
        _ => return None,
    };
    Some(Route::Model {
        name: decode(name)?,
        version,
        kind,
    })
}

fn shm_route(segs: &[&str]) -> Option<(Option<String>, ShmAction)> {
    let (region, action) = match segs {
        [action] => (None, *action),
        ["region", region, action] => (Some(decode(region)?), *action),
        _ => return None,
    };
    let action = match action {
        "status" => ShmAction::Status,
        "register" => ShmAction::Register,
        "unregister" => ShmAction::Unregister,
        _ => return None,
    };
    Some((region, action))
}

fn repository_route(segs: &[&str]) -> Option<Route> {
    // `/v2/repository(?:/([^/]+))?/(index|models/([^/]+)/(load|unload))`
    let (repository, rest) = match segs {
        ["index"] | ["models", _, _] => (None, segs),
        [repo, rest @ ..] => (Some(decode(repo)?), rest),
        [] => return None,
    };
    match rest {
        ["index"] => Some(Route::RepositoryIndex),
        ["models", model, action] => {
            let action = match *action {
                "load" => ControlAction::Load,
                "unload" => ControlAction::Unload,
                _ => return None,
            };
            Some(Route::RepositoryControl {
                repository,
                model: decode(model)?,
                action,
            })
        }
        _ => None,
    }
}

/// Percent-decodes one path segment; `None` if the result is not UTF-8.
fn decode(seg: &str) -> Option<String> {
    if !seg.contains('%') {
        return Some(seg.to_string());
    }
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, version: Option<&str>, kind: ModelKind) -> Option<Route> {
        Some(Route::Model {
            name: name.into(),
            version: version.map(String::from),
            kind,
        })
    }

    #[track_caller]
    fn check(path: &str, want: Option<Route>) {
        assert_eq!(parse(path), want, "{path}");
    }

    #[test]
    fn paths_like_triton() {
        check("/v2", Some(Route::ServerMetadata));
        check("/v2/", None);
        check("/", None);
        check("/v1/models/simple", None);
        check("/v2/nope", None);
        check("/v2/health/live", Some(Route::Live));
        check("/v2/health/ready", Some(Route::Ready));
        check("/v2/health", None);
        check("/v2/models/stats", Some(Route::AllStats));
        check(
            "/v2/models/simple",
            model("simple", None, ModelKind::Metadata),
        );
        check("/v2/models/simple/", None);
        check(
            "/v2/models/simple/versions/1",
            model("simple", Some("1"), ModelKind::Metadata),
        );
        check(
            "/v2/models/simple/versions/12/infer",
            model("simple", Some("12"), ModelKind::Infer),
        );
        check("/v2/models/simple/versions/x/ready", None);
        check("/v2/models/simple/versions/-1/ready", None);
        check(
            "/v2/models/simple/ready",
            model("simple", None, ModelKind::Ready),
        );
        check(
            "/v2/models/simple/generate_stream",
            model("simple", None, ModelKind::GenerateStream),
        );
        check(
            "/v2/models/simple/config",
            model("simple", None, ModelKind::Config),
        );
        check(
            "/v2/models/simple/versions/1/stats",
            model("simple", Some("1"), ModelKind::Stats),
        );
        check(
            "/v2/models/simple/trace/setting",
            model("simple", None, ModelKind::Trace),
        );
        check("/v2/models/simple/versions/1/trace/setting", None);
        check("/v2/models/simple/bogus", None);
        check(
            "/v2/models/versions/ready",
            model("versions", None, ModelKind::Ready),
        );
        check(
            "/v2/models/a%20b/ready",
            model("a b", None, ModelKind::Ready),
        );
        check("/v2/models/a%ff/ready", None);
        check("/v2/models//ready", None);
        check("/v2/trace/setting", Some(Route::Trace));
        check("/v2/logging", Some(Route::Logging));
        check(
            "/v2/systemsharedmemory/status",
            Some(Route::SystemShm {
                region: None,
                action: ShmAction::Status,
            }),
        );
        check(
            "/v2/systemsharedmemory/region/r0/register",
            Some(Route::SystemShm {
                region: Some("r0".into()),
                action: ShmAction::Register,
            }),
        );
        check("/v2/systemsharedmemory/region/r0", None);
        check(
            "/v2/cudasharedmemory/unregister",
            Some(Route::CudaShm {
                region: None,
                action: ShmAction::Unregister,
            }),
        );
        check("/v2/repository/index", Some(Route::RepositoryIndex));
        check("/v2/repository/other/index", Some(Route::RepositoryIndex));
        check(
            "/v2/repository/models/simple/load",
            Some(Route::RepositoryControl {
                repository: None,
                model: "simple".into(),
                action: ControlAction::Load,
            }),
        );
        check(
            "/v2/repository/r/models/simple/unload",
            Some(Route::RepositoryControl {
                repository: Some("r".into()),
                model: "simple".into(),
                action: ControlAction::Unload,
            }),
        );
        check("/v2/repository/models/simple/reload", None);
        check("/v2/repository", None);
    }
}
