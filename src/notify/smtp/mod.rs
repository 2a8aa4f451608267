//! Email delivery over SMTP: [`SmtpConnector`] hands one already rendered message to the
//! configured SMTP server, one connection per message, and [`SmtpError`] says what went wrong in
//! terms an operator can act on.
//!
//! The SMTP client is the async crate `mail-send`; [`SmtpConnector::send`] is blocking and runs
//! its own tokio current-thread runtime for each message, so it can be called from any number of
//! plain threads at once (but not from inside a tokio runtime).
//!
//! TLS modes (mxisd's numbers): 0 plain text, never STARTTLS; 1 STARTTLS when the server offers
//! it, plain text otherwise; 2 STARTTLS or fail; 3 TLS from the first byte. Certificates are
//! checked against the system's CA roots unless `accept_invalid_certs` is set. rustls uses the
//! `ring` crypto provider, which [`SmtpConnector::new`] installs as the process default when no
//! default is installed yet.

use std::fmt;
use std::time::Duration;

use log::debug;
use mail_send::smtp::message::Parameters;
use mail_send::smtp::tls::build_tls_connector;
use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use smtp_proto::{EXT_START_TLS, EhloResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{SmtpConfig, SmtpTls};

mod error;

use error::tls_mode;
pub use error::{SmtpError, SmtpStage};

/// Sends messages through the configured SMTP server. Cheap to share between threads.
pub struct SmtpConnector {
    config: SmtpConfig,
    /// `host:port`, for messages.
    server: String,
    timeout: Duration,
    /// Holds the TLS connector (certificate checks per `accept_invalid_certs`) and the name we
    /// give in EHLO (the machine's host name). Its own `connect` methods are not used: they cannot
    /// fall back from STARTTLS to plain text and do not time out a silent server.
    settings: SmtpClientBuilder<String>,
}

impl fmt::Debug for SmtpConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConnector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SmtpConnector {
    /// Builds the connector (TLS setup etc.). Err is a message for the operator, without a
    /// prefix naming the config section (the caller adds it).
    pub fn new(config: SmtpConfig) -> Result<SmtpConnector, String> {
        if config.host.trim().is_empty() {
            return Err("host: required".into());
        }
        if config.timeout == 0 {
            return Err("timeout: must be at least 1 second".into());
        }
        // mail-send builds its rustls configs with the process-wide provider; make sure there is
        // one (ring), so rustls never has to guess. Err means one is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Mode 0 never uses TLS: do not require the system CA roots there.
        let skip_verify = config.accept_invalid_certs || config.tls == SmtpTls::None;
        let connector = build_tls_connector(skip_verify).map_err(|e| {
            format!(
                "cannot set up TLS certificate checks ({e}); install the system CA \
                 certificates (e.g. the ca-certificates package)"
            )
        })?;
        let server = format!("{}:{}", config.host, config.port);
        let timeout = Duration::from_secs(config.timeout);
        let settings =
            SmtpClientBuilder::new_with_tls_connector(config.host.clone(), config.port, connector)
                .timeout(timeout);
        Ok(SmtpConnector {
            config,
            server,
            timeout,
            settings,
        })
    }

    /// Sends `raw` (a complete, already rendered RFC 5322 message with CRLF line endings, sent
    /// byte for byte as given, no headers added) from `from` to `to` (bare addresses, used as the
    /// envelope: MAIL FROM and RCPT TO). Blocking: runs a tokio current-thread runtime
    /// internally; callers are plain threads, and several may call `send` concurrently. One
    /// connection per message, closed with QUIT.
    pub fn send(&self, from: &str, to: &str, raw: &[u8]) -> Result<(), SmtpError> {
        // The addresses go into SMTP commands verbatim: a CR LF or '>' in them would let the
        // caller's input write commands of its own.
        for (stage, address) in [(SmtpStage::MailFrom, from), (SmtpStage::RcptTo, to)] {
            let bad = |c: char| c.is_control() || c.is_whitespace() || c == '<' || c == '>';
            if address.contains(bad) || (stage == SmtpStage::RcptTo && address.is_empty()) {
                return Err(SmtpError::InvalidAddress {
                    stage,
                    address: address.to_string(),
                });
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SmtpError::Protocol {
                server: self.server.clone(),
                tls: self.config.tls,
                stage: SmtpStage::Connect,
                message: format!("cannot start the I/O runtime: {e}"),
            })?;
        // mail-send ends DATA with CRLF "." CRLF itself; without this the message would gain an
        // empty last line.
        let body = raw.strip_suffix(b"\r\n").unwrap_or(raw);
        let result = runtime.block_on(self.deliver(from, to, body));
        // Do not wait for a DNS lookup still running in the blocking pool after a timeout.
        runtime.shutdown_background();
        match &result {
            Ok(()) => debug!("SMTP {}: message to {to} accepted", self.server),
            Err(e) => debug!("{e}"),
        }
        result
    }

    async fn deliver(&self, from: &str, to: &str, body: &[u8]) -> Result<(), SmtpError> {
        let host = self.config.host.as_str();
        let tcp =
            match tokio::time::timeout(self.timeout, TcpStream::connect((host, self.config.port)))
                .await
            {
                Err(_) => return Err(self.timed_out(SmtpStage::Connect)),
                Ok(Err(error)) => {
                    return Err(SmtpError::Connect {
                        server: self.server.clone(),
                        tls: self.config.tls,
                        error,
                    });
                }
                Ok(Ok(tcp)) => tcp,
            };
        // The message and its final "." go out in separate writes: with Nagle's algorithm the
        // second waits for the server's delayed ACK, 40 ms per message.
        let _ = tcp.set_nodelay(true);
        debug!(
            "SMTP {}: connected ({})",
            self.server,
            tls_mode(self.config.tls)
        );
        let mut client = SmtpClient {
            stream: tcp,
            timeout: self.timeout,
        };
        let connector = &self.settings.tls_connector;

        if self.config.tls == SmtpTls::Implicit {
            let mut client = client
                .into_tls(connector, host)
                .await
                .map_err(|e| self.error(e, SmtpStage::TlsHandshake))?;
            debug!("SMTP {}: TLS established", self.server);
            self.greeting(&mut client).await?;
            let capabilities = self.ehlo(&mut client).await?;
            return self
                .transaction(client, &capabilities, from, to, body)
                .await;
        }

        self.greeting(&mut client).await?;
        let capabilities = self.ehlo(&mut client).await?;
        if self.config.tls == SmtpTls::None {
            return self
                .transaction(client, &capabilities, from, to, body)
                .await;
        }
        if capabilities.has_capability(EXT_START_TLS) {
            let mut client = client
                .start_tls(connector, host)
                .await
                .map_err(|e| self.error(e, SmtpStage::StartTls))?;
            debug!("SMTP {}: STARTTLS done", self.server);
            let capabilities = self.ehlo(&mut client).await?;
            return self
                .transaction(client, &capabilities, from, to, body)
                .await;
        }
        if self.config.tls == SmtpTls::StartTlsRequired {
            quit(&mut client).await;
            return Err(SmtpError::StartTlsNotOffered {
                server: self.server.clone(),
            });
        }
        let login_note = if self.config.login.is_some() {
            " (the login goes unencrypted)"
        } else {
            ""
        };
        debug!(
            "SMTP {}: STARTTLS not offered, continuing in plain text{login_note}",
            self.server
        );
        self.transaction(client, &capabilities, from, to, body)
            .await
    }

    async fn greeting<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
    ) -> Result<(), SmtpError> {
        // mail-send's own `read` has no timeout: a server that accepts and never speaks would hang.
        let reply = tokio::time::timeout(self.timeout, client.read())
            .await
            .map_err(|_| self.timed_out(SmtpStage::Greeting))?
            .map_err(|e| self.error(e, SmtpStage::Greeting))?;
        if reply.code / 100 == 2 {
            Ok(())
        } else {
            Err(self.rejected(SmtpStage::Greeting, reply))
        }
    }

    async fn ehlo<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
    ) -> Result<EhloResponse<String>, SmtpError> {
        client
            .ehlo(&self.settings.local_host)
            .await
            .map_err(|e| self.error(e, SmtpStage::Ehlo))
    }

    /// AUTH (when a login is configured), MAIL FROM, RCPT TO, DATA, then QUIT.
    async fn transaction<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut client: SmtpClient<T>,
        capabilities: &EhloResponse<String>,
        from: &str,
        to: &str,
        body: &[u8],
    ) -> Result<(), SmtpError> {
        let result = self
            .envelope_and_data(&mut client, capabilities, from, to, body)
            .await;
        // Say goodbye unless the connection is broken; the outcome does not depend on it.
        if matches!(
            result,
            Ok(()) | Err(SmtpError::Rejected { .. } | SmtpError::Auth { .. })
        ) {
            quit(&mut client).await;
        }
        result
    }

    async fn envelope_and_data<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
        capabilities: &EhloResponse<String>,
        from: &str,
        to: &str,
        body: &[u8],
    ) -> Result<(), SmtpError> {
        if let Some(login) = &self.config.login {
            let credentials = Credentials::new(login.as_str(), self.config.password.expose());
            client
                .authenticate(&credentials, capabilities)
                .await
                .map_err(|e| self.error(e, SmtpStage::Auth))?;
            debug!("SMTP {}: authenticated as {login}", self.server);
        }
        let no_params = Parameters::default();
        client
            .mail_from(from, &no_params)
            .await
            .map_err(|e| self.error(e, SmtpStage::MailFrom))?;
        client
            .rcpt_to(to, &no_params)
            .await
            .map_err(|e| self.error(e, SmtpStage::RcptTo))?;
        let reply = client
            .data(body)
            .await
            .map_err(|e| self.error(e, SmtpStage::Data))?;
        debug!(
            "SMTP {}: DATA answered {} {}",
            self.server,
            reply.code,
            reply_text(&reply)
        );
        Ok(())
    }

    fn timed_out(&self, stage: SmtpStage) -> SmtpError {
        SmtpError::Timeout {
            server: self.server.clone(),
            tls: self.config.tls,
            stage,
            seconds: self.config.timeout,
        }
    }

    fn rejected(&self, stage: SmtpStage, reply: Response<String>) -> SmtpError {
        SmtpError::Rejected {
            server: self.server.clone(),
            tls: self.config.tls,
            stage,
            code: reply.code,
            message: reply_text(&reply),
        }
    }

    /// Maps a mail-send error at `stage`. mail-send's errors never contain the credentials.
    fn error(&self, error: mail_send::Error, stage: SmtpStage) -> SmtpError {
        let (server, tls) = (self.server.clone(), self.config.tls);
        let protocol = |message: String| SmtpError::Protocol {
            server: server.clone(),
            tls,
            stage,
            message,
        };
        let auth = |message: String| SmtpError::Auth {
            server: server.clone(),
            tls,
            message,
        };
        let tls_error = |message: String| SmtpError::Tls {
            server: server.clone(),
            tls,
            stage,
            message,
        };
        match error {
            mail_send::Error::Timeout => self.timed_out(stage),
            mail_send::Error::Io(e) => protocol(format!("I/O error: {e}")),
            mail_send::Error::UnparseableReply => {
                protocol("the server closed the connection or sent an unreadable reply".into())
            }
            mail_send::Error::Tls(e) => tls_error(e.to_string()),
            mail_send::Error::InvalidTLSName => {
                tls_error("the host is not a valid TLS server name".into())
            }
            mail_send::Error::MissingStartTls => SmtpError::StartTlsNotOffered { server },
            mail_send::Error::UnexpectedReply(r) if stage == SmtpStage::Auth => {
                auth(format!("{} {}", r.code, reply_text(&r)))
            }
            mail_send::Error::UnexpectedReply(r) => self.rejected(stage, r),
            mail_send::Error::AuthenticationFailed(r) => {
                auth(format!("{} {}", r.code, reply_text(&r)))
            }
            mail_send::Error::UnsupportedAuthMechanism => auth(
                "the server offers no AUTH mechanism we support (PLAIN, LOGIN); \
                 many servers offer AUTH only after STARTTLS"
                    .into(),
            ),
            mail_send::Error::Auth(_) | mail_send::Error::Base64(_) => {
                auth("the server sent an invalid AUTH challenge".into())
            }
            other => protocol(other.to_string()),
        }
    }
}

/// The reply text with its enhanced status code (RFC 3463) when there is one: "5.1.1 no such user".
fn reply_text(reply: &Response<String>) -> String {
    match reply.esc {
        [0, ..] => reply.message.clone(),
        [a, b, c] => format!("{a}.{b}.{c} {}", reply.message),
    }
}

/// Best-effort QUIT: the outcome of the delivery is already decided.
async fn quit<T: AsyncRead + AsyncWrite + Unpin>(client: &mut SmtpClient<T>) {
    if let Err(e) = client.cmd(b"QUIT\r\n").await {
        debug!("SMTP QUIT failed: {e}");
    }
}
