//! `strangler ctl`: the admin API from the shell, with readable output and exit codes
//! (0 done, 1 the API could not be reached or failed, 2 bad usage, 3 the API refused).

use std::process::ExitCode;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Flags of `strangler ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The admin listener
    #[arg(
        long,
        env = "STRANGLER_ADMIN_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    pub admin: String,
    /// Bearer token (viewer for reads, operator for changes)
    #[arg(long, env = "STRANGLER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Contexts with their state, weight and routes
    Status,
    /// The services
    Services,
    /// The routes (of one context with --context)
    Routes {
        #[arg(long)]
        context: Option<String>,
    },
    /// The audit log, newest first
    Audit {
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Move a context one state forward
    Promote {
        context: String,
        #[arg(long)]
        reason: String,
        /// Move the write owner even with mirrored writes toward it still waiting (what is
        /// left behind is recorded in the audit log)
        #[arg(long)]
        force: bool,
    },
    /// Make the new service the owner of a context's writes (canary only)
    Cutover {
        context: String,
        #[arg(long)]
        reason: String,
        /// Move the write owner even with mirrored writes toward it still waiting (what is
        /// left behind is recorded in the audit log)
        #[arg(long)]
        force: bool,
    },
    /// Return a context to legacy
    Rollback {
        context: String,
        #[arg(long)]
        reason: String,
        /// Move the write owner even with mirrored writes toward it still waiting (what is
        /// left behind is recorded in the audit log)
        #[arg(long)]
        force: bool,
    },
    /// Set a canary's weight, in basis points (2500 = 25 %)
    Weight {
        context: String,
        basis_points: u16,
        #[arg(long)]
        reason: String,
    },
    /// Show, or with LEVEL and --reason change, the log filter
    LogLevel {
        level: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
}

struct Api {
    base: String,
    token: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

enum Failure {
    Unreachable(String),
    Refused(StatusCode, Value),
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base.trim_end_matches('/')));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Full::new(Bytes::from(b.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| Failure::Unreachable(format!("{}: {e}", self.base)))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(Failure::Refused(status, value))
        }
    }

    /// Applies a change based on the catalog's current version.
    async fn change(&self, path: &str, mut body: Value) -> Result<Value, Failure> {
        let catalog = self.call(Method::GET, "/api/v1/catalog", None).await?;
        body["base_version"] = catalog["version"].clone();
        self.call(Method::POST, path, Some(body)).await
    }
}

pub fn run(args: CtlArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let with_token = args.token.is_some();
    let api = Api {
        base: args.admin.clone(),
        token: args.token.clone(),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    match runtime.block_on(execute(&api, args.command)) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(Failure::Unreachable(why)) => {
            eprintln!("error: the admin API is unreachable: {why}\nhint: is `strangler serve` running? pass --admin URL");
            ExitCode::FAILURE
        }
        Err(Failure::Refused(status, problem)) => {
            let detail = problem["detail"].as_str().unwrap_or("");
            let field = problem["field"]
                .as_str()
                .map(|f| format!(" (field: {f})"))
                .unwrap_or_default();
            eprintln!(
                "refused ({}): {}{field}\n{detail}",
                status.as_u16(),
                problem["title"].as_str().unwrap_or("")
            );
            if matches!(status.as_u16(), 401 | 403) && !with_token {
                eprintln!(
                    "hint: no token was sent; pass --token TOKEN or set STRANGLER_TOKEN \
                     (the viewer token reads, the operator token changes)"
                );
            }
            if status.is_server_error() {
                ExitCode::FAILURE
            } else {
                ExitCode::from(3)
            }
        }
    }
}

async fn execute(api: &Api, command: CtlCommand) -> Result<String, Failure> {
    match command {
        CtlCommand::Status => {
            let c = api.call(Method::GET, "/api/v1/catalog", None).await?;
            // The contexts as the API shows them: with their write owner.
            let contexts = api.call(Method::GET, "/api/v1/contexts", None).await?;
            let mut out = format!("catalog version {}\n", c["version"]);
            out.push_str(&format!(
                "{:<20} {:<10} {:>8} {:<7} {:<20} {:>6}\n",
                "CONTEXT", "STATE", "WEIGHT", "OWNER", "TARGET", "ROUTES"
            ));
            let routes = c["routes"].as_object().cloned().unwrap_or_default();
            for ctx in contexts["items"].as_array().cloned().unwrap_or_default() {
                let name = ctx["name"].as_str().unwrap_or("?").to_owned();
                let n = routes
                    .values()
                    .filter(|r| r["context"] == name.as_str())
                    .count();
                let weight = ctx["weight"].as_u64().unwrap_or(0);
                out.push_str(&format!(
                    "{:<20} {:<10} {:>7}% {:<7} {:<20} {:>6}\n",
                    name,
                    ctx["state"].as_str().unwrap_or("?"),
                    format!("{:.2}", weight as f64 / 100.0),
                    ctx["owner"].as_str().unwrap_or("?"),
                    ctx["target"].as_str().unwrap_or("?"),
                    n
                ));
            }
            Ok(out.trim_end().to_owned())
        }
        CtlCommand::Services => {
            let v = api.call(Method::GET, "/api/v1/services", None).await?;
            let mut out = format!("{:<20} URLS\n", "SERVICE");
            for s in v["items"].as_array().cloned().unwrap_or_default() {
                let urls: Vec<&str> = s["urls"]
                    .as_array()
                    .map(|u| u.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{:<20} {}\n",
                    s["name"].as_str().unwrap_or("?"),
                    urls.join(", ")
                ));
            }
            Ok(out.trim_end().to_owned())
        }
        CtlCommand::Routes { context } => {
            let path = match &context {
                Some(c) => format!("/api/v1/routes?context={c}"),
                None => "/api/v1/routes".to_owned(),
            };
            let v = api.call(Method::GET, &path, None).await?;
            let mut out = format!("{:<18} {:<16} {:<12} PATH\n", "ID", "CONTEXT", "METHODS");
            for r in v["items"].as_array().cloned().unwrap_or_default() {
                let methods: Vec<&str> = r["methods"]
                    .as_array()
                    .map(|m| m.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{:<18} {:<16} {:<12} {}\n",
                    r["id"].as_str().unwrap_or("?"),
                    r["context"].as_str().unwrap_or("?"),
                    if methods.is_empty() {
                        "*".to_owned()
                    } else {
                        methods.join(",")
                    },
                    r["path"].as_str().unwrap_or("?")
                ));
            }
            Ok(out.trim_end().to_owned())
        }
        CtlCommand::Audit { target, limit } => {
            let mut path = format!("/api/v1/audit?limit={limit}");
            if let Some(t) = target {
                path.push_str(&format!("&target={t}"));
            }
            let v = api.call(Method::GET, &path, None).await?;
            let mut out = String::new();
            for e in v["items"].as_array().cloned().unwrap_or_default() {
                out.push_str(&format!(
                    "#{} v{} {} {} {} — {}\n",
                    e["id"],
                    e["version"],
                    e["actor"].as_str().unwrap_or("?"),
                    e["action"].as_str().unwrap_or("?"),
                    e["target"].as_str().unwrap_or("?"),
                    e["reason"].as_str().unwrap_or("")
                ));
            }
            Ok(if out.is_empty() {
                "no audit entries".to_owned()
            } else {
                out.trim_end().to_owned()
            })
        }
        CtlCommand::Promote {
            context,
            reason,
            force,
        } => {
            let v = transition(api, &context, "promote", &reason, force).await?;
            Ok(format!(
                "{context} is now {} (catalog version {})",
                v["item"]["state"].as_str().unwrap_or("?"),
                v["version"]
            ))
        }
        CtlCommand::Cutover {
            context,
            reason,
            force,
        } => {
            let v = transition(api, &context, "cutover", &reason, force).await?;
            Ok(format!(
                "{context} is cut over: {} owns its writes (catalog version {})",
                v["item"]["owner"].as_str().unwrap_or("?"),
                v["version"]
            ))
        }
        CtlCommand::Rollback {
            context,
            reason,
            force,
        } => {
            let v = transition(api, &context, "rollback", &reason, force).await?;
            Ok(format!(
                "{context} is back on {} (catalog version {})",
                v["item"]["state"].as_str().unwrap_or("?"),
                v["version"]
            ))
        }
        CtlCommand::Weight {
            context,
            basis_points,
            reason,
        } => {
            let v = api
                .change(
                    &format!("/api/v1/contexts/{context}/weight"),
                    json!({ "weight": basis_points, "reason": reason }),
                )
                .await?;
            Ok(format!(
                "{context}: {:.2} % of sticky keys on the new side (catalog version {})",
                f64::from(basis_points) / 100.0,
                v["version"]
            ))
        }
        CtlCommand::LogLevel { level, reason } => match level {
            None => {
                let v = api.call(Method::GET, "/api/v1/log-level", None).await?;
                Ok(v["level"].as_str().unwrap_or("?").to_owned())
            }
            Some(level) => {
                let v = api
                    .call(
                        Method::PUT,
                        "/api/v1/log-level",
                        Some(json!({ "level": level, "reason": reason })),
                    )
                    .await?;
                Ok(format!(
                    "log level {} (was {})",
                    v["level"].as_str().unwrap_or("?"),
                    v["previous"].as_str().unwrap_or("?")
                ))
            }
        },
    }
}

/// Posts a state action (`promote`, `cutover`, `rollback`) for `context`; the API's answer.
async fn transition(
    api: &Api,
    context: &str,
    action: &str,
    reason: &str,
    force: bool,
) -> Result<Value, Failure> {
    api.change(
        &format!("/api/v1/contexts/{context}/{action}"),
        json!({ "reason": reason, "force": force }),
    )
    .await
}
