//! The pages of remote 3PID sessions: after a local validation, the person can have the 3PID
//! validated (and later bound) at the upstream identity server the operator configured. All
//! of them are GET pages for a browser, reached from links we made (sid and client secret in
//! the query, like the validation link itself).

use crate::app::App;
use crate::error::{Error, ErrorKind};
use crate::http::{Reply, Req};
use crate::ids::SessionId;
use crate::service::remote::Step;
use crate::store::sessions::SessionRecord;
use crate::views::RemoteView;

/// The page after a successful local validation of a 3PID that may (or must) be published at
/// `upstream`: a button starts it; `next` is the client's next_link, if any.
pub fn offer_page(
    app: &App,
    session: &SessionRecord,
    upstream: &str,
    next: Option<String>,
) -> String {
    let start = app.remote.start_link(&session.sid, &session.client_secret);
    let here = app.remote.binds_here(session.medium, &session.address);
    let message = if here {
        format!(
            "Your address is verified here. You can also publish it at the identity server {upstream}, so that people who use that server can find you."
        )
    } else {
        format!(
            "Your address is verified. To finish, it must also be verified at the identity server {upstream}: it will send you its own message."
        )
    };
    let hint = match (&next, here) {
        (Some(next), true) => format!("Or skip this and continue: {next}"),
        (None, true) => "Or skip this: you can return to your Matrix client.".to_string(),
        (_, false) => String::new(),
    };
    app.views.remote_page(
        &RemoteView {
            title: "Your address is verified",
            message: &message,
            hint: &hint,
            action_url: &start,
            action_label: &format!("Publish at {upstream}"),
        },
        true,
    )
}

/// The session of a page's link: 400 `M_MISSING_PARAMS` without it, 404 `M_NO_VALID_SESSION`
/// for a sid that names none.
fn credentials(req: &Req) -> Result<(SessionId, &str), Error> {
    match (req.query("sid"), req.query("client_secret")) {
        (Some(sid), Some(secret)) if !sid.is_empty() && !secret.is_empty() => {
            Ok((SessionId::parse(sid)?, secret))
        }
        _ => Err(Error::new(
            ErrorKind::MissingParams,
            "The link is incomplete",
        )),
    }
}

/// `GET /_matrix/identity/_oxisd/remote/start?sid&client_secret`: asks the upstream to send
/// its token, then shows the check button.
pub fn start_remote_session(app: &App, req: &Req) -> crate::error::Result<Reply> {
    let result = credentials(req).and_then(|(sid, secret)| {
        app.remote
            .start(&sid, secret, app.now_ms())
            .map(|step| (step, sid, secret))
    });
    Ok(match result {
        Ok((Step::Started { server }, sid, secret)) => {
            let check = app.remote.check_link(&sid, secret);
            Reply::Html(
                200,
                app.views.remote_page(
                    &RemoteView {
                        title: &format!("Check your messages from {server}"),
                        message: &format!(
                            "The identity server {server} has sent you a message. Follow the link or enter the code it contains, then come back here."
                        ),
                        hint: "Did not get it? Reload this page to have it sent again.",
                        action_url: &check,
                        action_label: "I have done it: check",
                    },
                    true,
                ),
            )
        }
        Ok((other, _, _)) => failure(app, &unexpected(&other)),
        Err(e) => failure(app, &e),
    })
}

/// `GET /_matrix/identity/_oxisd/remote/check?sid&client_secret`: asks the upstream whether
/// its session is validated.
pub fn check_remote_session(app: &App, req: &Req) -> crate::error::Result<Reply> {
    let result = credentials(req).and_then(|(sid, secret)| {
        app.remote
            .check(&sid, secret, app.now_ms())
            .map(|step| (step, sid, secret))
    });
    Ok(match result {
        Ok((Step::Validated { server }, _, _)) => Reply::Html(
            200,
            app.views.remote_page(
                &RemoteView {
                    title: &format!("Verified at {server}"),
                    message: &format!(
                        "Your address is verified at {server} too. When your Matrix client links it to your account, it is published there as well."
                    ),
                    hint: "You can close this page and return to your Matrix client.",
                    ..RemoteView::default()
                },
                true,
            ),
        ),
        Ok((Step::Pending { server }, sid, secret)) => Reply::Html(
            200,
            app.views.remote_page(
                &RemoteView {
                    title: &format!("Not verified at {server} yet"),
                    message: &format!(
                        "{server} has not seen your confirmation yet. Follow the link or enter the code from its message first."
                    ),
                    hint: "Then check again.",
                    action_url: &app.remote.check_link(&sid, secret),
                    action_label: "Check again",
                },
                false,
            ),
        ),
        Ok((Step::NotStarted { server }, sid, secret)) => Reply::Html(
            200,
            app.views.remote_page(
                &RemoteView {
                    title: &format!("Not published at {server} yet"),
                    message: &format!(
                        "Your address is verified here. To publish it at the identity server {server}, start there first: it will send you its own message."
                    ),
                    hint: "Then come back to check.",
                    action_url: &app.remote.start_link(&sid, secret),
                    action_label: &format!("Publish at {server}"),
                },
                false,
            ),
        ),
        Ok((other, _, _)) => failure(app, &unexpected(&other)),
        Err(e) => failure(app, &e),
    })
}

fn unexpected(step: &Step) -> Error {
    Error::internal(format_args!("unexpected remote step {step:?}"))
}

fn failure(app: &App, e: &Error) -> Reply {
    if let Some(detail) = e.log_detail() {
        log::warn!("remote session page: {} ({detail})", e.message());
    }
    let (title, hint) = match e.kind() {
        ErrorKind::BadGateway | ErrorKind::GatewayTimeout => (
            "The other identity server is not answering",
            "Try again in a few minutes. Your address stays verified here.",
        ),
        ErrorKind::SessionExpired => (
            "This link has expired",
            "Go back to your Matrix client and start again.",
        ),
        ErrorKind::SessionNotValidated => (
            "Not ready yet",
            "Verify your address here first, with the link from our message.",
        ),
        ErrorKind::LimitExceeded => ("Too many attempts", "Wait a while, then try again."),
        _ => (
            "This link is not valid",
            "Open the link from the most recent message, or go back to your Matrix client.",
        ),
    };
    let message = if e.kind() == ErrorKind::Internal {
        "Something went wrong on this server.".to_string()
    } else {
        e.message().to_string()
    };
    Reply::Html(
        e.status(),
        app.views.remote_page(
            &RemoteView {
                title,
                message: &message,
                hint,
                ..RemoteView::default()
            },
            false,
        ),
    )
}
