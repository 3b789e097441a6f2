//! From outbox rows to delivered emails and SMS, with nothing lost and
//! nothing sent twice. An outbox row gives at most one delivery per channel
//! (`email`, `sms`); both go through the same claims, leases, retries and
//! backoff.
//!
//! 1. **Pull**: read each source's outbox past its cursor, render the email,
//!    and insert one delivery per row — unique per (source, row) and per
//!    idempotency key — moving the cursor in the same transaction.
//! 2. **Claim**: one `UPDATE … RETURNING` marks due deliveries `sending` with
//!    a lease. Concurrent sweeps claim disjoint sets: SQLite runs writes one
//!    at a time, and on Postgres the row's due-ness is re-checked after
//!    waiting for the other sweep's write; a sweep that dies mid-send leaves
//!    its claims to be reclaimed when the lease ends.
//! 3. **Send** and record the result: sent, logged (no Resend key: the
//!    local mail log), retry later with backoff, or failed for good.

use crate::templates;
use serde::Serialize;
use serde_json::Value as Json;
use storage::{transaction, Db, DbError};

/// A claimed send lasts at most this long before another sweep may retry it.
pub const LEASE_SECS: i64 = 120;
/// After this many attempts a delivery is marked failed. With
/// [`backoff_secs`] (2 s doubling, at most an hour apart) the last comes
/// about a day after the first: the first 11 take 4,094 s, then one an
/// hour (found in review: 10 attempts gave up after about 17 minutes, so a
/// half-hour Resend outage or a day's quota lost every email queued in it).
pub const MAX_ATTEMPTS: i64 = 34;

/// One delivery row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: i64,
    /// `email` or `sms`.
    pub channel: String,
    pub event_type: String,
    pub idempotency_key: String,
    pub recipient: String,
    /// The account it is for (see [`Recipient`]); none for an event that
    /// names no account, and for deliveries made before deliveries named
    /// theirs.
    #[serde(skip)]
    pub user_id: Option<String>,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    /// Extra email headers (a JSON object), for promotions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<String>,
    /// The trace context of the event it was made from (see [`OutboxEvent`]).
    #[serde(skip)]
    pub trace: EventTrace,
    /// A promotion's: the Idempotency-Key of the batch it was sent in
    /// (see [`renew_batch`]).
    #[serde(skip)]
    pub batch_key: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The W3C trace context an event was recorded in: the `traceparent` the
/// recording request's own outbound calls send, and its `tracestate`. Sends
/// made for the event carry it, so they join that request's trace whichever
/// request or sweep makes them; without it they carry the sender's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTrace {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl EventTrace {
    fn from_row(r: &storage::Row<'_>) -> Self {
        // Absent (an outbox whose owner has not migrated yet) reads as none.
        let column = |name: &str| r.opt_text(name).ok().flatten().filter(|v| !v.is_empty());
        let traceparent = column("traceparent");
        let tracestate = traceparent.as_ref().and(column("tracestate"));
        EventTrace { traceparent, tracestate }
    }

    /// The headers to add to a send (none: the sender's own trace goes).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        self.traceparent.as_deref().map(|parent| http_kit::trace::headers(parent, self.tracestate.as_deref())).unwrap_or_default()
    }
}

fn from_row(r: &storage::Row<'_>, with_content: bool) -> Result<Delivery, DbError> {
    Ok(Delivery {
        id: r.int("id")?,
        channel: r.text("channel")?,
        event_type: r.text("event_type")?,
        idempotency_key: r.text("idempotency_key")?,
        recipient: r.text("recipient")?,
        user_id: r.opt_text("user_id")?,
        subject: r.text("subject")?,
        html: if with_content { Some(r.text("html")?) } else { None },
        text: if with_content { Some(r.text("text")?) } else { None },
        status: r.text("status")?,
        attempts: r.int("attempts")?,
        next_attempt_at: r.int("next_attempt_at")?,
        last_error: r.opt_text("last_error")?,
        provider_id: r.opt_text("provider_id")?,
        headers: r.opt_text("headers")?,
        trace: EventTrace::from_row(r),
        batch_key: r.opt_text("batch_key")?,
        created_at: r.text("created_at")?,
        updated_at: r.text("updated_at")?,
    })
}

/// The idempotency key for an event: `<event-type>/<entity-id>`.
pub fn idempotency_key(event_type: &str, aggregate_id: &str) -> String {
    format!("{event_type}/{aggregate_id}")
}

/// A domain event read from an outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub event_type: String,
    pub aggregate_id: String,
    pub occurred_at: String,
    pub payload: Json,
    pub trace: EventTrace,
}

/// Where a reader stands in an outbox.
pub fn cursor(db: &dyn Db, name: &str) -> Result<i64, DbError> {
    Ok(db
        .query("SELECT last_id FROM outbox_cursors WHERE source = ?", &[name.into()])?
        .first()
        .map(|r| r.int("last_id"))
        .transpose()?
        .unwrap_or(0))
}

/// Move a reader forward (never back).
pub fn advance(db: &dyn Db, name: &str, last_id: i64) -> Result<(), DbError> {
    db.execute(
        &format!(
            "INSERT INTO outbox_cursors (source, last_id) VALUES (?, ?) \
             ON CONFLICT (source) DO UPDATE SET last_id = {}(outbox_cursors.last_id, excluded.last_id)",
            db.dialect().greatest()
        ),
        &[name.into(), last_id.into()],
    )
}

/// Whether `e` says the outbox table does not exist (its owner has not
/// created its schema yet): SQLite's and Postgres' wording.
pub fn outbox_absent(e: &DbError) -> bool {
    matches!(e, DbError::Other(m) if m.contains("no such table") || (m.contains("relation") && m.contains("does not exist")))
}

