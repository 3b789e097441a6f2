//! A fake Stripe API on loopback that records every request, so tests can
//! assert the exact form fields and idempotency keys the shop sends.
//! It answers the few endpoints the shop uses, and replays the first answer
//! for a repeated `Idempotency-Key` as Stripe does: its status and body,
//! 5xx included, once its endpoint has begun (a 429 or an outage at its
//! edge comes before, and is not kept).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct StripeCall {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    /// Decoded form fields, in order.
    pub form: Vec<(String, String)>,
}

impl StripeCall {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    calls: Vec<StripeCall>,
    sessions: HashMap<String, Value>,
    /// Idempotency-Key → (the request's form, the first answer's status
    /// and body).
    by_key: HashMap<String, (Vec<(String, String)>, u16, Value)>,
    next: u64,
    /// Pending injected failures, each for the next call mentioning its text
    /// (in its path or a form value, e.g. an order id) with this status and
    /// `Retry-After`, at this point of the request (several tests may
    /// inject at once: each keeps its own).
    fail_next: Vec<(String, u16, Option<u64>, Stage)>,
    /// Outages: every call mentioning the text fails with the status until
    /// the test ends it ([`FakeStripe::start_outage`]).
    outages: Vec<(String, u16)>,
    /// Objects created (not replayed) so far: the call that made each, and its id.
    created: Vec<(StripeCall, String)>,
    /// Amount refunded so far per PaymentIntent (API and "dashboard").
    refunded: HashMap<String, i64>,
    /// Every refund, oldest first (API and "dashboard"), as
    /// `GET /v1/refunds` lists them.
    refunds: Vec<Value>,
    /// The next session or intent created for a call mentioning this text
    /// gets this id (a Stripe answer the shop already holds elsewhere).
    reuse_id: Option<(String, String)>,
    /// Answer the next call mentioning this text only after this many
    /// milliseconds (Stripe hanging); the call is still processed, as a
    /// request Stripe received but answered too late would be. Each pending
    /// delay waits for its own call.
    delay_next: Vec<(String, u64)>,
    /// Where the hosted checkout page sends its signed webhook: the app's
    /// base URL and the webhook secret ([`FakeStripe::deliver_webhooks_to`]).
    webhook_target: Option<(String, String)>,
    /// The hosted page's `success_url` and `cancel_url` per session.
    return_urls: HashMap<String, (String, String)>,
    /// Every PaymentIntent created through the API, by id.
    intents: HashMap<String, Value>,
    /// Money taken: each intent captured once ([`FakeStripe::pay_session`],
    /// [`FakeStripe::pay_intent`]), in order.
    captures: Vec<Capture>,
    /// The `charge.refunded` events Stripe would send for the refunds made
    /// so far, not yet taken by [`FakeStripe::take_refund_events`].
    refund_events: Vec<Value>,
}

/// A payment the fake captured: the customer's money, taken once per intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub payment_intent: String,
    /// The order its metadata names.
    pub order_id: String,
    pub amount_minor: i64,
    /// Lower case, as Stripe writes it.
    pub currency: String,
}

impl State {
    /// Record the capture of `intent` unless it was captured already (Stripe
    /// captures an intent at most once).
    fn capture(&mut self, intent: &str, order_id: &str, amount_minor: i64, currency: &str) {
        if !self.captures.iter().any(|c| c.payment_intent == intent) {
            self.captures.push(Capture { payment_intent: intent.into(), order_id: order_id.into(), amount_minor, currency: currency.into() });
        }
    }

    /// The currency of a PaymentIntent's money (lower case): what Stripe
    /// writes on its charge and refunds.
    fn currency_of(&self, intent: &str) -> String {
        self.captures
            .iter()
            .find(|c| c.payment_intent == intent)
            .map(|c| c.currency.clone())
            .or_else(|| self.intents.get(intent).and_then(|i| i["currency"].as_str()).map(str::to_string))
            .unwrap_or_else(|| "usd".to_string())
    }

