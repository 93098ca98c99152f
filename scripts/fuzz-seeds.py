#!/usr/bin/env python3
"""Writes the fuzz seed corpora (fuzz/seeds/<target>/) and dictionaries
(fuzz/dict/<name>.dict) from tests/fixtures. Run from anywhere; the output is
deterministic, so re-running it after a fixture changes shows the change in git.

Seeds of the provider targets use the layout fuzz/src/lib.rs reads: byte 0 the
content type (0 form, 1 JSON, 2 text/plain), byte 1 the query length, the query,
then an optional signature header value and a newline, then the body. Their
signatures are well-formed but made with other keys than the fuzz harness's, so
every seed fails verification (which the harness asserts) and reaches the parser
through the insecure path. `form_decode` takes raw form bodies and query strings.

Dictionaries use the AFL/libFuzzer syntax: one quoted token a line.
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
DICTS = os.path.join(ROOT, "fuzz", "dict")

FORM, JSON, TEXT = 0, 1, 2

# Fixtures per target: Twilio's format is SignalWire's (its fixtures stand in).
TARGET_FIXTURES = {
    "twilio": "signalwire_",
    "signalwire": "signalwire_",
    "plivo": "plivo_",
    "telnyx": "telnyx_",
    "vonage": "vonage_",
}

QUERIES = [
    b"call_id=c-1",
    b"call_id=c-1&campaign_id=6f1c1d52-0b6e-4c55-9d2a-0d7d1d0f0001&contact_id=6f1c1d52-0b6e-4c55-9d2a-0d7d1d0f0002",
    b"",
]

# What each provider's parser reads beyond the fixtures' fields, and its words.
VOCABULARY = {
    "twilio": {
        "fields": ["CallSid", "CallStatus", "AccountSid", "CallDuration", "AnsweredBy", "Timestamp",
                   "SequenceNumber", "ErrorCode", "ErrorMessage", "SipResponseCode", "CallbackSource",
                   "ParentCallSid", "Direction", "From", "To", "ApiVersion"],
        "words": ["queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed",
                  "canceled", "human", "machine_start", "machine_end_beep", "machine_end_silence",
                  "machine_end_other", "fax", "unknown", "outbound-api", "outbound-dial", "inbound",
                  "Tue, 24 Nov 2026 10:00:07 +0000", "bodySHA256="],
    },
    "plivo": {
        "fields": ["CallUUID", "CallStatus", "Duration", "BillDuration", "HangupCause", "HangupCauseCode",
                   "HangupSource", "StartTime", "AnswerTime", "EndTime", "Machine", "Event", "Direction",
                   "From", "To", "RequestUUID", "ALegRequestUUID", "SessionStart", "TotalCost", "BillRate"],
        "words": ["queued", "ringing", "in-progress", "completed", "busy", "no-answer", "timeout", "failed",
                  "cancel", "canceled", "true", "false", "NORMAL_CLEARING", "USER_BUSY", "NO_ANSWER",
                  "2026-11-24 10:00:06", "Ring", "StartApp", "Hangup"],
    },
    "vonage": {
        "fields": ["uuid", "conversation_uuid", "status", "direction", "timestamp", "duration", "from", "to",
                   "start_time", "end_time", "rate", "price", "network", "headers", "detail", "reason"],
        "words": ["started", "ringing", "answered", "human", "machine", "completed", "busy", "rejected",
                  "unanswered", "timeout", "failed", "cancelled", "outbound", "inbound",
                  "2026-11-24T10:00:06.311Z", "Bearer "],
    },
    "telnyx": {
        "fields": ["data", "meta", "id", "event_type", "occurred_at", "payload", "record_type",
                   "call_control_id", "call_leg_id", "call_session_id", "client_state", "connection_id",
                   "hangup_cause", "hangup_source", "sip_hangup_cause", "start_time", "end_time", "result",
                   "state", "from", "to", "attempt"],
        "words": ["call.initiated", "call.answered", "call.hangup", "call.machine.detection.ended",
                  "call.machine.premium.detection.ended", "call.bridged", "normal_clearing", "time_limit",
                  "user_busy", "call_rejected", "no_answer", "timeout", "no_user_response",
                  "unallocated_number", "human", "human_residence", "machine", "fax_detected", "not_sure",
                  "event", "2026-11-24T10:00:07.511230Z"],
    },
}
VOCABULARY["signalwire"] = VOCABULARY["twilio"]

FORM_TOKENS = ["&", "=", "+", "%", "%00", "%0A", "%20", "%25", "%26", "%2B", "%3D", "%C3%A9", "%E2%82%AC",
               "%F0%9F%98%80", "%FF", "%C3", "%ED%A0%80", "%C0%AF", "%zz", "call_id=", "campaign_id=",
               "contact_id=", "&&", "=&"]
JSON_TOKENS = ["{", "}", "[", "]", ":", ",", "\"", "null", "true", "false", "0", "-1", "1e999", "-0",
               "18446744073709551616", "\"\"", "{}", "[]", "\\u0000", "\\ud800", "\\ud83d\\ude00", "\\\"",
               "\\\\", "\\/", b"\xef\xbb\xbf"]


def fixtures(prefix):
    names = sorted(n for n in os.listdir(FIXTURES) if n.startswith(prefix) and os.path.isfile(os.path.join(FIXTURES, n)))
    for name in names:
        with open(os.path.join(FIXTURES, name), "rb") as f:
            yield os.path.splitext(name)[0], f.read().strip()


def b64(n, fill):
    return base64.b64encode(bytes([fill]) * n)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def vonage_token(body):
    """An HS256 JWT shaped like Vonage's, signed with a key the harness doesn't hold."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"iat": 1795000000, "jti": "seed", "iss": "Vonage", "payload_hash": hashlib.sha256(body).hexdigest(),
              "api_key": "seed", "application_id": "seed"}
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = b64url(hmac.new(b"not-the-fuzz-secret", header + b"." + payload, hashlib.sha256).digest())
    return b"Bearer " + header + b"." + payload + b"." + signature