/// Which of an outbox's events a reader takes; each lane has a cursor of
/// its own ([`Lane::cursor_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Every event.
    Every,
    /// All but one event type.
    Except(&'static str),
    /// One event type only.
    Only(&'static str),
}

impl Lane {
    /// The cursor of this lane in `source`'s outbox: the source's name, or
    /// `<source>/<event type>` for a lane of one event type.
    pub fn cursor_name(self, source: &str) -> String {
        match self {
            Lane::Only(event_type) => format!("{source}/{event_type}"),
            Lane::Every | Lane::Except(_) => source.to_string(),
        }
    }
}

/// Up to 200 outbox events after `after`, with their row ids. A source whose
/// owner has not created its schema yet has none. (`*`, because an outbox
/// whose owner has not yet added the trace columns is read without them.)
pub fn read_outbox(outbox: &dyn Db, after: i64) -> Result<Vec<(i64, OutboxEvent)>, DbError> {
    Ok(read_lane(outbox, after, Lane::Every)?.0)
}

/// How many outbox rows one read takes at most.
const OUTBOX_PAGE: usize = 200;

/// [`read_outbox`], of one lane's events, and how far the lane is read: the
/// last row read, or, when a lane of some event types found fewer than a
/// page, the outbox's last row (every row of the lane up to it was read, so
/// its cursor may move past the others: found in review, a users cursor
/// left before trailing promotions kept an alert on the backlog firing).
/// Rows are committed in id order (SQLite has one writer; on Postgres the
/// outbox's lock is held from the id's draw to the commit), so no row the
/// lane has not read can appear below that.
pub fn read_lane(outbox: &dyn Db, after: i64, lane: Lane) -> Result<(Vec<(i64, OutboxEvent)>, Option<i64>), DbError> {
    let absent = |e: DbError| if outbox_absent(&e) { Ok((Vec::new(), None)) } else { Err(e) };
    let (filter, mut params): (&str, Vec<storage::Value>) = match lane {
        Lane::Every => ("", vec![]),
        Lane::Except(t) => (" AND event_type <> ?", vec![t.into()]),
        Lane::Only(t) => (" AND event_type = ?", vec![t.into()]),
    };
    let end = match lane {
        Lane::Every => None,
        Lane::Except(_) | Lane::Only(_) => match outbox.query("SELECT MAX(id) AS m FROM outbox", &[]) {
            Ok(rows) => rows.first().map(|r| r.opt_int("m")).transpose()?.flatten(),
            Err(e) => return absent(e),
        },
    };
    params.insert(0, after.into());
    let bound = match end {
        Some(end) => {
            params.insert(1, end.into());
            " AND id <= ?"
        }
        None => "",
    };
    let rows = match outbox.query(&format!("SELECT * FROM outbox WHERE id > ?{bound}{filter} ORDER BY id LIMIT {OUTBOX_PAGE}"), &params) {
        Ok(rows) => rows,
        Err(e) => return absent(e),
    };
    let events = rows
        .iter()
        .map(|r| {
            Ok((
                r.int("id")?,
                OutboxEvent {
                    event_type: r.text("event_type")?,
                    aggregate_id: r.text("aggregate_id")?,
                    occurred_at: r.text("occurred_at")?,
                    payload: serde_json::from_str(&r.text("payload")?).unwrap_or(Json::Null),
                    trace: EventTrace::from_row(&r),
                },
            ))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let last_read = events.last().map(|(id, _)| *id);
    let reached = if events.len() < OUTBOX_PAGE { end.or(last_read) } else { last_read };
    Ok((events, reached))
}

/// Whom a delivery goes to: the address (an email address, or an E.164
/// number for an SMS) and the account it is for. The address alone does not
/// say whose a delivery is (a phone number is neither verified nor unique),
/// so the data export, account deletion and the consent check before each
/// SMS go by the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    /// The users service's id of the account; none for an event that names
    /// no account.
    pub user_id: Option<String>,
}

impl Recipient {
    /// `address`, as the account `user_id`'s.
    pub fn of_account(user_id: &str, address: impl Into<String>) -> Recipient {
        Recipient { address: address.into(), user_id: Some(user_id.to_string()) }
    }
}

/// Finds the recipient of an event on one channel (`None`: not sent on it).
pub type Addressee<'a> = &'a dyn Fn(&Json) -> Result<Option<Recipient>, DbError>;

/// The idempotency key of an event's SMS (the email keeps the plain key).
pub fn sms_idempotency_key(event_type: &str, aggregate_id: &str) -> String {
    format!("sms/{}", idempotency_key(event_type, aggregate_id))
}

/// An email the templates do not cover, rendered by the caller (a
/// promotion, whose content lives in the users database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnEmail {
    pub to: Recipient,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// Extra email headers, a JSON object.
    pub headers: Option<String>,
}

/// Renders events the templates do not cover (`None`: nothing to send).
pub type OwnRenderer<'a> = &'a dyn Fn(&OutboxEvent) -> Result<Option<OwnEmail>, DbError>;

/// One delivery to insert.
pub(crate) struct NewDelivery {
    pub(crate) source_id: i64,
    pub(crate) channel: &'static str,
    pub(crate) event_type: String,
    pub(crate) key: String,
    pub(crate) to: Recipient,
    pub(crate) subject: String,
    pub(crate) html: String,
    pub(crate) text: String,
    pub(crate) headers: Option<String>,
    pub(crate) trace: EventTrace,
}

/// Pull new outbox rows of `source` into deliveries. `email_to` finds the
/// email address for an event, `sms_to` the phone number of a customer who
/// consented to SMS, each with the account it is for (kept on the
/// delivery). Returns how many deliveries were created.
pub fn pull(db: &dyn Db, source: &str, outbox: &dyn Db, store_name: &str, email_to: Addressee, sms_to: Addressee, now: i64) -> Result<usize, DbError> {
    pull_with(db, source, Lane::Every, outbox, store_name, email_to, sms_to, &|_| Ok(None), now)
}

/// [`pull`], of one lane of the outbox, with `own` rendering the events the
/// templates do not cover.
#[allow(clippy::too_many_arguments)]
pub fn pull_with(
    db: &dyn Db,
    source: &str,
    lane: Lane,
    outbox: &dyn Db,
    store_name: &str,
    email_to: Addressee,
    sms_to: Addressee,
    own: OwnRenderer,
    now: i64,
) -> Result<usize, DbError> {
    let cursor_name = lane.cursor_name(source);
    let after = cursor(db, &cursor_name)?;
    let (events, reached) = read_lane(outbox, after, lane)?;
    let Some(last) = reached.filter(|r| *r > after) else { return Ok(0) };
    if events.is_empty() {
        // Only other lanes' events since: move past them.
        advance(db, &cursor_name, last)?;
        return Ok(0);
    }
    // Render and address everything before taking the write lock.
    let mut pending = Vec::new();
    for (id, e) in &events {
        let key = idempotency_key(&e.event_type, &e.aggregate_id);
        // A templated event's email, or else the caller's own rendering.
        let email = match templates::render(&e.event_type, &e.payload, store_name) {
            Some(t) => email_to(&e.payload)?.map(|to| OwnEmail { to, subject: t.subject, html: t.html, text: t.text, headers: None }),
            None => own(e)?,
        };
        if let Some(OwnEmail { to, subject, html, text, headers }) = email.filter(|m| crate::privacy::deliverable(&m.to.address)) {
            let trace = e.trace.clone();
            pending.push(NewDelivery { source_id: *id, channel: "email", event_type: e.event_type.clone(), key, to, subject, html, text, headers, trace });
        }
        if let Some(sms) = crate::sms::render(&e.event_type, &e.payload, store_name) {
            if let Some(to) = sms_to(&e.payload)? {
                let key = sms_idempotency_key(&e.event_type, &e.aggregate_id);
                let (subject, text) = (sms.label, sms.body);
                let trace = e.trace.clone();
                pending.push(NewDelivery { source_id: *id, channel: "sms", event_type: e.event_type.clone(), key, to, subject, html: String::new(), text, headers: None, trace });
            }
        }
    }
    // A promotion to everyone who consents: fanned out later, a page at a
    // time (`promotions::fan_out`), never as one write.
    let fan_outs: Vec<(&str, i64, &EventTrace)> = events
        .iter()
        .filter(|(_, e)| e.event_type == PROMOTION && e.payload.get("user").is_none())
        .filter_map(|(id, e)| Some((e.payload["promotion_id"].as_str()?, *id, &e.trace)))
        .collect();
    let stamp = clock::now_rfc3339();
    // Accounts the users service deleted: recorded as erased here too.
    let deleted: Vec<&str> = events.iter().filter(|(_, e)| e.event_type == "user.deleted").filter_map(|(_, e)| e.payload["user_id"].as_str()).collect();
    transaction(db, |tx| {
        // An account deleted while these were rendered gets none of them.
        crate::privacy::lock_log(tx)?;
        for user_id in &deleted {
            crate::privacy::erase_in(tx, user_id, "", &stamp, true)?;
        }
        for (promotion_id, source_id, trace) in &fan_outs {
            crate::promotions::register_fan_out(tx, promotion_id, *source_id, trace, &stamp)?;
        }
        let created = insert_new(tx, source, &pending, now, &stamp)?;
        advance(tx, &cursor_name, last)?;
        Ok(created)
    })
}

/// Insert `pending` (each at most once: a delivery already made from the
/// same row, or with the same key, is left as it is), leaving out those for
/// accounts erased meanwhile. In the caller's transaction, after
/// [`crate::privacy::lock_log`]. Returns how many were created.
pub(crate) fn insert_new(tx: &dyn Db, source: &str, pending: &[NewDelivery], now: i64, stamp: &str) -> Result<usize, DbError> {
    let accounts: Vec<&str> = pending.iter().filter_map(|d| d.to.user_id.as_deref()).collect();
    let erased = crate::privacy::erased_among(tx, &accounts)?;
    let mut created = 0;
    for d in pending.iter().filter(|d| d.to.user_id.as_ref().is_none_or(|u| !erased.contains(u))) {
        let inserted = tx.query(
            "INSERT INTO deliveries (source, source_id, channel, event_type, idempotency_key, recipient, user_id, subject, html, text, headers, \
             traceparent, tracestate, status, next_attempt_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            &[
                source.into(), d.source_id.into(), d.channel.into(), d.event_type.as_str().into(), d.key.as_str().into(),
                d.to.address.as_str().into(), d.to.user_id.clone().into(), d.subject.as_str().into(), d.html.as_str().into(), d.text.as_str().into(), d.headers.clone().into(),
                d.trace.traceparent.clone().into(), d.trace.tracestate.clone().into(),
                now.into(), stamp.into(), stamp.into(),
            ],
        )?;
        created += inserted.len();
    }
    Ok(created)
}

