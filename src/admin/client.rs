//! `oxisd admin ...`: the command line side of the admin API. It reads the same configuration
//! as the server to find the admin listener and its token, makes one request and prints the
//! answer.

use std::path::{Path, PathBuf};

use super::PREFIX;
use crate::config::Config;
use crate::http::percent_decode;
use crate::threepid::params::url_encode;

/// Usage of `oxisd admin`.
pub const USAGE: &str = "\
oxisd admin [--config FILE] COMMAND      talk to the running server's admin listener (admin.*)
                                        (--config=FILE and -c FILE work too, anywhere)

COMMANDS:
    stats                                   record counts, disk use, outbox, uptime
    metrics                                 the Prometheus metrics
    bindings list [--limit N] [--after MEDIUM ADDRESS]
    bindings show MEDIUM ADDRESS | --mxid MXID
    bindings delete MEDIUM ADDRESS | --mxid MXID
    sessions list [--limit N]               validation sessions (no secrets shown)
    invites list [--limit N]
    invites delete TOKEN
    export MEDIUM ADDRESS | --mxid MXID      everything stored about a 3PID or a user
    erase MEDIUM ADDRESS | --mxid MXID --yes erase it (bindings, sessions, invites, tokens)
    keys list
    keys rotate                             a new signing key; old keys keep answering
    backup DIR                              a consistent copy of the store and the key
    import sydent|mxisd FILE [--batch-size N] [--dry-run]
                                            bindings from a sydent, mxisd or ma1sd SQLite
                                            database (read here, as you); see docs/MIGRATION.md
";

/// Query pairs.
type Query = Vec<(&'static str, String)>;
/// A request to make: method, path below the admin prefix, query pairs.
type Call = (&'static str, &'static str, Query);

/// The arguments after `admin`: the command's words and the options, wherever they stand.
#[derive(Debug, Default)]
pub struct Args {
    /// `-c FILE`, `--config FILE`, `--config=FILE`.
    pub config: Option<PathBuf>,
    /// `-h`, `--help`.
    pub help: bool,
    /// The command and its operands, in order.
    pub words: Vec<String>,
    /// `--limit N`.
    pub limit: Option<String>,
    /// `--after MEDIUM ADDRESS`.
    pub after: Option<(String, String)>,
    /// `--mxid MXID`.
    pub mxid: Option<String>,
    /// `--yes`.
    pub yes: bool,
    /// `--batch-size N` (import).
    pub batch_size: Option<String>,
    /// `--dry-run` (import).
    pub dry_run: bool,
    /// The options given, to refuse those the command does not take.
    given: Vec<&'static str>,
}

impl Args {
    /// Whether the usage is asked for: no command, `help`, `-h` or `--help`.
    pub fn wants_help(&self) -> bool {
        self.help || self.words.is_empty() || self.words[0] == "help"
    }

    /// An error unless every option given is one of `allowed` (the command's own).
    pub fn only(&self, command: &str, allowed: &[&str]) -> Result<(), String> {
        match self.given.iter().find(|o| !allowed.contains(o)) {
            Some(option) => Err(format!(
                "{option} is not an option of '{command}' (usage below)\n\n{USAGE}"
            )),
            None => Ok(()),
        }
    }
}

/// Reads the arguments after `admin` from `parser` (the parser of the whole command line).
pub fn parse_args(parser: &mut lexopt::Parser) -> Result<Args, String> {
    use crate::cli::text_value;
    use lexopt::prelude::*;
    let mut args = Args::default();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let name = match arg {
            Short('c') | Long("config") => {
                args.config = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?));
                continue;
            }
            Short('h') | Long("help") => {
                args.help = true;
                continue;
            }
            Long("limit") => {
                args.limit = Some(text_value(parser)?);
                "--limit"
            }
            Long("after") => {
                let medium = text_value(parser)?;
                let address = text_value(parser).map_err(|_| "--after needs MEDIUM ADDRESS")?;
                args.after = Some((medium, address));
                "--after"
            }
            Long("mxid") => {
                args.mxid = Some(text_value(parser)?);
                "--mxid"
            }
            Long("yes") => {
                args.yes = true;
                "--yes"
            }
            Long("batch-size") => {
                args.batch_size = Some(text_value(parser)?);
                "--batch-size"
            }
            Long("dry-run") => {
                args.dry_run = true;
                "--dry-run"
            }
            Value(word) => {
                args.words.push(word.string().map_err(|e| e.to_string())?);
                continue;
            }
            other => {
                return Err(crate::cli::unexpected(
                    other,
                    "(oxisd admin help lists the commands and their options)",
                ));
            }
        };
        args.given.push(name);
    }
    Ok(args)
}