    /// The customer pays a session: it completes and its intent's money is
    /// captured. `None` for an unknown session.
    fn complete_session(&mut self, session_id: &str) -> Option<Value> {
        let s = self.sessions.get_mut(session_id)?;
        s["status"] = json!("complete");
        s["payment_status"] = json!("paid");
        let s = s.clone();
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        self.capture(&text(&s["payment_intent"]), &text(&s["metadata"]["order_id"]), s["amount_total"].as_i64().unwrap_or(0), &text(&s["currency"]));
        Some(s)
    }
}

/// Where in a request an injected failure happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before Stripe runs it (its rate limit): nothing is done or kept.
    BeforeRunning,
    /// Its endpoint fails before making anything; the answer is kept under
    /// the request's Idempotency-Key and replayed.
    Endpoint,
    /// Its endpoint makes the object, then fails; the answer is kept under
    /// the key and replayed (the object exists all the same).
    AfterCreating,
}

/// A prefix unique to this process, so ids never repeat across runs (an app
/// with a persistent database, e.g. a long-lived `spin up`, sees several).
fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{:x}{:x}", std::process::id(), nanos % 0xffff_ffff)
    })
}

/// The running fake.
#[derive(Clone)]
pub struct FakeStripe {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeStripe {
    /// Start on `addr` (`127.0.0.1:0` for any free port).
    pub fn start(addr: &str) -> FakeStripe {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        // The hosted page's links need the fake's own address, known only
        // once it listens: the handler reads it from here.
        let own_url = Arc::new(std::sync::OnceLock::<String>::new());
        let own = own_url.clone();
        let url = serve_loopback("Stripe", addr, move |stream| serve(stream, &shared, own.get().map(String::as_str).unwrap_or("")));
        let _ = own_url.set(url.clone());
        FakeStripe { url, state }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<StripeCall> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Calls whose form mentions `order_id` (in metadata or reference).
    pub fn calls_for(&self, order_id: &str) -> Vec<StripeCall> {
        self.calls().into_iter().filter(|c| c.form.iter().any(|(_, v)| v == order_id) || c.path.contains(order_id)).collect()
    }

    /// Mark a session paid, as if the customer completed checkout (its
    /// intent's money is captured, once).
    pub fn pay_session(&self, session_id: &str) -> Value {
        self.state.lock().unwrap().complete_session(session_id).expect("known session")
    }

    /// Mark a PaymentIntent the shop created as succeeded, as if the
    /// customer confirmed it in the browser: its money is captured (once)
    /// and the intent object is returned as a `payment_intent.succeeded`
    /// event carries it.
    pub fn pay_intent(&self, intent_id: &str) -> Value {
        let mut st = self.state.lock().unwrap();
        let pi = st.intents.get_mut(intent_id).expect("known payment intent");
        pi["status"] = json!("succeeded");
        pi["amount_received"] = pi["amount"].clone();
        let pi = pi.clone();
        st.capture(intent_id, pi["metadata"]["order_id"].as_str().unwrap_or(""), pi["amount"].as_i64().unwrap_or(0), pi["currency"].as_str().unwrap_or(""));
        pi
    }

    /// The `charge.refunded` events for the refunds made through the API
    /// since the last call (Stripe sends one after every refund, carrying the
    /// charge's refunded total), for a caller to deliver as Stripe would.
    pub fn take_refund_events(&self) -> Vec<Value> {
        std::mem::take(&mut self.state.lock().unwrap().refund_events)
    }

    /// Every capture so far, oldest first.
    pub fn captures(&self) -> Vec<Capture> {
        self.state.lock().unwrap().captures.clone()
    }

    /// What went back on this intent so far (the shop's refunds and the dashboard's).
    pub fn refunded(&self, payment_intent: &str) -> i64 {
        self.state.lock().unwrap().refunded.get(payment_intent).copied().unwrap_or(0)
    }

    /// The session object as Stripe would return it.
    pub fn session(&self, session_id: &str) -> Value {
        self.state.lock().unwrap().sessions.get(session_id).cloned().expect("known session")
    }

    /// A refund made outside the shop (Stripe's dashboard): the intent's
    /// charge shows it, the shop sent no request.
    pub fn dashboard_refund(&self, payment_intent: &str, amount: i64) {
        let mut st = self.state.lock().unwrap();
        st.next += 1;
        let id = format!("re_dash_{}_{}", run_tag(), st.next);
        *st.refunded.entry(payment_intent.to_string()).or_default() += amount;
        let currency = st.currency_of(payment_intent);
        st.refunds.push(json!({ "id": id, "object": "refund", "status": "succeeded", "amount": amount, "currency": currency, "payment_intent": payment_intent, "metadata": {} }));
    }

    /// A refund Stripe could not pay out after all (the card was closed):
    /// the refund becomes `failed` with `failure_reason`, and its money
    /// leaves the charge's refunded total (it is back in the shop's
    /// balance). Returns the refund as Stripe's `refund.failed` event
    /// carries it.
    pub fn fail_refund(&self, refund_id: &str, failure_reason: &str) -> Value {
        let mut st = self.state.lock().unwrap();
        let refund = st.refunds.iter_mut().find(|r| r["id"] == refund_id).expect("a refund the fake made");
        assert_eq!(refund["status"], "succeeded", "only a refund that succeeded fails later");
        refund["status"] = json!("failed");
        refund["failure_reason"] = json!(failure_reason);
        let refund = refund.clone();
        let intent = refund["payment_intent"].as_str().unwrap_or("").to_string();
        *st.refunded.entry(intent).or_default() -= refund["amount"].as_i64().unwrap_or(0);
        refund
    }

    /// Every refund of this PaymentIntent, oldest first, as Stripe holds
    /// them (with their `metadata`).
    pub fn refunds_of(&self, payment_intent: &str) -> Vec<Value> {
        self.state.lock().unwrap().refunds.iter().filter(|r| r["payment_intent"] == payment_intent).cloned().collect()
    }

    /// Let the fake hosted checkout page (the session's `url`) pay: after
    /// "Pay", it sends a `checkout.session.completed` event signed with
    /// `webhook_secret` to `<app_base_url>/api/webhooks/stripe`, as Stripe
    /// would, then redirects the browser to the session's success URL.
    pub fn deliver_webhooks_to(&self, app_base_url: &str, webhook_secret: &str) {
        self.state.lock().unwrap().webhook_target = Some((app_base_url.trim_end_matches('/').to_string(), webhook_secret.to_string()));
    }

    /// Make the next call that mentions `text` (an order id, an object id)
    /// and reaches Stripe's endpoint fail there with this status (a 5xx);
    /// calls of other tests running at the same time are not affected.
    ///
    /// As Stripe does, the answer is kept under the call's Idempotency-Key:
    /// a retry with the same key gets the same status and body replayed
    /// (and does not take a pending failure). Nothing is created.
    pub fn fail_next_for(&self, text: &str, status: u16) {
        self.state.lock().unwrap().fail_next.push((text.to_string(), status, None, Stage::Endpoint));
    }

    /// Like [`FakeStripe::fail_next_for`], but the endpoint makes its
    /// object (a session, an intent, a refund) before it fails: the outcome
    /// the client cannot know. The 5xx is kept under the key and replayed.
    pub fn fail_after_create_next_for(&self, text: &str, status: u16) {
        self.state.lock().unwrap().fail_next.push((text.to_string(), status, None, Stage::AfterCreating));
    }

    /// Forget every Idempotency-Key kept so far, as Stripe does once a key
    /// is 24 hours old: a request under one of them then runs afresh.
    pub fn forget_idempotency_keys(&self) {
        self.state.lock().unwrap().by_key.clear();
    }

    /// Send `call` again exactly as it was (its Idempotency-Key and form),
    /// as a client retrying it would; Stripe's answer: status and body.
    pub fn resend(&self, call: &StripeCall) -> (u16, Value) {
        let (status, body, _) = respond(&self.state, call, &self.url);
        (status, body)
    }

    /// Make the next call that mentions `text` a 429 (Stripe's rate limit,
    /// `rate_limit` error) with `Retry-After: retry_after_secs`. It comes
    /// before Stripe runs the request: nothing is done, and nothing is kept
    /// under its Idempotency-Key (a retry with the key runs afresh).
    pub fn rate_limit_next_for(&self, text: &str, retry_after_secs: u64) {
        self.state.lock().unwrap().fail_next.push((text.to_string(), 429, Some(retry_after_secs), Stage::BeforeRunning));
    }

    /// Stripe down for every call that mentions `text` (any number of them,
    /// retries included) with this status, until [`FakeStripe::end_outage`].
    /// The failure is at Stripe's edge, before its endpoints: nothing is
    /// run or kept under the calls' keys.
    pub fn start_outage(&self, text: &str, status: u16) {
        self.state.lock().unwrap().outages.push((text.to_string(), status));
    }

    /// End the outage started for `text`.
    pub fn end_outage(&self, text: &str) {
        self.state.lock().unwrap().outages.retain(|(t, _)| t != text);
    }

    /// Make the next call that mentions `text` hang for `ms` before it is
    /// answered (it is processed all the same).
    pub fn delay_next_for(&self, text: &str, ms: u64) {
        self.state.lock().unwrap().delay_next.push((text.to_string(), ms));
    }

    /// The ids of the objects Stripe created through `POST path`
    /// (`/v1/checkout/sessions`, `/v1/payment_intents`, `/v1/refunds`) for
    /// calls that mention `text`, in order; a request replayed under its
    /// Idempotency-Key creates nothing.
    pub fn created_for(&self, path: &str, text: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.created.iter().filter(|(call, _)| call.path == path && mentions(call, text)).map(|(_, id)| id.clone()).collect()
    }

    /// What Stripe has refunded of this PaymentIntent's charge in all.
    pub fn refunded_total(&self, payment_intent: &str) -> i64 {
        self.state.lock().unwrap().refunded.get(payment_intent).copied().unwrap_or(0)
    }

    /// Make the next Checkout Session or PaymentIntent created for a call
    /// that mentions `text` carry the id `id` (one the shop already holds
    /// for another order, as two shops sharing a Stripe account could see).
    pub fn reuse_id_for(&self, text: &str, id: &str) {
        self.state.lock().unwrap().reuse_id = Some((text.to_string(), id.to_string()));
    }
}

/// Listen on `addr` and answer each connection on its own thread with
/// `handle`; returns the base URL. Shared by the fakes.
pub(crate) fn serve_loopback(name: &str, addr: &str, handle: impl Fn(TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("fake {name} cannot listen on {addr}: {e}"));
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handle = handle.clone();
            std::thread::spawn(move || handle(stream));
        }
    });
    url
}