/// The event type of promotional email: sent in paced batches, apart from
/// the transactional deliveries.
pub const PROMOTION: &str = "promotion.send";

/// Claim up to `limit` due transactional deliveries (pending and due, or
/// with a lapsed lease). A lapsed lease on a delivery that already used its
/// last attempt fails it.
pub fn claim_due(db: &dyn Db, now: i64, limit: u32) -> Result<Vec<Delivery>, DbError> {
    claim_lane(db, now, limit, false, None)
}

/// Claim up to `limit` due promotional deliveries (see [`claim_due`]), in
/// id order. A batch sent before that is due again (its answer was unclear,
/// or its sweep died mid-send) comes first, alone and whole: the same
/// deliveries, to go under the same key ([`renew_batch`]).
pub fn claim_due_promotions(db: &dyn Db, now: i64, limit: u32) -> Result<Vec<Delivery>, DbError> {
    let due = "((status = 'pending' AND next_attempt_at <= ?) OR (status = 'sending' AND lease_until <= ?))";
    // Not while a delivery of the batch is still under a live lease (its
    // sweep is recording the batch's outcomes, or still sending it): the
    // rest would go under the same key in part (found in review: Resend
    // refuses that, and failed the other part for good).
    let again = db.query(
        &format!(
            "SELECT batch_key FROM deliveries WHERE event_type = ? AND batch_key IS NOT NULL AND {due} \
             AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.batch_key = deliveries.batch_key AND o.status = 'sending' AND o.lease_until > ?) \
             ORDER BY id LIMIT 1"
        ),
        &[PROMOTION.into(), now.into(), now.into(), now.into()],
    )?;
    let mut claimed = match again.first().map(|r| r.text("batch_key")).transpose()? {
        Some(key) => {
            fail_lapsed_last_attempts(db, now)?;
            // Every open delivery of the batch, not only those due by now:
            // their outcomes were recorded a moment apart, and a batch sent
            // in parts under one key is refused by Resend (found in review).
            let rows = db.query(
                "UPDATE deliveries SET status = 'sending', lease_until = ?, attempts = attempts + 1, updated_at = ? \
                 WHERE batch_key = ? AND (status = 'pending' OR (status = 'sending' AND lease_until <= ?)) RETURNING *",
                &[(now + LEASE_SECS).into(), clock::now_rfc3339().into(), key.into(), now.into()],
            )?;
            rows.iter().map(|r| from_row(&r, true)).collect::<Result<Vec<_>, _>>()?
        }
        None => claim_lane(db, now, limit, true, None)?,
    };
    claimed.sort_by_key(|d| d.id);
    Ok(claimed)
}

/// Claim the due transactional deliveries of the events recorded with this
/// `traceparent` (one request's own, see [`EventTrace`]), up to `limit`:
/// what a request's in-process nudge sends. The same claim as
/// [`claim_due`], so a sweep running at the same time never sends them too.
pub fn claim_due_of(db: &dyn Db, traceparent: &str, now: i64, limit: u32) -> Result<Vec<Delivery>, DbError> {
    claim_lane(db, now, limit, false, Some(traceparent))
}

/// A lapsed lease on a delivery that already used its last attempt fails
/// it. Failed for good here, not in `record`: a link email's body goes too,
/// and a promotion's copy, as `record` drops them.
fn fail_lapsed_last_attempts(db: &dyn Db, now: i64) -> Result<(), DbError> {
    let secret_carrying = templates::SECRET_CARRYING.map(|t| format!("'{t}'")).join(", ");
    let parts = |column: &str| format!("{column} = CASE WHEN event_type IN ({secret_carrying}) THEN ? WHEN event_type = '{PROMOTION}' THEN ? ELSE {column} END");
    db.execute(
        &format!(
            "UPDATE deliveries SET status = 'failed', lease_until = NULL, updated_at = ?, \
             last_error = COALESCE(last_error, 'the last attempt did not finish'), {}, {} \
             WHERE status = 'sending' AND lease_until <= ? AND attempts >= ?",
            parts("html"),
            parts("text")
        ),
        &[
            clock::now_rfc3339().into(),
            REMOVED.into(),
            PROMOTION_NOT_KEPT.into(),
            REMOVED.into(),
            PROMOTION_NOT_KEPT.into(),
            now.into(),
            MAX_ATTEMPTS.into(),
        ],
    )
}

fn claim_lane(db: &dyn Db, now: i64, limit: u32, promotions: bool, traceparent: Option<&str>) -> Result<Vec<Delivery>, DbError> {
    fail_lapsed_last_attempts(db, now)?;
    // The condition is repeated outside the subquery for Postgres: two sweeps
    // at once pick the same ids there, and the second one's UPDATE, after
    // waiting for the first, re-checks only the outer WHERE on the row the
    // first one wrote (now `sending` with a fresh lease), so it skips it
    // instead of claiming it again. On SQLite it is simply true.
    // A promotion already sent in a batch goes again only with its whole
    // batch, under the batch's key (`claim_due_promotions`): never mixed
    // into a new one, which would take that key with another payload.
    let lane = if promotions { "= '{PROMOTION}' AND batch_key IS NULL" } else { "<> '{PROMOTION}'" }.replace("{PROMOTION}", PROMOTION);
    let (due, due_params): (String, Vec<storage::Value>) = match traceparent {
        None => (
            format!("((status = 'pending' AND next_attempt_at <= ?) OR (status = 'sending' AND lease_until <= ?)) AND event_type {lane}"),
            vec![now.into(), now.into()],
        ),
        // One request's own: pending ones only (a lapsed lease is the sweep's).
        Some(t) => (format!("status = 'pending' AND next_attempt_at <= ? AND traceparent = ? AND event_type {lane}"), vec![now.into(), t.into()]),
    };
    let mut params: Vec<storage::Value> = vec![(now + LEASE_SECS).into(), clock::now_rfc3339().into()];
    params.extend(due_params.iter().cloned());
    params.push((limit as i64).into());
    params.extend(due_params);
    let rows = db.query(
        &format!(
            "UPDATE deliveries SET status = 'sending', lease_until = ?, attempts = attempts + 1, updated_at = ? \
             WHERE id IN (SELECT id FROM deliveries WHERE {due} ORDER BY id LIMIT ?) AND {due} \
             RETURNING *"
        ),
        &params,
    )?;
    rows.iter().map(|r| from_row(&r, true)).collect()
}

/// Take the next slot for a promotional batch: true at most once per
/// `gap_ms` across every sweep and instance (a conditional update on the
/// shared `pacing` row).
pub fn take_promotion_slot(db: &dyn Db, now_ms: i64, gap_ms: i64) -> Result<bool, DbError> {
    // The first use makes the row; later ones move it only once it is due.
    let rows = db.query(
        "INSERT INTO pacing (lane, next_at_ms) VALUES ('promotions', ?) \
         ON CONFLICT (lane) DO UPDATE SET next_at_ms = excluded.next_at_ms WHERE pacing.next_at_ms <= ? RETURNING lane",
        &[(now_ms + gap_ms).into(), now_ms.into()],
    )?;
    Ok(!rows.is_empty())
}