/// Turns the arguments after `admin` into a request.
pub fn parse(args: &Args) -> Result<Call, String> {
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    let limit = || -> Query {
        args.limit
            .clone()
            .map(|l| vec![("limit", l)])
            .unwrap_or_default()
    };
    // `MEDIUM ADDRESS` or `--mxid MXID` after the first `skip` words.
    let subject = |skip: usize| -> Result<(&'static str, Query), String> {
        match (&args.mxid, &words[skip..]) {
            (Some(mxid), []) => Ok(("user", vec![("mxid", mxid.clone())])),
            (None, [m, a]) => Ok((
                "threepid",
                vec![("medium", m.to_string()), ("address", a.to_string())],
            )),
            _ => Err("give MEDIUM ADDRESS (e.g. email alice@example.org) or --mxid MXID".into()),
        }
    };
    let path_of = |kind: &str, a: &'static str, b: &'static str| if kind == "user" { b } else { a };
    let command = words.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    let (allowed, call): (&[&str], Call) = match words.as_slice() {
        ["stats"] => (&[], ("GET", "/stats", vec![])),
        ["metrics"] => (&[], ("GET", "/metrics", vec![])),
        ["bindings", "list"] => {
            let mut q = limit();
            if let Some((m, a)) = &args.after {
                q.push(("after_medium", m.clone()));
                q.push(("after_address", a.clone()));
            }
            (&["--limit", "--after"], ("GET", "/bindings", q))
        }
        ["bindings", "show", ..] => {
            let (kind, q) = subject(2)?;
            (
                &["--mxid"],
                (
                    "GET",
                    path_of(kind, "/bindings/threepid", "/bindings/user"),
                    q,
                ),
            )
        }
        ["bindings", "delete", ..] => {
            let (kind, q) = subject(2)?;
            (
                &["--mxid"],
                (
                    "DELETE",
                    path_of(kind, "/bindings/threepid", "/bindings/user"),
                    q,
                ),
            )
        }
        ["sessions", "list"] => (&["--limit"], ("GET", "/sessions", limit())),
        ["invites", "list"] => (&["--limit"], ("GET", "/invites", limit())),
        ["invites", "delete", token] => (
            &[],
            ("DELETE", "/invites", vec![("token", token.to_string())]),
        ),
        ["export", ..] => {
            let (kind, q) = subject(1)?;
            (
                &["--mxid"],
                ("GET", path_of(kind, "/export/threepid", "/export/user"), q),
            )
        }
        ["erase", ..] => {
            args.only("erase", &["--mxid", "--yes"])?;
            if !args.yes {
                return Err("erase deletes data for good: add --yes".into());
            }
            let (kind, q) = subject(1)?;
            (
                &["--mxid", "--yes"],
                ("POST", path_of(kind, "/erase/threepid", "/erase/user"), q),
            )
        }
        ["keys", "list"] => (&[], ("GET", "/keys", vec![])),
        ["keys", "rotate"] => (&[], ("POST", "/keys/rotate", vec![])),
        ["backup", dir] => {
            let dir =
                std::path::absolute(Path::new(dir)).map_err(|e| format!("backup: {dir}: {e}"))?;
            (
                &[],
                ("POST", "/backup", vec![("dir", dir.display().to_string())]),
            )
        }
        _ => return Err(format!("unknown admin command (usage below)\n\n{USAGE}")),
    };
    args.only(&command, allowed)?;
    Ok(call)
}

/// The admin listener, as the command line reaches it.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Client {
    /// From the configuration the server runs with; an error when the admin listener is off.
    pub fn new(config: &Config) -> Result<Client, String> {
        let admin = &config.admin;
        if !admin.enabled {
            return Err("the admin listener is off: set admin.enabled and admin.token in the configuration the server runs with".into());
        }
        let host = crate::util::url::bracketed(&admin.hostname);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(600)))
            .build()
            .into();
        Ok(Client {
            agent,
            base: format!("http://{host}:{}", admin.port),
            auth: format!("Bearer {}", admin.token.expose()),
        })
    }

    /// One request: `path` below the admin prefix (or `/metrics`), query pairs, and a JSON
    /// body for POST. Returns the status and the body, or why the listener cannot be reached.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        json: Option<&str>,
    ) -> Result<(u16, String), String> {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", url_encode(v)))
            .collect();
        let url = format!(
            "{}{}{path}{}{}",
            self.base,
            if path == "/metrics" { "" } else { PREFIX },
            if query.is_empty() { "" } else { "?" },
            query.join("&")
        );
        let auth = self.auth.as_str();
        let sent = match (method, json) {
            ("POST", Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", auth)
                .header("Content-Type", "application/json")
                .send(body),
            ("POST", None) => self
                .agent
                .post(&url)
                .header("Authorization", auth)
                .send_empty(),
            ("DELETE", _) => self.agent.delete(&url).header("Authorization", auth).call(),
            _ => self.agent.get(&url).header("Authorization", auth).call(),
        };
        let mut response = sent.map_err(|e| {
            format!(
                "cannot reach the admin listener at {}: {e} (is the server running with admin.enabled?)",
                percent_decode(url.split('?').next().unwrap_or(&url), false)
            )
        })?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Ok((status, body))
    }
}

