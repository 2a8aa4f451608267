//! What operators do through the admin API: inspect and delete bindings, list sessions and
//! invites, export everything stored about a 3PID or a user (a GDPR access request) and erase it
//! (a GDPR erasure request), and import the bindings of another identity server.

use serde_json::{Value, json};

use super::bindings::{BUILTIN, check_user_id, normalise_threepid};
use super::pepper::Peppers;
use crate::error::Result;
use crate::store::Store;
use crate::store::bindings::BindingRecord;
use crate::store::invites::InviteRecord;
use crate::store::sessions::SessionRecord;

/// A binding as shown to operators.
pub fn binding_json(source: &str, b: &BindingRecord) -> Value {
    json!({
        "source": source,
        "medium": b.medium,
        "address": b.address,
        "mxid": b.mxid,
        "ts": b.ts,
        "not_before": b.not_before,
        "not_after": b.not_after,
    })
}

/// A session as shown to operators: no client secret, no token.
pub fn session_json(s: &SessionRecord) -> Value {
    json!({
        "sid": s.sid,
        "medium": s.medium,
        "address": s.address,
        "created_ms": s.created_ms,
        "validated_ms": s.validated_ms,
        "failed_attempts": s.failed_attempts,
        "messages_sent": s.send_attempt.is_some(),
        "purge_at_ms": s.purge_at_ms,
    })
}

/// An invite as shown to operators.
pub fn invite_json(i: &InviteRecord) -> Value {
    let mut out = json!({
        "token": i.token,
        "medium": i.medium,
        "address": i.address,
        "room_id": i.room_id,
        "sender": i.sender,
        "created_ms": i.created_ms,
        "expires_ms": (i.expires_ms != u64::MAX).then_some(i.expires_ms),
    });
    if let Some(mxid) = &i.signed_for {
        out["signed_for"] = json!(mxid);
    }
    out
}

/// Everything stored about a 3PID.
pub fn export_threepid(store: &Store, medium: &str, address: &str) -> Result<Value> {
    let bindings: Vec<Value> = store
        .bindings_of(medium, address)?
        .iter()
        .map(|(s, b)| binding_json(s, b))
        .collect();
    let sessions: Vec<Value> = store
        .list_sessions(Some((medium, address)), usize::MAX)?
        .iter()
        .map(session_json)
        .collect();
    let invites: Vec<Value> = store
        .list_invites(Some((medium, address)), None, usize::MAX)?
        .iter()
        .map(invite_json)
        .collect();
    let upstream: Vec<Value> = store
        .remote_binding(medium, address)?
        .iter()
        .map(|b| json!({"server": b.server, "mxid": b.mxid}))
        .collect();
    Ok(json!({
        "threepid": {"medium": medium, "address": address},
        "bindings": bindings,
        "sessions": sessions,
        "invites_received": invites,
        "published_upstream": upstream,
    }))
}

/// Everything stored about a Matrix user.
pub fn export_user(store: &Store, mxid: &str) -> Result<Value> {
    let bindings: Vec<Value> = store
        .bindings_of_user(mxid)?
        .iter()
        .map(|(s, b)| binding_json(s, b))
        .collect();
    let tokens: Vec<Value> = store
        .tokens_of_user(mxid)?
        .iter()
        .map(|(_, a)| json!({"created_ms": a.created_ms}))
        .collect();
    let terms: Vec<Value> = store
        .accepted_terms(mxid)?
        .into_iter()
        .map(|(policy, version)| json!({"policy": policy, "version": version}))
        .collect();
    let invites: Vec<Value> = store
        .list_invites(None, Some(mxid), usize::MAX)?
        .iter()
        .map(invite_json)
        .collect();
    let upstream: Vec<Value> = store
        .remote_bindings_of_user(mxid)?
        .iter()
        .map(|(m, a, b)| json!({"medium": m, "address": a, "server": b.server}))
        .collect();
    Ok(json!({
        "mxid": mxid,
        "published_upstream": upstream,
        "bindings": bindings,
        "access_tokens": tokens,
        "accepted_terms": terms,
        "invites_sent": invites,
    }))
}

/// Removes every binding of a 3PID (all sources); returns how many. Durable when this returns.
pub fn delete_threepid_bindings(
    store: &Store,
    peppers: &Peppers,
    medium: &str,
    address: &str,
) -> Result<usize> {
    let guard = peppers.for_writes();
    let all = guard.all();
    let mut removed = 0;
    for (source, _) in store.bindings_of(medium, address)? {
        if store
            .delete_binding(&source, medium, address, &all)?
            .is_some()
        {
            removed += 1;
        }
    }
    store.durable()?;
    Ok(removed)
}