/// The batch whose slot was taken goes out now: the next slot is no
/// sooner than `gap_ms` after this moment. The slot was taken before the
/// batch was claimed and checked, which takes longer for one batch than
/// another, so slots a second apart could send batches closer than that
/// (a test saw 914 ms on Postgres).
pub fn pace_promotions_from(db: &dyn Db, now_ms: i64, gap_ms: i64) -> Result<(), DbError> {
    db.execute(
        &format!("UPDATE pacing SET next_at_ms = {}(next_at_ms, ?) WHERE lane = 'promotions'", db.dialect().greatest()),
        &[(now_ms + gap_ms).into()],
    )
}

/// How a send attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent { provider_id: Option<String> },
    /// No Resend key: written to the local mail log instead.
    Logged,
    /// 429, 5xx or a network error: try again (honouring `Retry-After`).
    Retry { after_secs: Option<i64>, error: String },
    /// Any other 4xx: do not try again.
    Permanent { error: String },
}

impl Attempt {
    /// A retry that says the provider itself is failing (down, rate
    /// limiting, timing out), so the sweep's other deliveries to it are
    /// handed back ([`hand_back`]). A 409 is this delivery's own earlier
    /// request still running at Resend (`resend::classify`): the others go
    /// ahead.
    pub fn provider_failing(&self) -> bool {
        matches!(self, Attempt::Retry { error, .. } if !error.starts_with("409"))
    }
}

/// Exponential backoff (2 s, 4 s, 8 s … up to an hour), never sooner than
/// the provider's `Retry-After`: that plus a second, since times here are
/// whole seconds and a retry due at the second the answer came plus
/// `Retry-After` could come up to a second early (found by a CI run: a
/// 2-second Retry-After was retried 1.1 s later).
pub fn backoff_secs(attempts: i64, retry_after: Option<i64>) -> i64 {
    let exp = 2i64.saturating_pow(attempts.clamp(1, 12) as u32).min(3600);
    exp.max(retry_after.map_or(0, |r| r.saturating_add(1)))
}

/// Hand a claimed delivery back unsent, its attempt not counted: the
/// provider failed another delivery of this sweep a moment ago (down, or
/// rate-limiting), so trying it now would only spend one of its attempts.
/// Only while the claim is still this one's.
pub fn hand_back(db: &dyn Db, d: &Delivery) -> Result<(), DbError> {
    db.execute(
        "UPDATE deliveries SET status = 'pending', attempts = attempts - 1, lease_until = NULL, updated_at = ? \
         WHERE id = ? AND status = 'sending' AND attempts = ?",
        &[clock::now_rfc3339().into(), d.id.into(), d.attempts.into()],
    )
}

/// Renew this sweep's claim on `d` right before it is sent, so the lease
/// covers the send (`send_secs`: the longest the provider call may take),
/// however long the batch before it took. True while the claim is still
/// this one's: the delivery is `sending` with the attempt count its claim
/// gave it. False when its lease lapsed and another sweep claimed it again,
/// or when its account was erased since (the row is failed and blanked):
/// then it must not be sent from here.
pub fn renew(db: &dyn Db, d: &Delivery, now: i64, send_secs: i64) -> Result<bool, DbError> {
    let rows = db.query(
        "UPDATE deliveries SET lease_until = ? WHERE id = ? AND status = 'sending' AND attempts = ? RETURNING id",
        &[(now + LEASE_SECS + send_secs).into(), d.id.into(), d.attempts.into()],
    )?;
    Ok(!rows.is_empty())
}

/// [`renew`] for the promotions of one batch, in one statement, recording
/// the batch's Idempotency-Key on them before it is sent: should the batch
/// have to be tried again, [`claim_due_promotions`] claims the same
/// deliveries, and they go under the same key. `key` is the one they were
/// sent under before, if they were ([`Delivery::batch_key`]), else one made
/// from their own keys. Returns the deliveries still this sweep's claims,
/// and the key.
pub fn renew_batch(db: &dyn Db, ds: &[Delivery], now: i64, send_secs: i64) -> Result<(Vec<i64>, String), DbError> {
    let key = ds.iter().find_map(|d| d.batch_key.clone()).unwrap_or_else(|| batch_key_of(ds));
    if ds.is_empty() {
        return Ok((Vec::new(), key));
    }
    let claims = vec!["(id = ? AND attempts = ?)"; ds.len()].join(" OR ");
    let mut params: Vec<storage::Value> = vec![(now + LEASE_SECS + send_secs).into(), key.as_str().into()];
    params.extend(ds.iter().flat_map(|d| [d.id.into(), d.attempts.into()]));
    let rows = db.query(
        &format!("UPDATE deliveries SET lease_until = ?, batch_key = ? WHERE status = 'sending' AND ({claims}) RETURNING id"),
        &params,
    )?;
    Ok((rows.iter().map(|r| r.int("id")).collect::<Result<_, _>>()?, key))
}

/// A batch's Idempotency-Key made from its deliveries' keys, in id order.
pub fn batch_key_of(ds: &[Delivery]) -> String {
    use sha2::{Digest, Sha256};
    let mut keys: Vec<(i64, &str)> = ds.iter().map(|d| (d.id, d.idempotency_key.as_str())).collect();
    keys.sort();
    let digest = Sha256::digest(keys.iter().map(|(_, k)| *k).collect::<Vec<_>>().join("\n").as_bytes());
    format!("promotions/{}", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>())
}

/// Record the outcome of a claimed delivery, if it is still this claim's
/// (see [`renew`]): an outcome never overwrites another sweep's claim or an
/// erasure. Returns whether it was recorded.
pub fn record(db: &dyn Db, d: &Delivery, attempt: &Attempt, now: i64) -> Result<bool, DbError> {
    let stamp = clock::now_rfc3339();
    let (status, next, error, provider) = match attempt {
        Attempt::Sent { provider_id } => ("sent", d.next_attempt_at, None, provider_id.clone()),
        Attempt::Logged => ("logged", d.next_attempt_at, None, None),
        Attempt::Retry { after_secs, error } if d.attempts < MAX_ATTEMPTS => {
            ("pending", now + backoff_secs(d.attempts, *after_secs), Some(error.clone()), None)
        }
        Attempt::Retry { error, .. } => ("failed", d.next_attempt_at, Some(format!("gave up after {} attempts: {error}", d.attempts)), None),
        Attempt::Permanent { error } => ("failed", d.next_attempt_at, Some(error.clone()), None),
    };
    // A link email is kept only as long as it may still have to be sent; so
    // is a promotion's copy of the admin's text (found in review: up to
    // 200 KB per customer, kept for ever, one copy per recipient; the
    // promotion itself is kept once, in the users database).
    let not_kept = if templates::carries_secret(&d.event_type) {
        Some(REMOVED)
    } else if d.event_type == PROMOTION {
        Some(PROMOTION_NOT_KEPT)
    } else {
        None
    };
    let (html, text) = match not_kept.filter(|_| status != "pending") {
        Some(marker) => (Some(marker), Some(marker)),
        None => (None, None),
    };
    let recorded = db.query(
        "UPDATE deliveries SET status = ?, next_attempt_at = ?, last_error = ?, provider_id = COALESCE(?, provider_id), \
         html = COALESCE(?, html), text = COALESCE(?, text), lease_until = NULL, updated_at = ? \
         WHERE id = ? AND status = 'sending' AND attempts = ? RETURNING id",
        &[status.into(), next.into(), error.into(), provider.into(), html.into(), text.into(), stamp.into(), d.id.into(), d.attempts.into()],
    )?;
    Ok(!recorded.is_empty())
}