/// Runs `oxisd admin ARGS` against the server configured by `config`; returns the exit code.
pub fn run(config: &Config, args: &Args) -> i32 {
    if args.words.first().is_some_and(|a| a == "import") {
        return crate::import::cli::run(config, args);
    }
    let (method, path, query) = match parse(args) {
        Ok(call) => call,
        Err(e) => {
            eprintln!("oxisd admin: {e}");
            return 2;
        }
    };
    let client = match Client::new(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oxisd admin: {e}");
            return 1;
        }
    };
    let (status, body) = match client.call(method, path, &query, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("oxisd admin: {e}");
            return 1;
        }
    };
    let parsed = serde_json::from_str::<serde_json::Value>(&body).ok();
    if !(200..300).contains(&status) {
        eprintln!(
            "oxisd admin: {}",
            failure_text(status, parsed.as_ref(), &body)
        );
        return 1;
    }
    let shown = parsed
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(body);
    println!("{shown}");
    0
}

/// A failed call as the operator reads it: `400 M_INVALID_PARAM: <reason>` for a Matrix
/// error body, else the status and the body as they came.
fn failure_text(status: u16, parsed: Option<&serde_json::Value>, body: &str) -> String {
    match parsed.map(|v| (v["errcode"].as_str(), v["error"].as_str())) {
        Some((Some(code), Some(error))) => format!("{status} {code}: {error}"),
        _ => format!("{status}: {}", body.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &str) -> Result<Args, String> {
        let mut parser = lexopt::Parser::from_args(words.split_whitespace());
        parse_args(&mut parser)
    }

    fn call(words: &str) -> Result<Call, String> {
        parse(&args(words)?)
    }

    #[test]
    fn commands_become_requests() {
        assert_eq!(call("stats").unwrap().1, "/stats");
        let (m, p, q) = call("bindings show email a@example.org").unwrap();
        assert_eq!((m, p), ("GET", "/bindings/threepid"));
        assert_eq!(
            q,
            [
                ("medium", "email".into()),
                ("address", "a@example.org".into())
            ]
        );
        let (m, p, q) = call("bindings delete --mxid @a:example.org").unwrap();
        assert_eq!((m, p), ("DELETE", "/bindings/user"));
        assert_eq!(q, [("mxid", "@a:example.org".into())]);
        assert_eq!(
            call("bindings list --limit 5").unwrap().2,
            [("limit", "5".into())]
        );
        assert!(call("erase email a@example.org").is_err());
        assert_eq!(
            call("erase email a@example.org --yes").unwrap().1,
            "/erase/threepid"
        );
        assert_eq!(call("keys rotate").unwrap().0, "POST");
        assert!(call("export").is_err());
        assert!(call("frobnicate").is_err());
        let (_, p, q) = call("bindings list --after=email a@example.org --limit=3").unwrap();
        assert_eq!(p, "/bindings");
        assert_eq!(
            q,
            [
                ("limit", "3".into()),
                ("after_medium", "email".into()),
                ("after_address", "a@example.org".into())
            ]
        );
    }

    #[test]
    fn options_anywhere_and_clear_errors() {
        let a = args("stats --config=/etc/oxisd/config.yaml").unwrap();
        assert_eq!(a.config, Some(PathBuf::from("/etc/oxisd/config.yaml")));
        let a = args("-c /x.yaml keys list").unwrap();
        assert_eq!(a.config, Some(PathBuf::from("/x.yaml")));
        assert_eq!(parse(&a).unwrap().1, "/keys");
        assert!(args("--help").unwrap().wants_help());
        assert!(args("").unwrap().wants_help());
        let e = args("stats --frob").unwrap_err();
        assert!(e.contains("unknown option '--frob'"), "{e}");
        let e = call("stats --limit 3").unwrap_err();
        assert!(e.starts_with("--limit is not an option of 'stats'"), "{e}");
        let e = call("erase --mxid @a:b --yes --limit 1").unwrap_err();
        assert!(e.starts_with("--limit is not an option of 'erase'"), "{e}");
        assert!(args("stats --config").unwrap_err().contains("--config"));
        assert!(
            args("bindings list --after email")
                .unwrap_err()
                .contains("--after")
        );
        assert!(call("bindings show email a@example.org extra").is_err());
        assert!(call("keys list now").is_err());
        assert!(args("erase --yes=no").is_err());
    }

    #[test]
    fn failures_show_the_errcode_and_the_reason() {
        let body = r#"{"errcode":"M_INVALID_PARAM","error":"/b/db exists already"}"#;
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            failure_text(400, Some(&v), body),
            "400 M_INVALID_PARAM: /b/db exists already"
        );
        assert_eq!(failure_text(502, None, "bad gateway\n"), "502: bad gateway");
    }
}
