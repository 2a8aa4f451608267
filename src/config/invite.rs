//! `invite.*`: 3PID room invites (store-invite), their email, and the delivery of claimed
//! invites to the invitee's homeserver (`onbind`).

use serde::{Deserialize, Serialize};

use super::{ConfigError, RateLimit};

/// `invite.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteConfig {
    /// Whether store-invite and sign-ed25519 are offered; off answers 403 `M_FORBIDDEN`.
    pub enabled: bool,
    /// Link in the invite email where the invitee can create an account (`%REGISTER_URL%`).
    #[serde(alias = "register_url")]
    pub register_url: String,
    /// The web client whose room link the invite email carries (`%ROOM_LINK%`) when the
    /// homeserver names none (`org.matrix.web_client_location`).
    #[serde(alias = "web_client")]
    pub web_client: String,
    /// Serve store-invite on the v1 API too, without authentication (homeservers older than
    /// the v2 API). Off: 403 `M_FORBIDDEN` there.
    #[serde(alias = "v1_store_invite")]
    pub v1_store_invite: bool,
    /// `invite.expiration.*`
    pub expiration: InviteExpiration,
    /// `invite.resolution.*`
    pub resolution: InviteResolution,
    /// `invite.displayName.*`
    #[serde(alias = "display_name")]
    pub display_name: InviteDisplayName,
    /// `invite.rateLimit.*`
    #[serde(alias = "rate_limit")]
    pub rate_limit: InviteRateLimits,
    /// `invite.blocked.*`
    pub blocked: InviteBlockLists,
    /// `invite.delivery.*`
    pub delivery: InviteDelivery,
}

impl Default for InviteConfig {
    fn default() -> Self {
        InviteConfig {
            enabled: true,
            register_url: "https://app.element.io/#/register".into(),
            web_client: "https://app.element.io".into(),
            v1_store_invite: false,
            expiration: InviteExpiration::default(),
            resolution: InviteResolution::default(),
            display_name: InviteDisplayName::default(),
            rate_limit: InviteRateLimits::default(),
            blocked: InviteBlockLists::default(),
            delivery: InviteDelivery::default(),
        }
    }
}

/// `invite.expiration.*`: pending invites nobody claims are removed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteExpiration {
    /// Whether unclaimed invites expire at all.
    pub enabled: bool,
    /// Minutes after which an unclaimed invite is removed (mxisd's default: 7 days).
    pub after: u64,
    /// Seconds instead of minutes, when set (tests, short-lived setups).
    #[serde(alias = "after_seconds")]
    pub after_seconds: Option<u64>,
}

impl Default for InviteExpiration {
    fn default() -> Self {
        InviteExpiration {
            enabled: true,
            after: 7 * 24 * 60,
            after_seconds: None,
        }
    }
}

impl InviteExpiration {
    /// How long an invite lives, in ms; `None` when invites never expire.
    pub fn lifetime_ms(&self) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        let secs = self.after_seconds.unwrap_or(self.after.saturating_mul(60));
        Some(secs.saturating_mul(1000))
    }
}

/// `invite.resolution.*`: pending invites are checked against the identity stores, since a 3PID
/// can become known without a bind here (the synapse store, for example).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteResolution {
    /// Minutes between checks; 0 turns them off.
    pub timer: u64,
}

impl Default for InviteResolution {
    fn default() -> Self {
        InviteResolution { timer: 5 }
    }
}

/// `invite.displayName.*`: how much of the invited address the redacted `display_name` shows
/// (it ends up in room state, readable by everyone in the room).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteDisplayName {
    /// Characters of the local part kept.
    #[serde(alias = "local_part")]
    pub local_part: usize,
    /// Characters of the domain kept.
    pub domain: usize,
}

impl Default for InviteDisplayName {
    fn default() -> Self {
        InviteDisplayName {
            local_part: 3,
            domain: 3,
        }
    }
}

/// `invite.rateLimit.*`: invite emails per inviting user and per inviting homeserver.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteRateLimits {
    /// Invites sent by one user.
    #[serde(alias = "per_sender")]
    pub per_sender: RateLimit,
    /// Invites sent by all users of one homeserver.
    #[serde(alias = "per_server")]
    pub per_server: RateLimit,
    /// Invite emails to one address, whoever sends them.
    #[serde(alias = "per_recipient")]
    pub per_recipient: RateLimit,
    /// Invites from one client address (the homeserver calling us), whatever sender it names.
    #[serde(alias = "per_client")]
    pub per_client: RateLimit,
}

impl Default for InviteRateLimits {
    fn default() -> Self {
        InviteRateLimits {
            per_sender: RateLimit {
                burst: 10,
                refill: 360,
            },
            per_server: RateLimit {
                burst: 100,
                refill: 36,
            },
            per_recipient: RateLimit {
                burst: 5,
                refill: 3600,
            },
            per_client: RateLimit {
                burst: 100,
                refill: 36,
            },
        }
    }
}

/// `invite.blocked.*`: who may not send invites through this server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteBlockLists {
    /// Room ids.
    pub rooms: Vec<String>,
    /// Homeserver names: their users' invites are refused.
    pub servers: Vec<String>,
}

/// `invite.delivery.*`: retries of the `onbind` call to the invitee's homeserver, and of binds
/// and unbinds forwarded to an upstream identity server (remote sessions).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteDelivery {
    /// Seconds before the first retry; doubled after each failure.
    #[serde(alias = "initial_backoff")]
    pub initial_backoff: u64,
    /// Longest wait between retries, seconds.
    #[serde(alias = "max_backoff")]
    pub max_backoff: u64,
    /// Days after which an undelivered `onbind` is given up (logged as an error).
    #[serde(alias = "give_up_after")]
    pub give_up_after: u64,
}

impl Default for InviteDelivery {
    fn default() -> Self {
        InviteDelivery {
            initial_backoff: 10,
            max_backoff: 3600,
            give_up_after: 7,
        }
    }
}

impl InviteConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let e = |m: &str| Err(ConfigError(m.to_string()));
        if self.register_url.contains(['\r', '\n', ' ']) {
            return e("invite.registerUrl: must be a URL without spaces");
        }
        if self.delivery.initial_backoff == 0
            || self.delivery.max_backoff < self.delivery.initial_backoff
        {
            return e(
                "invite.delivery: initialBackoff must be at least 1 and maxBackoff at least initialBackoff",
            );
        }
        if self.delivery.give_up_after == 0 {
            return e("invite.delivery.giveUpAfter: must be at least 1 day");
        }
        let web = self.web_client.trim_end_matches('/');
        if !(web.starts_with("https://") || web.starts_with("http://"))
            || web.contains(['\r', '\n', ' ', '#', '?'])
        {
            return e("invite.webClient: must be an http(s) URL without query or fragment");
        }
        let limits = &self.rate_limit;
        if [
            limits.per_sender,
            limits.per_server,
            limits.per_recipient,
            limits.per_client,
        ]
        .iter()
        .any(|l| l.refill == 0)
        {
            return e("invite.rateLimit: refill must be at least 1 second");
        }
        if self.blocked.rooms.iter().any(|r| !r.starts_with('!')) {
            return e("invite.blocked.rooms: room ids start with '!'");
        }
        Ok(())
    }
}