/// What a link email's stored body becomes once handed over, and what the
/// admin view shows of it before.
pub const REMOVED: &str = "[not kept: this email carried a single-use link]";

/// What a promotion email's stored body becomes once it is sent (or
/// failed for good): the promotion's text is kept once, with the promotion.
pub const PROMOTION_NOT_KEPT: &str = "[not kept once sent: the promotion's text is kept with the promotion]";

/// Deliveries for the admin listing, newest first, optionally of one
/// status and one channel.
pub fn list(db: &dyn Db, status: Option<&str>, channel: Option<&str>, limit: u32, offset: i64) -> Result<(Vec<Delivery>, i64), DbError> {
    let mut clauses = Vec::new();
    let mut params: Vec<storage::Value> = Vec::new();
    for (column, value) in [("status", status), ("channel", channel)] {
        if let Some(v) = value {
            clauses.push(format!("{column} = ?"));
            params.push(v.into());
        }
    }
    let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    let total = db.query(&format!("SELECT COUNT(*) AS n FROM deliveries {filter}"), &params)?.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
    params.push((limit as i64).into());
    params.push(offset.into());
    let rows = db.query(&format!("SELECT * FROM deliveries {filter} ORDER BY id DESC LIMIT ? OFFSET ?"), &params)?;
    Ok((rows.iter().map(|r| from_row(&r, false)).collect::<Result<_, _>>()?, total))
}

