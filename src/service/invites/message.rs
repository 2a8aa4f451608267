//! The invite email: what the inviter's homeserver told us about the room and the inviter, cut
//! to sane lengths, and the link a person opens to join (the web client's room link carrying
//! our sign URL).

use super::NewInvite;
use crate::ids::cut;
use crate::notify::{InviteMessage, Notifier, NotifyError};

/// Values shown in the invite email are cut to these many characters.
const MAX_NAME: usize = 60;
const MAX_OTHER: usize = 255;
/// Longest room link in the invite email (a mail line holds at most 998 characters).
const MAX_LINK: usize = 900;

/// What the invite email says besides the request: the stored invite and where to go.
pub(super) struct Invitation<'a> {
    /// The normalised address.
    pub address: &'a str,
    /// The invite token.
    pub token: &'a str,
    /// The ephemeral private key (unpadded URL-safe base64 of the seed).
    pub private_key: &'a str,
    /// Our sign-ed25519 URL with the token and private key.
    pub sign_url: &'a str,
    /// `invite.registerUrl`.
    pub register_url: &'a str,
    /// `invite.webClient`, without a trailing `/`.
    pub web_client: &'a str,
}

/// Sends the invite email of `req` to its address.
pub(super) fn send(
    notifier: &Notifier,
    req: &NewInvite,
    invitation: &Invitation<'_>,
) -> Result<(), NotifyError> {
    let text = |v: &Option<String>, max: usize| cut(v.as_deref().unwrap_or(""), max);
    let (sender_name, room_name) = (
        text(&req.sender_display_name, MAX_NAME),
        text(&req.room_name, MAX_NAME),
    );
    let (room_alias, room_avatar_url, room_join_rules, room_type, sender_avatar_url) = (
        text(&req.room_alias, MAX_OTHER),
        text(&req.room_avatar_url, MAX_OTHER),
        text(&req.room_join_rules, MAX_OTHER),
        text(&req.room_type, MAX_OTHER),
        text(&req.sender_avatar_url, MAX_OTHER),
    );
    let room_link = room_link(
        req,
        invitation,
        (&room_name, &room_avatar_url, &sender_name, &room_type),
    );
    notifier.send_invite(&InviteMessage {
        address: invitation.address,
        sender: &req.sender,
        sender_name: &sender_name,
        sender_avatar_url: &sender_avatar_url,
        room_id: &req.room_id,
        room_name: &room_name,
        room_alias: &room_alias,
        room_avatar_url: &room_avatar_url,
        room_join_rules: &room_join_rules,
        room_type: &room_type,
        token: invitation.token,
        ephemeral_private_key: invitation.private_key,
        sign_url: invitation.sign_url,
        room_link: &room_link,
        register_url: invitation.register_url,
    })
}

/// The link a person opens from the invite email: the web client's room link, as sydent's
/// stock template builds it, carrying what the client needs to join through the invite (the
/// invited address, our sign URL with the token and ephemeral key, and what to show: room name
/// and avatar, inviter, room type). The client posts its user id to the sign URL and joins
/// with the signature. The web client is the one the homeserver names, when it is an http(s)
/// URL, else `invite.webClient`.
fn room_link(
    req: &NewInvite,
    invitation: &Invitation<'_>,
    (room_name, room_avatar_url, inviter_name, room_type): (&str, &str, &str, &str),
) -> String {
    let named = req
        .web_client_location
        .as_deref()
        .map(|w| w.trim().trim_end_matches('/'))
        .filter(|w| {
            (w.starts_with("https://") || w.starts_with("http://"))
                && w.len() <= MAX_OTHER
                && !w
                    .contains(|c: char| c.is_whitespace() || c.is_control() || c == '#' || c == '?')
        });
    let web = named.unwrap_or(invitation.web_client);
    let enc = crate::threepid::params::url_encode;
    let mut link = format!(
        "{web}/#/room/{}?email={}&signurl={}",
        enc(&req.room_id),
        enc(invitation.address),
        enc(invitation.sign_url),
    );
    // What the client shows while joining, most useful first, as long as the link stays on
    // one line of a mail (RFC 5322 allows 998 characters).
    for (name, value) in [
        ("room_name", room_name),
        ("inviter_name", inviter_name),
        ("room_type", room_type),
        ("room_avatar_url", room_avatar_url),
    ] {
        let param = format!("&{name}={}", enc(value));
        if link.len() + param.len() <= MAX_LINK {
            link.push_str(&param);
        }
    }
    link
}