def signature(target, body):
    if target in ("twilio", "signalwire"):
        return b64(20, 0x5A)  # HMAC-SHA1 length
    if target == "plivo":
        return b64(32, 0x5A) + b", " + b64(32, 0x33)  # HMAC-SHA256, two tokens
    if target == "telnyx":
        return b64(64, 0x5A)  # Ed25519 length
    return vonage_token(body)


def seed(content_type, query, sig, body):
    assert len(query) < 256 and b"\n" not in sig and b"\n" not in body
    return bytes([content_type, len(query)]) + query + (sig + b"\n" if sig else b"") + body


def provider_seeds(target):
    native = JSON if target in ("telnyx", "vonage") else FORM
    seeds = {}
    for name, body in fixtures(TARGET_FIXTURES[target]):
        for i, query in enumerate(QUERIES):
            seeds[f"{name}-q{i}"] = seed(native, query, signature(target, body), body)
        seeds[f"{name}-unsigned"] = seed(native, QUERIES[0], b"", body)
        seeds[f"{name}-text"] = seed(TEXT, QUERIES[0], signature(target, body), body)
        if target == "twilio":
            # Twilio's JSON callbacks: the body's SHA-256 rides in the signed URL.
            fields = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
            doc = json.dumps(fields, separators=(",", ":")).encode()
            query = b"call_id=c-1&bodySHA256=" + hashlib.sha256(doc).hexdigest().encode()
            seeds[f"{name}-json"] = seed(JSON, query, signature(target, doc), doc)
    return seeds


def form_decode_seeds():
    seeds = {}
    for prefix in ("signalwire_", "plivo_"):
        for name, body in fixtures(prefix):
            seeds[name] = body
    for i, query in enumerate(QUERIES[:2]):
        seeds[f"query-{i}"] = query
    seeds["edge-cases"] = b"a=%C3%A9t%C3%A9&b=+x+&c&=d&e=%zz&f=%4&&g=%2B%26%3D"
    return seeds


def write_dir(path, files):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    for name, data in sorted(files.items()):
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


def dict_line(token):
    out = []
    for b in token.encode("utf-8") if isinstance(token, str) else token:
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\x{b:02X}")
    return '"' + "".join(out) + '"'


def fixture_names(target):
    """Field names and JSON keys found in the target's fixtures."""
    names = set()
    for _, body in fixtures(TARGET_FIXTURES[target]):
        if body.startswith(b"{"):
            def walk(v):
                if isinstance(v, dict):
                    for k, x in v.items():
                        names.add(k)
                        walk(x)
            walk(json.loads(body))
        else:
            names.update(k for k, _ in urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    return names


def provider_dict(target):
    vocab = VOCABULARY[target]
    names = sorted(set(vocab["fields"]) | fixture_names(target))
    tokens = []
    if target in ("telnyx", "vonage"):
        tokens += [f'"{n}"' for n in names] + [f'"{n}":' for n in names]
        tokens += [f'"{w}"' for w in vocab["words"]] + JSON_TOKENS
    else:
        tokens += names + [f"{n}=" for n in names] + [f"&{n}=" for n in names]
        tokens += vocab["words"] + [urllib.parse.quote(w, safe="") for w in vocab["words"]] + FORM_TOKENS
        if target == "twilio":
            tokens += JSON_TOKENS  # Twilio also takes JSON bodies
    seen, lines = set(), [f"# {target}: generated by scripts/fuzz-seeds.py from tests/fixtures; do not edit"]
    for t in tokens:
        if t not in seen:
            seen.add(t)
            lines.append(dict_line(t))
    return "\n".join(lines) + "\n"


def main():
    for target in TARGET_FIXTURES:
        write_dir(os.path.join(SEEDS, target), provider_seeds(target))
    write_dir(os.path.join(SEEDS, "form_decode"), form_decode_seeds())
    os.makedirs(DICTS, exist_ok=True)
    for target in TARGET_FIXTURES:
        with open(os.path.join(DICTS, f"{target}.dict"), "w") as f:
            f.write(provider_dict(target))
    form = ["# form: generated by scripts/fuzz-seeds.py; do not edit"]
    form += [dict_line(t) for t in FORM_TOKENS + ["CallSid=", "CallStatus=", "CallUUID="]]
    with open(os.path.join(DICTS, "form.dict"), "w") as f:
        f.write("\n".join(form) + "\n")


if __name__ == "__main__":
    main()
