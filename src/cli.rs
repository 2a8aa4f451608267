//! The command line: `serve` (the default; `--new-signing-key` and `--accept-data-loss` are the
//! operator's decisions after a lost key file or a damaged journal, see `App::build_with`),
//! `check-config`, `admin`, `--version`, `--help`. One parser (`lexopt`) reads the whole line:
//! the options before the subcommand, the subcommand, and its own options (the admin commands'
//! in `admin::client`), so `--config FILE` and `--config=FILE` work everywhere.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::app::{App, StartOptions};
use crate::config::{CONFIG_ENV, Config};

const HELP: &str = "\
oxisd - a Matrix identity server

USAGE:
    oxisd [serve] [--config FILE] [--new-signing-key] [--accept-data-loss]
                                      run the server (the default)
    oxisd check-config [--config FILE]
                                      print the effective config (secrets masked) and exit;
                                      exits 1 with a message naming the key when it is invalid
    oxisd health [--config FILE]      ask the running server's /health (for container
                                      health checks); exits 0 when it answers 200
    oxisd admin [--config FILE] COMMAND
                                      administer the running server through its admin
                                      listener (oxisd admin help lists the commands)
    oxisd --version                   print the version
    oxisd --help                      print this help

Every subcommand takes --config FILE, --config=FILE or -c FILE, before or after its name.
The config file comes from --config, else from $OXISD_CONFIG. Without either, oxisd runs on
its embedded defaults: it listens on 127.0.0.1:8090 as 'localhost', keeps its data in
./oxisd-data, creates a signing key there on first run, and writes notifications to the log
instead of sending them. See config.example.yaml for every setting.

SERVE FLAGS (for one start after a loss; see docs/TROUBLESHOOTING.md):
    --new-signing-key     the key file (key.path) is lost for good and cannot be restored from
                          a backup: make a new signing key under the next free id
                          (ed25519:N); the public keys the store recorded keep answering
                          /pubkey/isvalid. Without it, oxisd refuses to start on a store that
                          is not new when the key file is missing.
    --accept-data-loss    start although the store lost writes it had acknowledged (a damaged
                          journal); without it, oxisd logs what was lost and refuses to start,
                          so that a backup can be restored first.
";

enum Command {
    Serve(Option<PathBuf>, StartOptions),
    Admin(Option<PathBuf>, crate::admin::client::Args),
    CheckConfig(Option<PathBuf>),
    Health(Option<PathBuf>),
    Version,
    Help,
}

/// An argument no parser takes, as the operator reads it: `unknown option '--x'` or
/// `unexpected argument 'x'`, then `context` (e.g. where to find the usage).
pub(crate) fn unexpected(arg: lexopt::Arg<'_>, context: &str) -> String {
    match arg {
        lexopt::Arg::Short(c) => format!("unknown option '-{c}' {context}"),
        lexopt::Arg::Long(name) => format!("unknown option '--{name}' {context}"),
        lexopt::Arg::Value(v) => format!("unexpected argument '{}' {context}", v.display()),
    }
}

/// The value of an option (`--config FILE`, `--config=FILE`, `-c FILE`, `-cFILE`) as text.
pub(crate) fn text_value(parser: &mut lexopt::Parser) -> Result<String, String> {
    use lexopt::ValueExt;
    let value = parser.value().map_err(|e| e.to_string())?;
    value.string().map_err(|e| e.to_string())
}

/// Parses the whole command line with one parser: the options before the subcommand, the
/// subcommand, and its own arguments (`admin` hands the rest to the admin parser).
fn parse(args: Vec<OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut command: Option<String> = None;
    let mut config = None;
    let mut options = StartOptions::default();
    let mut serve_flag: Option<&str> = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Short('c') | Long("config") => {
                config = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?));
            }
            Long("new-signing-key") => {
                options.new_signing_key = true;
                serve_flag = Some("--new-signing-key");
            }
            Long("accept-data-loss") => {
                options.accept_data_loss = true;
                serve_flag = Some("--accept-data-loss");
            }
            Value(word) => {
                let word = word.string().map_err(|e| e.to_string())?;
                match word.as_str() {
                    "help" => return Ok(Command::Help),
                    "version" => return Ok(Command::Version),
                    "serve" | "check-config" | "health" if command.is_none() => {
                        command = Some(word)
                    }
                    "admin" if command.is_none() => {
                        if let Some(flag) = serve_flag {
                            return Err(format!("{flag} is a flag of 'serve', not of 'admin'"));
                        }
                        let args = crate::admin::client::parse_args(&mut parser)?;
                        return Ok(Command::Admin(args.config.clone().or(config), args));
                    }
                    _ if command.is_none() => {
                        return Err(format!(
                            "unknown command '{word}': serve, check-config, health or admin (try --help)"
                        ));
                    }
                    _ => return Err(format!("unexpected argument '{word}' (try --help)")),
                }
            }
            other => return Err(unexpected(other, "(try --help)")),
        }
    }
    if let (Some(flag), Some(other @ ("check-config" | "health"))) =
        (serve_flag, command.as_deref())
    {
        return Err(format!("{flag} is a flag of 'serve', not of '{other}'"));
    }
    Ok(match command.as_deref() {
        Some("check-config") => Command::CheckConfig(config),
        Some("health") => Command::Health(config),
        _ => Command::Serve(config, options),
    })
}