/// Read one HTTP/1.1 request: method, path, lower-cased headers, body.
pub(crate) fn read_request(stream: &TcpStream) -> Option<(String, String, HashMap<String, String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let body = if headers.get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut reader)
    } else {
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0u8; len];
        let _ = reader.read_exact(&mut body);
        body
    };
    Some((method, path, headers, body))
}

/// Write a JSON response and close.
pub(crate) fn write_json(mut stream: TcpStream, status: u16, extra_headers: &str, body: &Value) {
    let text = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}connection: close\r\n\r\n{text}",
        text.len()
    );
}

fn serve(stream: TcpStream, state: &Mutex<State>, own_url: &str) {
    let Some((method, path, headers, body)) = read_request(&stream) else { return };
    if path.starts_with("/c/") {
        return hosted_checkout::serve(stream, state, &method, &path);
    }
    let form: Vec<(String, String)> = form_urlencoded_parse(&body);
    let call = StripeCall { method: method.clone(), path: path.clone(), headers: headers.clone(), form: form.clone() };
    let delay = {
        let mut st = state.lock().unwrap();
        let i = st.delay_next.iter().position(|(text, _)| mentions(&call, text));
        i.map(|i| st.delay_next.remove(i).1)
    };
    let (status, answer, extra_headers) = respond(state, &call, own_url);
    if let Some(ms) = delay {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    write_json(stream, status, &extra_headers, &answer);
}

fn read_chunked(reader: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line).is_err() {
            break;
        }
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 {
            let mut trailer = String::new();
            let _ = reader.read_line(&mut trailer);
            break;
        }
        let mut chunk = vec![0u8; size];
        if reader.read_exact(&mut chunk).is_err() {
            break;
        }
        body.extend_from_slice(&chunk);
        let mut crlf = String::new();
        let _ = reader.read_line(&mut crlf);
    }
    body
}

