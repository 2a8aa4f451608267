//! What can go wrong while sending a message over SMTP, described for the operator: the
//! server, the TLS mode, the step of the conversation and what the server answered. Never the
//! password.

use std::fmt;

use crate::config::SmtpTls;

/// The step of the SMTP conversation an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpStage {
    /// Opening the TCP connection (including the DNS lookup).
    Connect,
    /// The TLS handshake of implicit TLS (mode 3).
    TlsHandshake,
    /// Waiting for the server's 220 greeting.
    Greeting,
    /// EHLO.
    Ehlo,
    /// STARTTLS and the TLS handshake after it.
    StartTls,
    /// AUTH.
    Auth,
    /// MAIL FROM.
    MailFrom,
    /// RCPT TO.
    RcptTo,
    /// DATA, the message and the server's final answer.
    Data,
}

impl fmt::Display for SmtpStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SmtpStage::Connect => "connect",
            SmtpStage::TlsHandshake => "TLS handshake",
            SmtpStage::Greeting => "greeting",
            SmtpStage::Ehlo => "EHLO",
            SmtpStage::StartTls => "STARTTLS",
            SmtpStage::Auth => "AUTH",
            SmtpStage::MailFrom => "MAIL FROM",
            SmtpStage::RcptTo => "RCPT TO",
            SmtpStage::Data => "DATA",
        })
    }
}

/// Why a message was not delivered. Every variant names the server (`host:port`) and the TLS
/// mode; none ever contains the password.
#[derive(Debug)]
pub enum SmtpError {
    /// The TCP connection could not be opened (DNS failure, connection refused, unreachable).
    Connect {
        /// `host:port`.
        server: String,
        /// The configured TLS mode.
        tls: SmtpTls,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The server did not answer within the configured timeout.
    Timeout {
        /// `host:port`.
        server: String,
        /// The configured TLS mode.
        tls: SmtpTls,
        /// What we were waiting for.
        stage: SmtpStage,
        /// The configured timeout in seconds.
        seconds: u64,
    },
    /// TLS failed (handshake, certificate, server name).
    Tls {
        /// `host:port`.
        server: String,
        /// The configured TLS mode.
        tls: SmtpTls,
        /// [`SmtpStage::TlsHandshake`] or [`SmtpStage::StartTls`].
        stage: SmtpStage,
        /// What rustls said.
        message: String,
    },
    /// TLS mode 2 and the server's EHLO does not offer STARTTLS.
    StartTlsNotOffered {
        /// `host:port`.
        server: String,
    },
    /// Authentication failed or no common mechanism.
    Auth {
        /// `host:port`.
        server: String,
        /// The configured TLS mode.
        tls: SmtpTls,
        /// The server's reply or what is missing.
        message: String,
    },
    /// The server answered a command with an error reply.
    Rejected {
        /// `host:port`.
        server: String,
        /// The configured TLS mode.
        tls: SmtpTls,
        /// The command that was refused.
        stage: SmtpStage,
        /// The SMTP reply code, e.g. 550.
        code: u16,
        /// The reply text.
        message: String,
    },
    /// An envelope address we refuse to put into an SMTP command: empty (recipient only), or
    /// containing whitespace, control characters or angle brackets. Nothing was sent.
    InvalidAddress {
        /// [`SmtpStage::MailFrom`] for the sender, [`SmtpStage::RcptTo`] for the recipient.
        stage: SmtpStage,
        /// The address as given.
        address: String,
    },
    /// The connection broke or the server's reply could not be understood.
    Protocol {
        /// `host:port`.
        server: String,
        /// The configured TLS mode.
        tls: SmtpTls,
        /// Where it happened.
        stage: SmtpStage,
        /// What happened.
        message: String,
    },
}

pub(super) fn tls_mode(tls: SmtpTls) -> &'static str {
    match tls {
        SmtpTls::None => "tls 0: plain text",
        SmtpTls::StartTlsIfOffered => "tls 1: STARTTLS if offered",
        SmtpTls::StartTlsRequired => "tls 2: STARTTLS required",
        SmtpTls::Implicit => "tls 3: implicit TLS",
    }
}

impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpError::Connect { server, tls, error } => write!(
                f,
                "SMTP server {server} ({}): cannot connect: {error}",
                tls_mode(*tls)
            ),
            SmtpError::Timeout {
                server,
                tls,
                stage,
                seconds,
            } => write!(
                f,
                "SMTP server {server} ({}): timed out after {seconds} s during {stage}",
                tls_mode(*tls)
            ),
            SmtpError::Tls {
                server,
                tls,
                stage,
                message,
            } => write!(
                f,
                "SMTP server {server} ({}): TLS failed at {stage}: {message}",
                tls_mode(*tls)
            ),
            SmtpError::StartTlsNotOffered { server } => write!(
                f,
                "SMTP server {server} ({}): the server does not offer STARTTLS \
                 (use tls 3 for implicit TLS, or tls 1 to allow plain text)",
                tls_mode(SmtpTls::StartTlsRequired)
            ),
            SmtpError::Auth {
                server,
                tls,
                message,
            } => write!(
                f,
                "SMTP server {server} ({}): authentication failed: {message}",
                tls_mode(*tls)
            ),
            SmtpError::Rejected {
                server,
                tls,
                stage,
                code,
                message,
            } => write!(
                f,
                "SMTP server {server} ({}): {stage} refused: {code} {message}",
                tls_mode(*tls)
            ),
            SmtpError::InvalidAddress { stage, address } => write!(
                f,
                "SMTP: not sending to a bad {stage} address {address:?} \
                 (empty, or whitespace, control characters or angle brackets)"
            ),
            SmtpError::Protocol {
                server,
                tls,
                stage,
                message,
            } => write!(
                f,
                "SMTP server {server} ({}): at {stage}: {message}",
                tls_mode(*tls)
            ),
        }
    }
}

impl std::error::Error for SmtpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SmtpError::Connect { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl SmtpError {
    /// True when the server refused the recipient address itself (5xx on RCPT TO), i.e. the
    /// address is bad rather than our setup. Also true when we refused to send to a malformed
    /// recipient address ([`SmtpError::InvalidAddress`] at RCPT TO).
    pub fn is_recipient_rejected(&self) -> bool {
        match self {
            SmtpError::Rejected {
                stage: SmtpStage::RcptTo,
                code,
                ..
            } => (500..600).contains(code),
            SmtpError::InvalidAddress { stage, .. } => *stage == SmtpStage::RcptTo,
            _ => false,
        }
    }
}