/// Runs the command line (the arguments after the program name) and returns the process exit
/// code.
pub fn run(args: Vec<OsString>) -> i32 {
    match parse(args) {
        Err(e) => {
            eprintln!("oxisd: {e}");
            2
        }
        Ok(Command::Help) => {
            print!("{HELP}");
            0
        }
        Ok(Command::Version) => {
            println!(
                "oxisd {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("OXISD_COMMIT")
            );
            0
        }
        Ok(Command::CheckConfig(path)) => match Config::load(path.as_deref()) {
            // What serve loads before it writes anything (templates, pages, TLS material,
            // connectors), so that check-config fails exactly where serve would.
            Ok((config, source)) => match crate::app::Preflight::load(&config) {
                Ok(_) => {
                    println!("# effective configuration from {source}");
                    print!("{}", config.to_yaml());
                    0
                }
                Err(e) => {
                    eprintln!("oxisd: invalid configuration: {e}");
                    1
                }
            },
            Err(e) => {
                eprintln!("oxisd: invalid configuration: {e}");
                1
            }
        },
        Ok(Command::Serve(path, options)) => serve(path, options),
        Ok(Command::Health(path)) => match Config::load(path.as_deref()) {
            Ok((config, _)) => crate::healthcheck::run(&config),
            Err(e) => {
                eprintln!("oxisd: invalid configuration: {e}");
                1
            }
        },
        Ok(Command::Admin(_, args)) if args.wants_help() => {
            print!("{}", crate::admin::client::USAGE);
            0
        }
        Ok(Command::Admin(path, args)) => match Config::load(path.as_deref()) {
            Ok((config, _)) => crate::admin::client::run(&config, &args),
            Err(e) => {
                eprintln!("oxisd: invalid configuration: {e}");
                1
            }
        },
    }
}

/// `oxisd serve`: starts the server, serves until SIGTERM or SIGINT, then stops in order
/// (listeners, background tasks, store); the process exit code.
fn serve(path: Option<PathBuf>, options: StartOptions) -> i32 {
    let Some(config) = load_serve_config(path) else {
        return 1;
    };
    let Some(app) = build_app(config, options) else {
        return 1;
    };
    let background = Background::spawn(&app);
    let (events, wake) = mpsc::channel::<String>();
    // Before the listener exists, so that a SIGTERM at any moment stops the server cleanly.
    if let Err(e) = spawn_signal_watch(events.clone()) {
        log::warn!("cannot watch for SIGTERM/SIGINT, stop the server with SIGKILL: {e}");
    }
    let Some(Listeners {
        admin,
        auth,
        public,
    }) = start_listeners(&app)
    else {
        return 1;
    };
    let failed = wait_for_stop(&wake);
    public.shutdown();
    if let Some(auth) = auth {
        auth.shutdown();
    }
    if let Some(admin) = admin {
        admin.shutdown();
    }
    background.stop(&app);
    match app.store.close() {
        Ok(()) => log::info!("store flushed and closed; bye"),
        Err(e) => {
            log::error!("could not flush the store at shutdown: {e}");
            return 1;
        }
    }
    i32::from(failed)
}

/// Loads the configuration, then sets up the process around it (memory arenas, the logger, the
/// panic hook); `None` after saying on stderr why the configuration is refused.
fn load_serve_config(path: Option<PathBuf>) -> Option<Config> {
    let (config, source) = match Config::load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oxisd: invalid configuration: {e}");
            eprintln!(
                "oxisd: (the file comes from --config or ${CONFIG_ENV}; check it with 'oxisd check-config')"
            );
            return None;
        }
    };
    crate::memory::limit_arenas();
    crate::logging::init(
        config
            .logging
            .level_filter()
            .unwrap_or(log::LevelFilter::Info),
        config
            .logging
            .log_format()
            .unwrap_or(crate::logging::Format::Text),
    );
    std::panic::set_hook(Box::new(|info| log::error!("panic: {info}")));
    log::info!(
        "oxisd {} starting; configuration: {source}",
        env!("CARGO_PKG_VERSION")
    );
    Some(config)
}