pub(crate) fn form_urlencoded_parse(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode(&s.replace('+', " "))).into_owned()
}

/// `%XX` escapes decoded; everything else kept as it is.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The call names `text` in its path or a form value (an order or object id).
fn mentions(call: &StripeCall, text: &str) -> bool {
    call.path.contains(text) || call.form.iter().any(|(_, v)| v.contains(text))
}

/// A status, a body and extra header lines.
fn respond(state: &Mutex<State>, call: &StripeCall, own_url: &str) -> (u16, Value, String) {
    let mut st = state.lock().unwrap();
    st.calls.push(call.clone());
    // Before Stripe runs the request: its rate limit, an outage at its edge.
    let edge = match take_failure(&mut st, call, |stage| stage == Stage::BeforeRunning) {
        Some((code, retry_after, _)) => Some((code, retry_after)),
        None => st.outages.iter().find(|(text, _)| mentions(call, text)).map(|(_, code)| (*code, None)),
    };
    if let Some((code, retry_after)) = edge {
        let error = if code == 429 {
            json!({ "error": { "message": "Request rate limit exceeded.", "type": "invalid_request_error", "code": "rate_limit" } })
        } else {
            server_error()
        };
        return (code, error, retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default());
    }
    let key = call.headers.get("idempotency-key").cloned();
    if let Some(k) = &key {
        if let Some((form, status, previous)) = st.by_key.get(k) {
            // Like Stripe: a replay returns the first answer; other parameters under the same key are an error.
            if *form != call.form {
                return (400, json!({ "error": { "type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters they were first used with." } }), String::new());
            }
            return (*status, previous.clone(), String::new());
        }
    }
    let (status, answer) = match take_failure(&mut st, call, |stage| stage != Stage::BeforeRunning) {
        Some((code, _, Stage::AfterCreating)) => {
            run(&mut st, call, own_url);
            (code, server_error())
        }
        Some((code, ..)) => (code, server_error()),
        None => run(&mut st, call, own_url),
    };
    // Kept once the endpoint ran: its result, or its own 5xx (the fake's
    // 4xx are all refusals of the request itself, which Stripe does not keep).
    if let Some(k) = key {
        if status == 200 || status >= 500 {
            st.by_key.insert(k, (call.form.clone(), status, answer.clone()));
        }
    }
    (status, answer, String::new())
}