/// Removes every binding to `mxid`; returns how many. Durable when this returns.
pub fn delete_user_bindings(store: &Store, peppers: &Peppers, mxid: &str) -> Result<usize> {
    let guard = peppers.for_writes();
    let all = guard.all();
    let mut removed = 0;
    for (source, b) in store.bindings_of_user(mxid)? {
        if store
            .delete_binding(&source, &b.medium, &b.address, &all)?
            .is_some()
        {
            removed += 1;
        }
    }
    store.durable()?;
    Ok(removed)
}

/// Erases a 3PID: its bindings, sessions and the invites to it. Bindings that an identity store
/// syncs in (`synapse`, `static`) come back with the next sync unless removed there too.
pub fn erase_threepid(
    store: &Store,
    peppers: &Peppers,
    medium: &str,
    address: &str,
) -> Result<Value> {
    let bindings = delete_threepid_bindings(store, peppers, medium, address)?;
    let sessions = store.list_sessions(Some((medium, address)), usize::MAX)?;
    for s in &sessions {
        store.delete_session(s)?;
    }
    let invites = store.list_invites(Some((medium, address)), None, usize::MAX)?;
    for i in &invites {
        store.delete_invite(i)?;
    }
    store.durable()?;
    Ok(json!({
        "bindings": bindings,
        "sessions": sessions.len(),
        "invites_received": invites.len(),
    }))
}

/// Erases a user: bindings to it, access tokens, accepted terms and the invites it sent.
pub fn erase_user(store: &Store, peppers: &Peppers, mxid: &str) -> Result<Value> {
    let bindings = delete_user_bindings(store, peppers, mxid)?;
    let tokens = store.erase_account(mxid)?;
    let invites = store.list_invites(None, Some(mxid), usize::MAX)?;
    for i in &invites {
        store.delete_invite(i)?;
    }
    Ok(json!({
        "bindings": bindings,
        "access_tokens": tokens,
        "invites_sent": invites.len(),
    }))
}

/// What one import batch did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Bindings stored (new, or replacing an older binding to another user).
    pub written: usize,
    /// Bindings already here for the same user: left as they are.
    pub unchanged: usize,
    /// Bindings left alone because the one here, to another user, is newer.
    pub kept_newer: usize,
    /// Records refused: (index in the batch, reason).
    pub rejected: Vec<(usize, String)>,
}

/// Imports bindings from another identity server (`oxisd admin import`) as binds made here.
/// Each record is checked again (normalised 3PID, valid user id, sane times). A 3PID this
/// server already binds to the same user keeps its binding untouched, so importing twice
/// changes nothing; one bound here to another user more recently also stays. The rest is
/// written in one bulk write, indexed under every pepper in use. `finish` compacts the binding
/// tables afterwards (the import's last batch). Durable when this returns.
pub fn import_bindings(
    store: &Store,
    peppers: &Peppers,
    records: Vec<BindingRecord>,
    finish: bool,
) -> Result<ImportOutcome> {
    let mut outcome = ImportOutcome::default();
    let mut fresh = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let checked = normalise_threepid(&r.medium, &r.address)
            .map_err(|e| e.message().to_string())
            .and_then(|(m, a)| {
                if m.as_str() != r.medium || a != r.address {
                    return Err(format!("the address is not in normal form ('{a}')"));
                }
                check_user_id(&r.mxid).map_err(|e| e.message().to_string())?;
                if r.not_before > r.not_after {
                    return Err("not_before is after not_after".into());
                }
                Ok(())
            });
        if let Err(reason) = checked {
            outcome.rejected.push((i, reason));
            continue;
        }
        match store.binding(&r.medium, &r.address, BUILTIN)? {
            Some(here) if here.mxid == r.mxid => outcome.unchanged += 1,
            Some(here) if here.ts > r.ts => outcome.kept_newer += 1,
            _ => fresh.push(r),
        }
    }
    if !fresh.is_empty() {
        let guard = peppers.for_writes();
        outcome.written = store.put_bindings(BUILTIN, fresh, &guard.all())?;
    }
    if finish {
        store.compact_bindings()?;
    }
    Ok(outcome)
}