/// Builds the application (store, keys, services) and logs what the operator should know
/// about it; `None` after logging why it cannot start.
fn build_app(config: Config, options: StartOptions) -> Option<Arc<App>> {
    let app = match App::build_with(config, options) {
        Ok(app) => Arc::new(app),
        Err(e) => {
            log::error!("cannot start: {e}");
            return None;
        }
    };
    log::info!("data directory: {}", app.config.data_dir().display());
    log::info!("{}", app.notifier.describe());
    let msisdn = &app.config.threepid.medium.msisdn;
    if msisdn.connector == crate::config::SmsConnector::Twilio
        && msisdn.allowed_countries.is_empty()
    {
        log::warn!(
            "SMS may be sent to any country: set threepid.medium.msisdn.allowedCountries to the countries your users live in, to limit SMS pumping fraud"
        );
    }
    Some(app)
}

/// The running listeners.
struct Listeners {
    /// `admin.*`, when enabled.
    admin: Option<crate::admin::AdminListener>,
    /// `auth.*` (the homeserver's password checks), when enabled.
    auth: Option<crate::http::internal::AuthListener>,
    /// The public HTTP (and HTTPS) listeners.
    public: crate::http::Running,
}

/// Starts the admin and auth listeners (when enabled), then the public listeners, and logs
/// where they listen; `None` after logging why one cannot start.
fn start_listeners(app: &Arc<App>) -> Option<Listeners> {
    // Before the public listener: once that one answers, so do the admin and auth listeners.
    let admin = match crate::admin::start(app.clone()) {
        Ok(admin) => admin,
        Err(e) => {
            log::error!("cannot start: {e}");
            return None;
        }
    };
    if let Some(admin) = &admin {
        log::info!("admin API at http://{} (admin.*)", admin.local_addr());
    }
    let auth = match crate::http::internal::start(app.clone()) {
        Ok(auth) => auth,
        Err(e) => {
            log::error!("cannot start: {e}");
            return None;
        }
    };
    let server = match crate::http::start(app.clone()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start: {e}");
            return None;
        }
    };
    // Before the listening line (which tells a supervisor the server is up), and without TLS
    // too: SIGHUP's default action would end the process, and systemd counts that as a clean
    // stop, so Restart=on-failure would not bring it back.
    if let Err(e) = spawn_reload_watch(server.tls().map(|tls| tls.certs())) {
        log::warn!("cannot watch for SIGHUP, restart to load a new certificate: {e}");
    }
    log::info!(
        "listening on http://{} as '{}' (public URL {})",
        server.local_addr(),
        app.config.server.name,
        app.config.server.public_url()
    );
    if let Some(tls) = server.tls() {
        log::info!("TLS listening on https://{}", tls.local_addr());
    }
    for path in crate::http::router::mounted_paths() {
        log::debug!("mounted {path}");
    }
    Some(Listeners {
        admin,
        auth,
        public: server,
    })
}

/// Blocks until a stop event arrives and logs it; true when the reason is a failure rather
/// than a signal.
fn wait_for_stop(wake: &mpsc::Receiver<String>) -> bool {
    let reason = wake
        .recv()
        .unwrap_or_else(|_| "no event source left".into());
    let failed = !reason.starts_with("signal");
    if failed {
        log::error!("stopping: {reason}");
    } else {
        log::info!("stopping on {reason}: finishing requests in flight");
    }
    failed
}

/// The background threads: maintenance tasks and the couriers of invites and forwarded
/// binds.
struct Background {
    stop: Arc<AtomicBool>,
    maintenance: Vec<JoinHandle<()>>,
    couriers: [Option<JoinHandle<()>>; 2],
}

impl Background {
    /// Starts every background thread.
    fn spawn(app: &Arc<App>) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        Background {
            maintenance: crate::maintenance::spawn(app.clone(), stop.clone()),
            couriers: [
                crate::maintenance::spawn_courier(app.clone(), stop.clone()),
                crate::maintenance::spawn_remote_courier(app.clone(), stop.clone()),
            ],
            stop,
        }
    }

    /// Stops the maintenance tasks and waits for them, then gives the couriers up to 3 s to
    /// finish the call in flight.
    fn stop(self, app: &App) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in &self.maintenance {
            thread.thread().unpark();
        }
        for thread in self.maintenance {
            let _ = thread.join();
        }
        // An onbind or upstream call in flight may take up to outbound.timeout; do not hold
        // the shutdown on it for long (what is not recorded as made is made again after a
        // start).
        app.invites.wake();
        app.remote.wake();
        let deadline = Instant::now() + Duration::from_secs(3);
        for courier in self.couriers.into_iter().flatten() {
            while !courier.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if courier.is_finished() {
                let _ = courier.join();
            }
        }
    }
}