/// The first pending failure for this call at one of these stages, taken.
fn take_failure(st: &mut State, call: &StripeCall, at: impl Fn(Stage) -> bool) -> Option<(u16, Option<u64>, Stage)> {
    let i = st.fail_next.iter().position(|(text, _, _, stage)| at(*stage) && mentions(call, text))?;
    let (_, code, retry_after, stage) = st.fail_next.remove(i);
    Some((code, retry_after, stage))
}

fn server_error() -> Value {
    json!({ "error": { "message": "An unknown error occurred (injected)", "type": "api_error" } })
}

/// What Stripe's endpoint does with a call.
fn run(st: &mut State, call: &StripeCall, own_url: &str) -> (u16, Value) {
    let mentions = |text: &str| mentions(call, text);
    st.next += 1;
    let n = st.next;
    let reused = match st.reuse_id.clone() {
        Some((text, id)) if mentions(&text) => {
            st.reuse_id = None;
            Some(id)
        }
        _ => None,
    };
    let answer = match (call.method.as_str(), call.path.as_str()) {
        ("POST", "/v1/checkout/sessions") => {
            // Stripe's bounds, by its own clock: 30 minutes to 24 hours after creation.
            let expires_at = call.field("expires_at").and_then(|t| t.parse::<i64>().ok());
            if let Some(t) = expires_at {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
                let refusal = if t < now + 1800 {
                    Some("The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.")
                } else if t > now + 86_400 {
                    Some("The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.")
                } else {
                    None
                };
                if let Some(message) = refusal {
                    return (400, json!({ "error": { "type": "invalid_request_error", "param": "expires_at", "message": message } }));
                }
            }
            let mut total = 0i64;
            for i in 0.. {
                let Some(unit) = call.field(&format!("line_items[{i}][price_data][unit_amount]")) else { break };
                let qty: i64 = call.field(&format!("line_items[{i}][quantity]")).and_then(|q| q.parse().ok()).unwrap_or(0);
                total += unit.parse::<i64>().unwrap_or(0) * qty;
            }
            let id = reused.clone().unwrap_or_else(|| format!("cs_test_{}_{n}", run_tag()));
            let session = json!({
                "id": id, "object": "checkout.session", "url": format!("{own_url}/c/{id}"),
                "status": "open", "payment_status": "unpaid", "amount_total": total, "expires_at": expires_at,
                "currency": call.field("line_items[0][price_data][currency]").unwrap_or("usd"),
                "payment_intent": format!("pi_test_{}_{n}", run_tag()),
                "client_reference_id": call.field("client_reference_id"),
                "metadata": { "order_id": call.field("metadata[order_id]") },
            });
            let success = call.field("success_url").unwrap_or("").replace("{CHECKOUT_SESSION_ID}", &id);
            let cancel = call.field("cancel_url").unwrap_or("").to_string();
            st.return_urls.insert(id.clone(), (success, cancel));
            st.sessions.insert(id, session.clone());
            session
        }
        ("GET", p) if p.starts_with("/v1/checkout/sessions/") => {
            let id = p.trim_start_matches("/v1/checkout/sessions/");
            match st.sessions.get(id) {
                Some(s) => s.clone(),
                None => return (404, json!({ "error": { "message": "No such checkout.session" } })),
            }
        }
        ("POST", p) if p.starts_with("/v1/checkout/sessions/") && p.ends_with("/expire") => {
            let id = p.trim_start_matches("/v1/checkout/sessions/").trim_end_matches("/expire");
            match st.sessions.get_mut(id) {
                Some(s) if s["status"] == "open" => {
                    s["status"] = json!("expired");
                    s.clone()
                }
                Some(_) => return (400, json!({ "error": { "type": "invalid_request_error", "message": "Only Checkout Sessions with a status of open can be expired." } })),
                None => return (404, json!({ "error": { "message": "No such checkout.session" } })),
            }
        }
        ("POST", p) if p.starts_with("/v1/payment_intents/") && p.ends_with("/cancel") => {
            let id = p.trim_start_matches("/v1/payment_intents/").trim_end_matches("/cancel");
            json!({ "id": id, "object": "payment_intent", "status": "canceled" })
        }
        ("POST", "/v1/payment_intents") => {
            let intent = json!({
                "id": reused.clone().unwrap_or_else(|| format!("pi_test_{}_{n}", run_tag())), "object": "payment_intent", "client_secret": format!("pi_test_{}_{n}_secret_abc", run_tag()),
                "amount": call.field("amount").and_then(|a| a.parse::<i64>().ok()), "currency": call.field("currency"),
                "metadata": { "order_id": call.field("metadata[order_id]") }, "status": "requires_payment_method",
            });
            // A reused id keeps the intent first created under it.
            let id = intent["id"].as_str().unwrap_or("").to_string();
            st.intents.entry(id).or_insert_with(|| intent.clone());
            intent
        }
        ("POST", "/v1/refunds") => {
            let amount = call.field("amount").and_then(|a| a.parse::<i64>().ok());
            let pi = call.field("payment_intent").unwrap_or("").to_string();
            // Stripe never returns more than the charge took.
            let left = st.captures.iter().find(|c| c.payment_intent == pi).map(|c| c.amount_minor - st.refunded.get(&pi).copied().unwrap_or(0));
            if let (Some(left), Some(amount)) = (left, amount) {
                if amount > left {
                    let message = format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({left})");
                    return (400, json!({ "error": { "type": "invalid_request_error", "code": "amount_too_large", "message": message } }));
                }
            }
            *st.refunded.entry(pi.clone()).or_default() += amount.unwrap_or(0);
            let currency = st.currency_of(&pi);
            let charge = json!({
                "id": format!("ch_{pi}"), "object": "charge", "payment_intent": pi, "currency": currency,
                "amount_refunded": st.refunded[&pi], "metadata": { "order_id": call.field("metadata[order_id]") },
            });
            st.refund_events.push(crate::order_steps::event(&format!("evt_refund_{}_{n}", run_tag()), "charge.refunded", charge));
            let refund = json!({
                "id": format!("re_test_{}_{n}", run_tag()), "object": "refund", "status": "succeeded",
                "amount": amount, "currency": currency, "payment_intent": pi, "charge": format!("ch_{pi}"), "metadata": metadata(call),
            });
            st.refunds.push(refund.clone());
            refund
        }
        // `GET /v1/refunds?payment_intent=…&limit=…&starting_after=…`: newest
        // first, a page at a time.
        ("GET", p) if p == "/v1/refunds" || p.starts_with("/v1/refunds?") => list_refunds(st, p),
        // `GET /v1/payment_intents/{id}?expand[]=latest_charge`: the charge's
        // refunded total, as Stripe reports it.
        ("GET", p) if p.starts_with("/v1/payment_intents/") => {
            let id = p.trim_start_matches("/v1/payment_intents/").split('?').next().unwrap_or("").to_string();
            let refunded = st.refunded.get(&id).copied().unwrap_or(0);
            let currency = st.currency_of(&id);
            json!({
                "id": id, "object": "payment_intent", "status": "succeeded", "currency": currency,
                "latest_charge": { "id": format!("ch_{id}"), "object": "charge", "currency": currency, "amount_refunded": refunded },
            })
        }
        _ => return (404, json!({ "error": { "message": "unknown endpoint in the fake" } })),
    };
    if call.method == "POST" && !call.path.ends_with("/expire") && !call.path.ends_with("/cancel") {
        if let Some(id) = answer["id"].as_str() {
            st.created.push((call.clone(), id.to_string()));
        }
    }
    (200, answer)
}