/// One delivery with its content, for the admin view: a link email's body
/// is never shown (its link would let an admin act as the customer).
pub fn get(db: &dyn Db, id: i64) -> Result<Option<Delivery>, DbError> {
    let found = db.query("SELECT * FROM deliveries WHERE id = ?", &[id.into()])?.first().map(|r| from_row(&r, true)).transpose()?;
    Ok(found.map(|mut d| {
        if templates::carries_secret(&d.event_type) {
            d.html = Some(REMOVED.to_string());
            d.text = Some(REMOVED.to_string());
        }
        d
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use storage::native::MemDb;

    use crate::test_support::setup;

    fn add(outbox: &MemDb, kind: &str, id: &str) {
        let payload = json!({ "user": { "first_name": "Ann", "email": "ann@example.com" } });
        outbox.execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES (?, ?, ?, 'now')", &[kind.into(), id.into(), payload.to_string().into()]).unwrap();
    }

    /// The event's user, at `field`, as the recipient (for their account
    /// when the event names it).
    fn user_at(payload: &Json, field: &str) -> Option<Recipient> {
        let user = &payload["user"];
        user[field].as_str().map(|address| Recipient { address: address.into(), user_id: user["id"].as_str().map(str::to_string) })
    }

    fn to(payload: &Json) -> Result<Option<Recipient>, DbError> {
        Ok(user_at(payload, "email"))
    }

    fn no_sms(_: &Json) -> Result<Option<Recipient>, DbError> {
        Ok(None)
    }

    fn phone(payload: &Json) -> Result<Option<Recipient>, DbError> {
        Ok(user_at(payload, "phone"))
    }

    #[test]
    fn promotions_have_their_own_lane_and_pace() {
        let (db, outbox) = setup();
        add(&outbox, "user.registered", "u1");
        add(&outbox, PROMOTION, "p1/u1");
        let own = |e: &OutboxEvent| -> Result<Option<OwnEmail>, DbError> {
            Ok((e.event_type == PROMOTION).then(|| OwnEmail {
                to: Recipient::of_account("u1", "ann@example.com"),
                subject: "Sale".into(),
                html: "<p>Sale</p>".into(),
                text: "Sale".into(),
                headers: Some(r#"{"List-Unsubscribe-Post":"List-Unsubscribe=One-Click"}"#.into()),
            }))
        };
        assert_eq!(pull_with(&db, "users", Lane::Every, &outbox, "Shop", &to, &no_sms, &own, 100).unwrap(), 2);
        let transactional = claim_due(&db, 100, 10).unwrap();
        assert_eq!(transactional.iter().map(|d| d.event_type.as_str()).collect::<Vec<_>>(), ["user.registered"]);
        let promotional = claim_due_promotions(&db, 100, 10).unwrap();
        assert_eq!(promotional.len(), 1);
        assert!(promotional[0].headers.as_deref().unwrap().contains("One-Click"));
        assert_eq!(promotional[0].idempotency_key, "promotion.send/p1/u1");
        assert_eq!(promotional[0].user_id.as_deref(), Some("u1"), "a promotion is for its customer's account");
        assert!(take_promotion_slot(&db, 10_000, 1000).unwrap());
        assert!(!take_promotion_slot(&db, 10_999, 1000).unwrap(), "one batch per gap");
        assert!(take_promotion_slot(&db, 11_000, 1000).unwrap());
    }

    /// Found in review: a promotion to many customers is one outbox row
    /// each, and a password reset recorded after them waited until every one
    /// was pulled (200 a pull), its link expiring on the way, while every
    /// customer's request rendered promotions. Now promotions have a cursor
    /// of their own, which only the sweep pulls.
    #[test]
    fn a_promotion_backlog_does_not_hold_up_a_reset_email() {
        let (db, outbox) = setup();
        for i in 0..250 {
            add(&outbox, PROMOTION, &format!("p1/u{i}"));
        }
        let payload = json!({ "user": { "first_name": "Ann", "email": "ann@example.com" }, "expires_at": "t", "secret": { "token": "tk", "link": "https://x/?token=tk" } });
        outbox.execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES ('user.password_reset_requested', 'r1', ?, 'now')", &[payload.to_string().into()]).unwrap();
        let rendered = std::cell::Cell::new(0);
        let own = |e: &OutboxEvent| -> Result<Option<OwnEmail>, DbError> {
            rendered.set(rendered.get() + 1);
            let user = e.aggregate_id.trim_start_matches("p1/");
            Ok(Some(OwnEmail { to: Recipient::of_account(user, format!("{user}@example.com")), subject: "Sale".into(), html: "Sale".into(), text: "Sale".into(), headers: None }))
        };
        let transactional = Lane::Except(PROMOTION);
        assert_eq!(pull_with(&db, "users", transactional, &outbox, "Shop", &to, &no_sms, &own, 100).unwrap(), 1, "the reset, at once");
        assert_eq!(rendered.get(), 0, "no promotion rendered");
        assert_eq!(claim_due(&db, 100, 10).unwrap()[0].event_type, "user.password_reset_requested");
        let promotions = Lane::Only(PROMOTION);
        assert_eq!(pull_with(&db, "users", promotions, &outbox, "Shop", &to, &no_sms, &own, 100).unwrap(), 200);
        assert_eq!(pull_with(&db, "users", promotions, &outbox, "Shop", &to, &no_sms, &own, 100).unwrap(), 50);
        assert_eq!(pull_with(&db, "users", promotions, &outbox, "Shop", &to, &no_sms, &own, 100).unwrap(), 0);
        assert_eq!(pull_with(&db, "users", transactional, &outbox, "Shop", &to, &no_sms, &own, 100).unwrap(), 0);
        assert_eq!((cursor(&db, "users").unwrap(), cursor(&db, "users/promotion.send").unwrap()), (251, 251));
        // Promotions after the last transactional event: the users cursor
        // moves past them all the same (the outbox backlog alert reads it).
        for i in 0..3 {
            add(&outbox, PROMOTION, &format!("p2/u{i}"));
        }
        assert_eq!(pull_with(&db, "users", transactional, &outbox, "Shop", &to, &no_sms, &own, 100).unwrap(), 0);
        assert_eq!(cursor(&db, "users").unwrap(), 254);
    }

    /// Found in review: a batch whose answer was unclear (or whose sweep
    /// died mid-send) was claimed again as whatever promotions were due
    /// then, under a key made from that set: another key to Resend, which
    /// then sent the emails the first attempt had sent once more. Now the
    /// same batch goes again, under the same key.
    #[test]
    fn a_promotion_batch_tried_again_is_the_same_batch_under_the_same_key() {
        let (db, outbox) = setup();
        for i in 0..5 {
            add(&outbox, PROMOTION, &format!("p1/u{i}"));
        }
        let own = |e: &OutboxEvent| -> Result<Option<OwnEmail>, DbError> {
            let user = e.aggregate_id.trim_start_matches("p1/");
            Ok(Some(OwnEmail { to: Recipient::of_account(user, format!("{user}@example.com")), subject: "Sale".into(), html: "Sale".into(), text: "Sale".into(), headers: None }))
        };
        assert_eq!(pull_with(&db, "users", Lane::Only(PROMOTION), &outbox, "Shop", &to, &no_sms, &own, 100).unwrap(), 5);
        let ids = |ds: &[Delivery]| ds.iter().map(|d| d.id).collect::<Vec<_>>();

        // A batch of two whose answer was unclear: tried again as those two.
        let first = claim_due_promotions(&db, 100, 2).unwrap();
        let (renewed, key) = renew_batch(&db, &first, 100, 11).unwrap();
        assert_eq!((renewed, key.clone()), (ids(&first), batch_key_of(&first)));
        // Recorded a second apart, as a loop over a batch may be.
        for (i, d) in first.iter().enumerate() {
            record(&db, d, &Attempt::Retry { after_secs: None, error: "timed out".into() }, 100 + i as i64).unwrap();
        }
        // Due for the first of them only: the whole batch goes again.
        let again = claim_due_promotions(&db, 102, 3).unwrap();
        assert_eq!(ids(&again), ids(&first), "the same batch, not the first three due");
        assert_eq!(renew_batch(&db, &again, 102, 11).unwrap(), (ids(&first), key.clone()), "under the same key");
        for d in &again {
            record(&db, d, &Attempt::Sent { provider_id: None }, 1000).unwrap();
        }
        // Sent: the copy of the promotion's text is not kept per customer.
        let kept = db.query("SELECT DISTINCT html || '|' || text AS parts FROM deliveries WHERE status = 'sent'", &[]).unwrap();
        assert_eq!(kept.iter().map(|r| r.text("parts").unwrap()).collect::<Vec<_>>(), vec![format!("{PROMOTION_NOT_KEPT}|{PROMOTION_NOT_KEPT}")]);
        let waiting = db.query("SELECT DISTINCT html FROM deliveries WHERE status = 'pending'", &[]).unwrap();
        assert_eq!(waiting.iter().map(|r| r.text("html").unwrap()).collect::<Vec<_>>(), vec!["Sale".to_string()], "kept while it may still be sent");

        // A batch whose sweep died mid-send: claimed again whole when its lease lapses.
        let next = claim_due_promotions(&db, 1000, 2).unwrap();
        let (_, next_key) = renew_batch(&db, &next, 1000, 11).unwrap();
        assert_ne!(next_key, key);
        let lapsed = claim_due_promotions(&db, 1000 + LEASE_SECS + 12, 10).unwrap();
        assert_eq!(ids(&lapsed), ids(&next), "the dead sweep's batch, not every promotion due");
        assert_eq!(renew_batch(&db, &lapsed, 2000, 11).unwrap().1, next_key);

        // Found in review: a batch whose outcomes were recorded in part (the
        // sweep failed part-way) went again in part under its key, and the
        // rest was refused. While a delivery of it is still leased, neither
        // the batch nor its due part is claimed; once the lease lapses it
        // goes whole.
        let at = 2000 + LEASE_SECS;
        record(&db, &lapsed[0], &Attempt::Retry { after_secs: None, error: "timed out".into() }, at).unwrap();
        let meanwhile = claim_due_promotions(&db, at + 5, 10).unwrap();
        assert!(meanwhile.iter().all(|d| d.batch_key.is_none()), "{:?}", ids(&meanwhile));
        assert!(meanwhile.iter().all(|d| !ids(&lapsed).contains(&d.id)), "no part of the leased batch");
        for d in &meanwhile {
            record(&db, d, &Attempt::Sent { provider_id: None }, at + 5).unwrap();
        }
        let whole = claim_due_promotions(&db, 2000 + 2 * LEASE_SECS + 30, 10).unwrap();
        assert_eq!(ids(&whole), ids(&lapsed), "the whole batch once its lease lapsed");
    }

    /// The promotions cursor starts where the users cursor stood when it
    /// still read promotions too (notifications migration 8), so none is
    /// pulled twice or skipped.
    #[test]
    fn the_promotion_lane_starts_where_the_users_cursor_stood() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, &crate::schema::MIGRATIONS[..7]).unwrap();
        advance(&db, "users", 41).unwrap();
        advance(&db, "orders", 7).unwrap();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        assert_eq!(cursor(&db, "users/promotion.send").unwrap(), 41);
        assert_eq!(cursor(&db, "orders/promotion.send").unwrap(), 0);
        let fresh = MemDb::new();
        storage::migrations::migrate(&fresh, crate::schema::MIGRATIONS).unwrap();
        assert_eq!(cursor(&fresh, "users/promotion.send").unwrap(), 0, "a new shop starts at the beginning");
    }

    #[test]
    fn an_order_event_gives_one_email_and_one_sms_once() {
        let (db, outbox) = setup();
        let payload = json!({ "order_id": "o-1", "user": { "id": "u-1", "email": "ann@example.com", "phone": "+14155550123" }, "order": { "tracking": { "carrier": "DHL", "number": "1" } } });
        outbox.execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES ('order.shipped', 'o-1', ?, 'now')", &[payload.to_string().into()]).unwrap();
        outbox.execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES ('order.paid', 'o-1', ?, 'now')", &[payload.to_string().into()]).unwrap();
        assert_eq!(pull(&db, "orders", &outbox, "Shop", &to, &phone, 100).unwrap(), 3, "shipped: email + SMS; paid: email only");
        db.execute("DELETE FROM outbox_cursors", &[]).unwrap();
        assert_eq!(pull(&db, "orders", &outbox, "Shop", &to, &phone, 100).unwrap(), 0);
        let (sms, total) = list(&db, None, Some("sms"), 10, 0).unwrap();
        assert_eq!((total, sms[0].recipient.as_str(), sms[0].idempotency_key.as_str()), (1, "+14155550123", "sms/order.shipped/o-1"));
        let claimed = claim_due(&db, 100, 10).unwrap();
        assert_eq!(claimed.iter().filter(|d| d.channel == "sms").count(), 1, "SMS share the claims");
        assert!(claimed.iter().find(|d| d.channel == "sms").unwrap().text.as_deref().unwrap().contains("has shipped"));
        assert!(claimed.iter().all(|d| d.user_id.as_deref() == Some("u-1")), "each delivery is for the account the event names: {claimed:?}");
    }

    #[test]
    fn an_event_that_names_no_account_gives_deliveries_for_none() {
        let (db, outbox) = setup();
        add(&outbox, "user.registered", "u1");
        assert_eq!(pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap(), 1);
        let d = claim_due(&db, 100, 1).unwrap().remove(0);
        assert_eq!((d.recipient.as_str(), d.user_id), ("ann@example.com", None));
    }

    #[test]
    fn a_delivery_is_sent_in_the_trace_its_event_was_recorded_in() {
        let (db, outbox) = setup();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let payload = json!({ "user": { "email": "ann@example.com", "phone": "+14155550123" }, "order": { "tracking": { "carrier": "DHL", "number": "1" } } });
        outbox
            .execute(
                "INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at, traceparent, tracestate) VALUES ('order.shipped', 'o-1', ?, 'now', ?, 'shop=test')",
                &[payload.to_string().into(), parent.into()],
            )
            .unwrap();
        add(&outbox, "user.registered", "u1");
        assert_eq!(pull(&db, "orders", &outbox, "Shop", &to, &phone, 100).unwrap(), 3);
        let claimed = claim_due(&db, 100, 10).unwrap();
        let traced: Vec<_> = claimed.iter().filter(|d| d.event_type == "order.shipped").collect();
        assert_eq!(traced.len(), 2, "the email and the SMS");
        for d in traced {
            assert_eq!(d.trace.headers(), vec![("traceparent", parent.to_string()), ("tracestate", "shop=test".to_string())]);
        }
        let untraced = claimed.iter().find(|d| d.event_type == "user.registered").unwrap();
        assert!(untraced.trace.headers().is_empty(), "no recorded trace: the sender's own goes");
    }

    #[test]
    fn a_request_claims_its_own_deliveries_and_no_others() {
        let (db, outbox) = setup();
        let mine = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        for (id, trace) in [("u1", mine), ("u2", theirs)] {
            let payload = json!({ "user": { "id": id, "email": format!("{id}@example.com") } });
            outbox
                .execute(
                    "INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at, traceparent) VALUES ('user.registered', ?, ?, 'now', ?)",
                    &[id.into(), payload.to_string().into(), trace.into()],
                )
                .unwrap();
        }
        add(&outbox, "user.registered", "u3");
        assert_eq!(pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap(), 3);
        let own = claim_due_of(&db, mine, 100, 10).unwrap();
        assert_eq!(own.iter().map(|d| d.recipient.as_str()).collect::<Vec<_>>(), ["u1@example.com"]);
        assert!(claim_due_of(&db, mine, 100, 10).unwrap().is_empty(), "claimed once");
        let rest = claim_due(&db, 100, 10).unwrap();
        assert_eq!(rest.iter().map(|d| d.recipient.as_str()).collect::<Vec<_>>(), ["u2@example.com", "ann@example.com"], "the sweep takes the rest");
    }

    #[test]
    fn an_outbox_without_trace_columns_is_still_read() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let outbox = MemDb::new();
        outbox.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT, aggregate_id TEXT, payload TEXT, occurred_at TEXT)", &[]).unwrap();
        add(&outbox, "user.registered", "u1");
        assert_eq!(pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap(), 1);
        assert_eq!(claim_due(&db, 100, 10).unwrap()[0].trace, EventTrace::default());
    }

    #[test]
    fn cursors_use_greatest_on_postgres() {
        let db = storage::native::Recorder::postgres();
        advance(&db, "users", 7).unwrap();
        assert!(db.statements()[0].contains("SET last_id = GREATEST(outbox_cursors.last_id, excluded.last_id)"), "{:?}", db.statements());
    }

    /// Found in review: a pull renders and addresses its events before it
    /// stores their deliveries, so an account deleted in between got one
    /// stored after its erasure, its address in it. Here the account is
    /// erased while its own event renders.
    #[test]
    fn an_account_erased_while_its_email_renders_gets_no_delivery() {
        let (db, outbox) = setup();
        for (user, email) in [("u-1", "ann@example.com"), ("u-2", "bob@example.com")] {
            let payload = json!({ "user": { "id": user, "email": email } });
            outbox
                .execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES ('user.registered', ?, ?, 'now')", &[user.into(), payload.to_string().into()])
                .unwrap();
        }
        let erasing = |payload: &Json| {
            if payload["user"]["id"] == "u-1" {
                crate::privacy::erase_user(&db, "u-1", "ann@example.com", "now", true)?;
            }
            to(payload)
        };
        assert_eq!(pull(&db, "users", &outbox, "Shop", &erasing, &no_sms, 100).unwrap(), 1, "only the other account's");
        let (all, _) = list(&db, None, None, 10, 0).unwrap();
        assert_eq!(all.iter().map(|d| d.recipient.as_str()).collect::<Vec<_>>(), ["bob@example.com"]);
        assert_eq!(pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap(), 0, "the cursor moved past both");
    }

    #[test]
    fn pulling_twice_creates_each_delivery_once() {
        let (db, outbox) = setup();
        add(&outbox, "user.registered", "u1");
        add(&outbox, "user.unknown_event", "u1");
        add(&outbox, "user.registered", "u2");
        assert_eq!(pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap(), 2);
        assert_eq!(pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap(), 0);
        // Even if the cursor were lost, the unique keys stop duplicates.
        db.execute("DELETE FROM outbox_cursors", &[]).unwrap();
        assert_eq!(pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap(), 0);
        let (all, total) = list(&db, None, None, 10, 0).unwrap();
        assert_eq!(total, 2);
        assert_eq!(all[1].idempotency_key, "user.registered/u1");
    }

    #[test]
    fn claims_do_not_overlap_and_leases_expire() {
        let (db, outbox) = setup();
        for i in 0..3 {
            add(&outbox, "user.registered", &format!("u{i}"));
        }
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap();
        let first = claim_due(&db, 100, 2).unwrap();
        let second = claim_due(&db, 100, 10).unwrap();
        assert_eq!((first.len(), second.len()), (2, 1));
        assert!(claim_due(&db, 100, 10).unwrap().is_empty(), "all claimed");
        // The sweep holding `first` died: after the lease they come back.
        let again = claim_due(&db, 100 + LEASE_SECS, 10).unwrap();
        assert_eq!(again.len(), 3);
        assert!(again.iter().all(|d| d.attempts == 2 || d.attempts == 2));
    }

    /// Found in review: a sweep sends its claims one after another, and a
    /// slow provider let the lease of the last ones lapse before their turn;
    /// another sweep claimed and sent them, and then the first sent them
    /// too (a second SMS: Twilio has no idempotency key) and overwrote the
    /// other's outcome.
    #[test]
    fn a_claim_taken_over_after_its_lease_lapsed_is_not_sent_or_recorded_by_the_first_sweep() {
        let (db, outbox) = setup();
        add(&outbox, "user.registered", "u1");
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap();
        let first = claim_due(&db, 100, 1).unwrap().remove(0);
        assert!(renew(&db, &first, 100, 11).unwrap(), "its own claim, renewed before the send");
        assert!(claim_due(&db, 100 + LEASE_SECS, 1).unwrap().is_empty(), "the renewal covers the send");
        let second = claim_due(&db, 100 + LEASE_SECS + 11, 1).unwrap().remove(0);
        assert_eq!(second.attempts, 2);
        assert!(!renew(&db, &first, 100 + LEASE_SECS + 12, 11).unwrap(), "the first sweep's turn comes: not sent");
        assert!(!record(&db, &first, &Attempt::Permanent { error: "late".into() }, 300).unwrap(), "nor recorded over the second claim");
        assert!(record(&db, &second, &Attempt::Sent { provider_id: Some("re_2".into()) }, 300).unwrap());
        let after = get(&db, second.id).unwrap().unwrap();
        assert_eq!((after.status.as_str(), after.provider_id.as_deref(), after.last_error), ("sent", Some("re_2"), None));
    }

    /// Account u-1 (ann@example.com) registered: a welcome email to send.
    fn registered_ann(outbox: &MemDb) {
        let payload = json!({ "user": { "id": "u-1", "email": "ann@example.com" } });
        outbox.execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES ('user.registered', 'u-1', ?, 'now')", &[payload.to_string().into()]).unwrap();
    }

    /// Found in review: an account erased while its claimed email waited in
    /// the sweep's batch got it anyway (the address was read at claim time),
    /// and the outcome reopened the erased row.
    #[test]
    fn a_claimed_email_of_an_account_erased_before_its_turn_is_not_sent() {
        let (db, outbox) = setup();
        registered_ann(&outbox);
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap();
        let d = claim_due(&db, 100, 1).unwrap().remove(0);
        crate::privacy::erase_user(&db, "u-1", "ann@example.com", "now", true).unwrap();
        assert!(!renew(&db, &d, 101, 11).unwrap(), "not sent");
        assert!(!record(&db, &d, &Attempt::Sent { provider_id: None }, 101).unwrap());
        let after = get(&db, d.id).unwrap().unwrap();
        assert_eq!((after.status.as_str(), after.recipient.as_str()), ("failed", crate::privacy::ERASED_RECIPIENT));
    }

    /// Found in review: a link email whose last attempt never finished was
    /// failed by the next claim, which kept its single-use link stored.
    #[test]
    fn a_link_email_whose_last_attempt_lapsed_is_not_kept() {
        let (db, outbox) = setup();
        let payload = json!({ "user": { "first_name": "Ann", "email": "ann@example.com" }, "expires_at": "t", "secret": { "token": "tk", "link": "https://x/?token=tk" } });
        outbox.execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES ('user.password_reset_requested', 'r1', ?, 'now')", &[payload.to_string().into()]).unwrap();
        add(&outbox, "user.password_changed", "u1");
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap();
        let claimed = claim_due(&db, 100, 2).unwrap();
        assert_eq!(claimed.len(), 2);
        db.execute("UPDATE deliveries SET attempts = ?", &[MAX_ATTEMPTS.into()]).unwrap();
        assert!(claim_due(&db, 100 + LEASE_SECS, 10).unwrap().is_empty());
        let raw = |id: i64| db.query("SELECT status, text FROM deliveries WHERE id = ?", &[id.into()]).unwrap().first().map(|r| (r.text("status").unwrap(), r.text("text").unwrap())).unwrap();
        let (link, other) = if claimed[0].event_type == "user.password_reset_requested" { (&claimed[0], &claimed[1]) } else { (&claimed[1], &claimed[0]) };
        assert_eq!(raw(link.id), ("failed".to_string(), REMOVED.to_string()));
        assert_ne!(raw(other.id).1, REMOVED, "an email without a link keeps its copy");
    }

    /// Found in review: when the deletion's last call to the message log
    /// failed, nothing recorded the account as erased. The users service's
    /// `user.deleted` event does it too, and fails what was queued.
    #[test]
    fn a_user_deleted_event_records_the_account_as_erased() {
        let (db, outbox) = setup();
        registered_ann(&outbox);
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap();
        outbox.execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES ('user.deleted', 'u-1', '{\"user_id\":\"u-1\"}', 'now')", &[]).unwrap();
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 101).unwrap();
        let erased = db.query("SELECT user_id FROM erased_accounts", &[]).unwrap().iter().map(|r| r.text("user_id").unwrap()).collect::<Vec<_>>();
        assert_eq!(erased, vec!["u-1".to_string()]);
        let statuses = db.query("SELECT status, recipient FROM deliveries", &[]).unwrap().iter().map(|r| (r.text("status").unwrap(), r.text("recipient").unwrap())).collect::<Vec<_>>();
        assert_eq!(statuses, vec![("failed".to_string(), crate::privacy::ERASED_RECIPIENT.to_string())]);
    }

    /// A delivery handed back because its provider just failed another one
    /// is due again at once, its attempt not counted; a stale claim (taken
    /// again since) is left alone.
    #[test]
    fn a_delivery_handed_back_keeps_its_attempts() {
        let (db, outbox) = setup();
        add(&outbox, "user.registered", "u1");
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap();
        let d = claim_due(&db, 100, 1).unwrap().remove(0);
        assert_eq!(d.attempts, 1);
        hand_back(&db, &d).unwrap();
        let again = claim_due(&db, 100, 1).unwrap().remove(0);
        assert_eq!((again.id, again.attempts), (d.id, 1), "due again, the same attempt");
        // Its lease lapses and another sweep takes it: the older claim hands back nothing.
        let taken = claim_due(&db, 100 + LEASE_SECS, 1).unwrap().remove(0);
        assert_eq!(taken.attempts, 2);
        hand_back(&db, &again).unwrap();
        assert_eq!(get(&db, d.id).unwrap().unwrap().status, "sending");
        let retries: i64 = (1..MAX_ATTEMPTS).map(|a| backoff_secs(a, None)).sum();
        assert!((80_000..100_000).contains(&retries), "the last attempt comes about a day after the first: {retries} s");
    }

    #[test]
    fn a_lapsed_last_attempt_fails_instead_of_retrying_forever() {
        let (db, outbox) = setup();
        add(&outbox, "user.registered", "u1");
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap();
        let d = claim_due(&db, 100, 1).unwrap().remove(0);
        db.execute("UPDATE deliveries SET attempts = ? WHERE id = ?", &[MAX_ATTEMPTS.into(), d.id.into()]).unwrap();
        assert!(claim_due(&db, 100 + LEASE_SECS, 10).unwrap().is_empty());
        assert_eq!(get(&db, d.id).unwrap().unwrap().status, "failed");
    }

    #[test]
    fn link_emails_are_not_kept_once_handed_over_nor_shown() {
        let (db, outbox) = setup();
        let payload = json!({ "user": { "first_name": "Ann", "email": "ann@example.com" }, "expires_at": "t", "secret": { "token": "tk", "link": "https://x/?token=tk" } });
        outbox.execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES ('user.password_reset_requested', 'r1', ?, 'now')", &[payload.to_string().into()]).unwrap();
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap();
        let d = claim_due(&db, 100, 1).unwrap().remove(0);
        assert!(d.text.as_deref().unwrap().contains("https://x/?token=tk"), "the sender gets the link");
        assert_eq!(get(&db, d.id).unwrap().unwrap().text.as_deref(), Some(REMOVED), "admins never see it");
        record(&db, &d, &Attempt::Retry { after_secs: None, error: "503".into() }, 100).unwrap();
        let raw = |db: &MemDb| db.query("SELECT text FROM deliveries WHERE id = ?", &[d.id.into()]).unwrap().first().unwrap().text("text").unwrap();
        assert!(raw(&db).contains("token=tk"), "kept while it must be retried");
        let d = claim_due(&db, 1000, 1).unwrap().remove(0);
        record(&db, &d, &Attempt::Sent { provider_id: Some("re_1".into()) }, 1000).unwrap();
        assert_eq!(raw(&db), REMOVED);
    }

    #[test]
    fn outcomes_and_backoff() {
        let (db, outbox) = setup();
        add(&outbox, "user.registered", "u1");
        pull(&db, "users", &outbox, "Shop", &to, &no_sms, 100).unwrap();
        let d = claim_due(&db, 100, 1).unwrap().remove(0);
        record(&db, &d, &Attempt::Retry { after_secs: Some(30), error: "429".into() }, 100).unwrap();
        let after = get(&db, d.id).unwrap().unwrap();
        assert_eq!((after.status.as_str(), after.next_attempt_at), ("pending", 131), "retry-after honoured, with the second it began in");
        assert!(claim_due(&db, 130, 1).unwrap().is_empty(), "not due yet");
        let d = claim_due(&db, 131, 1).unwrap().remove(0);
        record(&db, &d, &Attempt::Permanent { error: "422 invalid to".into() }, 131).unwrap();
        assert_eq!(get(&db, d.id).unwrap().unwrap().status, "failed");
        assert_eq!(backoff_secs(1, None), 2);
        assert_eq!(backoff_secs(3, Some(1)), 8);
        assert_eq!(backoff_secs(1, Some(2)), 3, "Retry-After and the second it may have started in");
        assert_eq!(backoff_secs(40, None), 3600);
    }
}