/// Reads the TLS certificate and key again on every SIGHUP; without a TLS listener, says that
/// SIGHUP reloads nothing (the configuration is only read at start).
fn spawn_reload_watch(certs: Option<Arc<crate::http::tls::Certs>>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                match certs.as_ref().map(|c| c.reload()) {
                    Some(Ok(())) => log::info!("SIGHUP: TLS certificate and key loaded again"),
                    Some(Err(e)) => log::error!("SIGHUP: keeping the old TLS certificate: {e}"),
                    None => log::info!(
                        "SIGHUP: nothing to reload (no TLS listener; the configuration is read at start only)"
                    ),
                }
            }
        })?;
    Ok(())
}

fn spawn_signal_watch(events: mpsc::Sender<String>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
                let _ = events.send(format!("signal {name}"));
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn error(a: &[&str]) -> String {
        match parse(args(a)) {
            Err(e) => e,
            Ok(_) => panic!("{a:?} was accepted"),
        }
    }

    #[test]
    fn command_line_forms() {
        assert!(matches!(parse(args(&[])), Ok(Command::Serve(None, _))));
        assert!(
            matches!(parse(args(&["serve", "--config", "a.yaml"])), Ok(Command::Serve(Some(p), o)) if p.as_path() == std::path::Path::new("a.yaml") && !o.new_signing_key && !o.accept_data_loss)
        );
        assert!(matches!(
            parse(args(&["serve", "--new-signing-key", "--accept-data-loss"])),
            Ok(Command::Serve(None, o)) if o.new_signing_key && o.accept_data_loss
        ));
        assert!(parse(args(&["check-config", "--accept-data-loss"])).is_err());
        assert!(
            matches!(parse(args(&["check-config", "--config=b.yaml"])), Ok(Command::CheckConfig(Some(p))) if p.as_path() == std::path::Path::new("b.yaml"))
        );
        assert!(matches!(parse(args(&["--version"])), Ok(Command::Version)));
        assert!(matches!(parse(args(&["--help"])), Ok(Command::Help)));
        assert!(parse(args(&["--config"])).is_err());
        assert!(parse(args(&["frobnicate"])).is_err());
    }

    #[test]
    fn every_subcommand_takes_both_config_forms() {
        let is = |p: &Option<PathBuf>, want: &str| p.as_deref() == Some(std::path::Path::new(want));
        for form in [
            &["--config", "c.yaml"][..],
            &["--config=c.yaml"],
            &["-c", "c.yaml"],
        ] {
            let with = |command: &[&str]| {
                let mut all = command.to_vec();
                all.extend_from_slice(form);
                parse(args(&all))
            };
            assert!(matches!(with(&["serve"]), Ok(Command::Serve(p, _)) if is(&p, "c.yaml")));
            assert!(
                matches!(with(&["check-config"]), Ok(Command::CheckConfig(p)) if is(&p, "c.yaml"))
            );
            assert!(
                matches!(with(&["admin", "stats"]), Ok(Command::Admin(p, _)) if is(&p, "c.yaml"))
            );
            assert!(
                matches!(with(&["admin"]), Ok(Command::Admin(p, a)) if is(&p, "c.yaml") && a.wants_help())
            );
        }
        // Before the subcommand too.
        assert!(matches!(
            parse(args(&["--config=c.yaml", "admin", "stats"])),
            Ok(Command::Admin(p, _)) if is(&p, "c.yaml")
        ));
    }

    #[test]
    fn unknown_options_are_named() {
        assert!(error(&["--frobnicate"]).contains("unknown option '--frobnicate'"));
        assert!(error(&["serve", "-x"]).contains("unknown option '-x'"));
        assert!(error(&["serve", "extra"]).contains("unexpected argument 'extra'"));
        assert!(error(&["frobnicate"]).contains("unknown command 'frobnicate'"));
        assert!(error(&["serve", "--new-signing-key=yes"]).contains("--new-signing-key"));
        assert!(error(&["--new-signing-key", "admin", "stats"]).contains("not of 'admin'"));
        assert!(error(&["admin", "stats", "--frob"]).contains("unknown option '--frob'"));
        assert!(error(&["--config"]).contains("--config"));
    }
}