/// The call's `metadata[...]` fields as an object.
fn metadata(call: &StripeCall) -> Value {
    let fields = call.form.iter().filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?.to_string(), json!(v))));
    Value::Object(fields.collect())
}

/// A page of Stripe's list of refunds, filtered by `payment_intent`.
fn list_refunds(st: &State, path: &str) -> Value {
    let query = path.split_once('?').map(|(_, q)| form_urlencoded_parse(q.as_bytes())).unwrap_or_default();
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let limit = param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(10).clamp(1, 100);
    let intent = param("payment_intent");
    let newest_first = st.refunds.iter().rev().filter(|r| intent.as_deref().is_none_or(|pi| r["payment_intent"] == pi));
    let after: Vec<&Value> = match param("starting_after") {
        Some(last) => newest_first.skip_while(|r| r["id"] != last.as_str()).skip(1).collect(),
        None => newest_first.collect(),
    };
    let page: Vec<Value> = after.iter().take(limit).map(|r| (*r).clone()).collect();
    json!({ "object": "list", "url": "/v1/refunds", "data": page, "has_more": after.len() > limit })
}

/// The fake's stand-in for Stripe's hosted payment page, for browser tests:
/// `GET /c/{session}` shows the amount with "Pay" and "Cancel";
/// `POST /c/{session}/pay` marks the session paid, delivers the signed
/// `checkout.session.completed` webhook to the app (see
/// [`FakeStripe::deliver_webhooks_to`]) and redirects to the success URL.
/// These requests are not recorded as API calls.
mod hosted_checkout {
    use super::{State, TcpStream};
    use serde_json::Value;
    use std::io::Write;
    use std::sync::Mutex;

    pub(super) fn serve(stream: TcpStream, state: &Mutex<State>, method: &str, path: &str) {
        let rest = path.trim_start_matches("/c/");
        let (id, action) = match rest.split_once('/') {
            Some((id, action)) => (id.to_string(), action.to_string()),
            None => (rest.split('?').next().unwrap_or("").to_string(), String::new()),
        };
        let (session, urls, target) = {
            let st = state.lock().unwrap();
            (st.sessions.get(&id).cloned(), st.return_urls.get(&id).cloned(), st.webhook_target.clone())
        };
        let Some(session) = session else { return page(stream, 404, "<h1>No such checkout session</h1>") };
        let (success, cancel) = urls.unwrap_or_default();
        match (method, action.as_str()) {
            ("GET", "") => {
                let amount = session["amount_total"].as_i64().unwrap_or(0);
                let currency = session["currency"].as_str().unwrap_or("").to_uppercase();
                let state_note = if session["payment_status"] == "paid" { "<p>Already paid.</p>" } else { "" };
                page(stream, 200, &format!(
                    "<main><h1>Fake Stripe Checkout</h1>{state_note}<p>Amount due: <strong data-amount=\"{amount}\">{amount} {currency} (minor units)</strong></p>\
                     <form method=\"post\" action=\"/c/{id}/pay\"><button type=\"submit\" id=\"pay\">Pay</button></form>\
                     <p><a id=\"cancel\" href=\"{cancel}\">Cancel and return to the shop</a></p></main>"
                ))
            }
            ("POST", "pay") => {
                let Some(paid) = state.lock().unwrap().complete_session(&id) else { return page(stream, 404, "<h1>No such checkout session</h1>") };
                if let Some((app, secret)) = target {
                    if let Err(e) = send_webhook(&app, &secret, &id, paid) {
                        return page(stream, 502, &format!("<h1>The shop did not take the payment event</h1><p>{e}</p>"));
                    }
                }
                let mut s = &stream;
                let _ = write!(s, "HTTP/1.1 303 See Other\r\nlocation: {success}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
            _ => page(stream, 405, "<h1>Method not allowed</h1>"),
        }
    }

    fn send_webhook(app: &str, secret: &str, session_id: &str, session: Value) -> Result<(), String> {
        let event = crate::order_steps::event(&format!("evt_hosted_{session_id}"), "checkout.session.completed", session);
        let body = event.to_string();
        let signature = crate::order_steps::stripe_signature(&body, secret, crate::order_steps::now());
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut r = agent
            .post(&format!("{app}/api/webhooks/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", &signature)
            .send(body.as_bytes())
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        if status == 200 {
            Ok(())
        } else {
            Err(format!("{status}: {}", r.body_mut().read_to_string().unwrap_or_default()))
        }
    }

    fn page(stream: TcpStream, status: u16, body: &str) {
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Fake Stripe Checkout</title>\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body>{body}</body></html>"
        );
        let mut s = &stream;
        let _ = write!(s, "HTTP/1.1 {status} X\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}", html.len());
    }
}
